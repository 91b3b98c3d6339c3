package receiver

import (
	"bufio"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// held is a raw client connection and its reader.
type held struct {
	c net.Conn
	r *bufio.Reader
}

// dialFrom connects to the receiver from the local address from (any
// 127/8 address works on Linux: lo takes the whole block).
func (l *lab) dialFrom(from string) held {
	l.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", l.addr)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return held{c, bufio.NewReader(c)}
}

// greeted fails the test unless h gets a 220 greeting.
func greeted(t *testing.T, h held) {
	t.Helper()
	line, err := readGreeting(h.c, h.r, time.Minute)
	if err != nil || !strings.HasPrefix(line, "220 ") {
		t.Fatalf("from %s: greeting %q, %v", h.c.LocalAddr(), line, err)
	}
}

// refused fails the test unless h is closed without a byte written, as
// couriertcpd's child does when it _exits over a limit.
func refused(t *testing.T, h held) {
	t.Helper()
	h.c.SetReadDeadline(time.Now().Add(time.Minute)) // a failure bound, not a measurement
	b, err := h.r.ReadByte()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("from %s: read %q, %v; want the connection closed without a word", h.c.LocalAddr(), b, err)
	}
}

// connOf is the receiver's id of the connection from client address a.
func connOf(t *testing.T, evs []events.Event, a net.Addr) string {
	t.Helper()
	for _, e := range ofKind(evs, events.ConnOpen) {
		if e.Host == a.String() {
			return e.Conn
		}
	}
	t.Fatalf("no ConnOpen for %s", a)
	return ""
}

// checkNames lists a connection's checks as "check name qtype".
func checkNames(evs []events.Event) []string {
	var out []string
	for _, e := range ofKind(evs, events.Check) {
		out = append(out, e.Check+" "+e.Name+" "+e.QType)
	}
	return out
}

// expectRefused checks the events of a refused connection: its IDENT query
// (couriertcpd asks before it counts), then Refused with reason, then
// ConnClose, and no DNS lookup at all.
func expectRefused(t *testing.T, evs []events.Event, conn, reason string) {
	t.Helper()
	got := ofConn(evs, conn)
	want := []events.Kind{events.ConnOpen, events.Check, events.Refused, events.ConnClose}
	if !slices.Equal(kinds(got), want) {
		t.Fatalf("refused connection %s: events %v, want %v", conn, kinds(got), want)
	}
	if got[1].Check != "ident" {
		t.Errorf("refused connection %s: check %q before the refusal, want ident", conn, got[1].Check)
	}
	if got[2].Reason != reason || got[2].Host != got[0].Host {
		t.Errorf("Refused %+v, want reason %s, host %s", got[2], reason, got[0].Host)
	}
	if got[3].Reason != "refused: "+reason || got[3].Count != 0 {
		t.Errorf("ConnClose %+v", got[3])
	}
}

// Three connections from one address with MAXPERIP 2: the third is
// accepted, its IDENT asked, and closed without a word; another address in
// the same C block is let in, and once one of the first two leaves, the
// first address is let in again.
func TestMaxPerIP(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), twoZones), func(c *Config) { c.MaxSessions, c.MaxPerIP = 10, 2 })
	a, b := l.dialFrom("127.0.0.1"), l.dialFrom("127.0.0.1")
	greeted(t, a)
	greeted(t, b)
	c := l.dialFrom("127.0.0.1")
	refused(t, c)
	greeted(t, l.dialFrom("127.0.0.2"))
	a.c.Close()
	// a's ConnClose frees its place; wait for it, the way a client would
	// retry later.
	labtest.Events(t, l.log, events.ConnClose, 2)
	greeted(t, l.dialFrom("127.0.0.1"))
	l.close()

	evs := l.log.Events()
	if n := len(ofKind(evs, events.Refused)); n != 1 {
		t.Fatalf("%d Refused events, want 1", n)
	}
	expectRefused(t, evs, connOf(t, evs, c.c.LocalAddr()), "max_per_ip")
	if n := len(ofKind(evs, events.ConnOpen)); n != 5 {
		t.Errorf("%d connections accepted, want 5", n)
	}
	// The refused one cost no DNS: 4 greeted connections, of which three
	// from 127.0.0.1 (PTR, A, two zones) and one from 127.0.0.2 (PTR not
	// found, so no A; two zones).
	if n := len(l.dnsLog.Events()); n != 3*4+3 {
		t.Errorf("%d DNS queries, want 15", n)
	}
}

// MAXPERC 2 counts the whole /24: 127.0.0.1 and 127.0.0.2 fill it,
// 127.0.0.3 is refused, 127.0.1.1 (another C block) is let in.
func TestMaxPerC(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.MaxSessions, c.MaxPerC = 10, 2 })
	greeted(t, l.dialFrom("127.0.0.1"))
	greeted(t, l.dialFrom("127.0.0.2"))
	c := l.dialFrom("127.0.0.3")
	refused(t, c)
	greeted(t, l.dialFrom("127.0.1.1"))
	l.close()
	evs := l.log.Events()
	if n := len(ofKind(evs, events.Refused)); n != 1 {
		t.Fatalf("%d Refused events, want 1", n)
	}
	expectRefused(t, evs, connOf(t, evs, c.c.LocalAddr()), "max_per_c")
}

// A refused connection gives its slot back: with two slots, one taken by a
// session and one by a connection over MAXPERIP, a client from elsewhere
// is still greeted, and the log never shows more than two open.
func TestRefusedFreesSlot(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.MaxSessions, c.MaxPerIP = 2, 1 })
	greeted(t, l.dialFrom("127.0.0.1"))
	refused(t, l.dialFrom("127.0.0.1"))
	refused(t, l.dialFrom("127.0.0.1"))
	greeted(t, l.dialFrom("127.0.0.2"))
	l.close()
	evs := l.log.Events()
	if most, ok := maxOpen(evs); most > 2 || !ok {
		t.Errorf("log shows %d connections open at once, limit 2 (consistent %v)", most, ok)
	}
	if n := len(ofKind(evs, events.Refused)); n != 2 {
		t.Errorf("%d Refused events, want 2", n)
	}
}

// The stub's own log is the measure of a profile: 1999's four queries, in
// couriertcpd's order, for each connection.
func TestProfile1999Queries(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), twoZones), func(c *Config) { c.Profile = ProfileCourier1999 })
	l.send([]string{rcptFoo7}, message("p1999@test"))
	l.close()
	want := []string{
		clientRev + " PTR",
		clientName + " A",
		"1.0.0.127.bl1.example.net A",
		"1.0.0.127.bl2.example.net A",
	}
	if got := queries(l.dnsLog); !slices.Equal(got, want) {
		t.Errorf("dns queries\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func queries(log *events.Log) []string {
	var out []string
	for _, e := range ofKind(log.Events(), events.Query) {
		out = append(out, e.Name+" "+e.QType)
	}
	return out
}

// The 1.0.16 profile makes the ten queries docs/REAL-MTAS.md counts: PTR of the
// client, A and AAAA of its name, PTR of the receiver's own address, A and
// AAAA of that name, and each zone in IPv4 and in ::ffff: nibble form. The
// client comes from 127.0.0.2 so that the two ends differ.
func TestProfile1016Queries(t *testing.T) {
	const client2 = "client2.lab.example.net"
	zone := dnsstub.Zone{
		A:   map[string][]string{client2: {"127.0.0.2"}, hostname: {"127.0.0.1"}},
		PTR: map[string]string{"127.0.0.2": client2, "127.0.0.1": hostname},
	}
	l := startLab(t, dnsConfig(zone, twoZones), func(c *Config) { c.Profile, c.Ident = ProfileCourier1016, false })
	h := l.dialFrom("127.0.0.2")
	greeted(t, h)
	h.c.Close()
	l.close()
	nibbles := "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	want := []string{
		"2.0.0.127.in-addr.arpa PTR",
		client2 + " A",
		client2 + " AAAA",
		"1.0.0.127.in-addr.arpa PTR",
		hostname + " A",
		hostname + " AAAA",
		"2.0.0.127.bl1.example.net A",
		nibbles + "bl1.example.net A",
		"2.0.0.127.bl2.example.net A",
		nibbles + "bl2.example.net A",
	}
	if got := queries(l.dnsLog); !slices.Equal(got, want) {
		t.Errorf("dns queries\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The checks name the same queries, in the same order, each with the
	// one query it sent.
	var got []string
	for _, e := range ofKind(l.log.Events(), events.Check) {
		got = append(got, e.Name+" "+e.QType)
		if len(e.Via) != 1 {
			t.Errorf("check %s %s sent %d queries, want 1", e.Check, e.Name, len(e.Via))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("checks\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The AAAA lookups get NODATA (the names have an A only): an answer,
	// not a failed check.
	for _, e := range ofKind(l.log.Events(), events.Check) {
		if e.QType == "AAAA" && (e.Result != "NODATA" || e.Error != "") {
			t.Errorf("AAAA check %s: result %q, error %q; want NODATA and no error", e.Name, e.Result, e.Error)
		}
	}
	// The client's name is confirmed by its A record.
	checks := ofKind(l.log.Events(), events.Check)
	if checks[0].Check != "reverse" || checks[3].Check != "local_reverse" || checks[3].Host != "127.0.0.1" {
		t.Errorf("reverse checks %+v and %+v", checks[0], checks[3])
	}
}

// One reject zone listing the client sets BLOCK: every RCPT is refused
// with its text, and the later reject zone is never asked. A mark zone is
// asked whatever BLOCK says and only recorded.
func TestDNSBLPolicies(t *testing.T) {
	bls := []dnsstub.Blacklist{
		{Zone: "mark.example.net", Listed: []string{clientIP}},
		{Zone: "txt.example.net", Listed: []string{clientIP}, Reason: "spam source, see example.net"},
		{Zone: "late.example.net", Listed: []string{clientIP}},
		{Zone: "mark2.example.net"},
	}
	l := startLab(t, dnsConfig(clientZone(), bls), func(c *Config) {
		c.Ident = false
		c.BlacklistPolicy = map[string]Block{
			"mark.example.net":  {Policy: PolicyMark},
			"txt.example.net":   {TXT: true},
			"mark2.example.net": {Policy: PolicyMark},
		}
	})
	cl, _ := l.client()
	if err := cl.Mail("sender@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{rcptFoo7, "someone@elsewhere.org"} {
		code, _, msg := smtpCode(cl.Rcpt(r, nil))
		if code/100 != 5 || !strings.Contains(msg, "spam source, see example.net") {
			t.Errorf("RCPT %s: %d %q, want a 5xx with the TXT text", r, code, msg)
		}
	}
	var marks []string
	l.srv.mu.Lock()
	for c := range l.srv.live {
		marks = append(marks, c.marks...)
	}
	l.srv.mu.Unlock()
	if want := []string{"mark.example.net: Blacklisted by mark.example.net"}; !slices.Equal(marks, want) {
		t.Errorf("marks %q, want %q", marks, want)
	}
	cl.Quit()
	l.close()
	l.expectEmpty()

	type dnsbl struct{ name, qtype, result, reason string }
	var got []dnsbl
	for _, e := range ofKind(l.log.Events(), events.Check) {
		if e.Check == "dnsbl" {
			got = append(got, dnsbl{e.Name, e.QType, e.Result, e.Reason})
		}
	}
	want := []dnsbl{
		{"1.0.0.127.mark.example.net", "A", "listed 127.0.0.2", "mark: Blacklisted by mark.example.net"},
		{"1.0.0.127.txt.example.net", "TXT", "listed", "reject: spam source, see example.net"},
		{"1.0.0.127.mark2.example.net", "A", "not listed", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("dnsbl checks\n%+v\nwant\n%+v", got, want)
	}
	for _, q := range queries(l.dnsLog) {
		if strings.Contains(q, "late.example.net") {
			t.Errorf("asked %s after BLOCK was set", q)
		}
	}
}

// A mark-only listing lets the mail in; a reject zone with a message of
// its own uses it, the client's address in place of '@'.
func TestDNSBLMarkOnlyAndMessage(t *testing.T) {
	bls := []dnsstub.Blacklist{{Zone: "bl1.example.net", Listed: []string{clientIP}}}
	t.Run("mark", func(t *testing.T) {
		l := startLab(t, dnsConfig(clientZone(), bls), func(c *Config) {
			c.BlacklistPolicy = map[string]Block{"bl1.example.net": {Policy: PolicyMark}}
		})
		l.send([]string{rcptFoo7}, message("marked@test"))
		l.close()
		if n := len(l.files("new")); n != 1 {
			t.Errorf("%d messages delivered, want 1", n)
		}
	})
	t.Run("message", func(t *testing.T) {
		l := startLab(t, dnsConfig(clientZone(), bls), func(c *Config) {
			c.BlacklistPolicy = map[string]Block{"bl1.example.net": {Message: "Go away, @."}}
		})
		cl, _ := l.client()
		if err := cl.Mail("sender@example.com", nil); err != nil {
			t.Fatal(err)
		}
		if _, _, msg := smtpCode(cl.Rcpt(rcptFoo7, nil)); !strings.Contains(msg, "Go away, 127.0.0.1.") {
			t.Errorf("RCPT refused with %q", msg)
		}
		cl.Quit()
		l.close()
		l.expectEmpty()
	})
}

// couriertcpd checks one thing after another in one process: IDENT first,
// then PTR, A and the zones, each started only when the one before has
// ended; the stub sees each query only after it answered the one before.
// A delay on every answer makes any overlap visible.
func TestChecksInOrderOneAtATime(t *testing.T) {
	dc := dnsConfig(clientZone(), twoZones)
	dc.QueryDelay = 20 * time.Millisecond
	l := startLab(t, dc, nil)
	l.send([]string{rcptFoo7}, message("order@test"))
	l.close()
	checks := ofKind(l.log.Events(), events.Check)
	want := []string{
		"ident " + net.JoinHostPort(clientIP, strconv.Itoa(l.identPort)) + " IDENT",
		"reverse " + clientRev + " PTR",
		"forward " + clientName + " A",
		"dnsbl 1.0.0.127.bl1.example.net A",
		"dnsbl 1.0.0.127.bl2.example.net A",
	}
	if got := checkNames(checks); !slices.Equal(got, want) {
		t.Fatalf("checks %v, want %v", got, want)
	}
	for i := 1; i < len(checks); i++ {
		prevEnd := checks[i-1].Time.Add(checks[i-1].Duration)
		if checks[i].Time.Before(prevEnd) {
			t.Errorf("%s started before %s ended", checks[i].Check, checks[i-1].Check)
		}
	}
	qs := ofKind(l.dnsLog.Events(), events.Query)
	for i := 1; i < len(qs); i++ {
		if qs[i].Time.Before(qs[i-1].Time.Add(qs[i-1].Duration)) {
			t.Errorf("query %s arrived before %s was answered", qs[i].Name, qs[i-1].Name)
		}
	}
	// IDENT ended before the first DNS query reached the stub.
	if len(qs) == 0 || qs[0].Time.Before(checks[0].Time.Add(checks[0].Duration)) {
		t.Errorf("a DNS query arrived while IDENT was in progress")
	}
}

// silentDNS is a UDP socket that never answers and records each packet's
// source and query id.
type silentDNS struct {
	conn net.PacketConn
	mu   sync.Mutex
	pkts []string // "source#id"
}

func newSilentDNS(t *testing.T) *silentDNS {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentDNS{conn: c}
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil {
				continue
			}
			s.mu.Lock()
			s.pkts = append(s.pkts, events.QueryKey(from.String(), m.Id)+" "+m.Question[0].Name)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

func (s *silentDNS) packets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pkts)
}

// The resolver's schedule comes from the admission settings: with two
// rounds, each lookup sends its one query twice, from one socket with one
// id (Courier builds the query once), so the server sees 2 packets per
// lookup and the check names one query.
func TestDNSScheduleConfigurable(t *testing.T) {
	dead := newSilentDNS(t)
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) {
		c.DNSServers = []string{dead.conn.LocalAddr().String()}
		c.DNSTimeout, c.DNSMultiplier, c.DNSRounds = duration.Duration(20*time.Millisecond), 2, 2
		c.DNSBL, c.Blacklists = true, []string{"bl1.example.net"}
		c.Ident = false
	})
	h := l.dialFrom("127.0.0.1")
	greeted(t, h) // both lookups gave up: the session starts
	h.c.Close()
	l.close()
	pkts := dead.packets()
	if len(pkts) != 4 {
		t.Fatalf("%d packets %v, want 4 (2 lookups x 2 rounds)", len(pkts), pkts)
	}
	if pkts[0] != pkts[1] || pkts[2] != pkts[3] || pkts[0] == pkts[2] {
		t.Errorf("packets %v: want each lookup's two tries alike, the lookups apart", pkts)
	}
	checks := ofKind(l.log.Events(), events.Check)
	if len(checks) != 2 {
		t.Fatalf("%d checks, want 2", len(checks))
	}
	for i, c := range checks {
		key, _, _ := strings.Cut(pkts[2*i], " ")
		if c.Result != "TIMEOUT" || !slices.Equal(c.Via, []string{key}) {
			t.Errorf("check %s: result %s via %v, want TIMEOUT via [%s]", c.Check, c.Result, c.Via, key)
		}
	}
}

func TestAdmissionValidate(t *testing.T) {
	good := Admission{MaxSessions: 1, Blacklists: []string{"bl1"}, BlacklistPolicy: map[string]Block{"bl1": {Policy: PolicyMark, TXT: true}}}
	if err := good.Validate(); err != nil {
		t.Errorf("valid settings: %v", err)
	}
	for name, a := range map[string]Admission{
		"no sessions":  {},
		"profile":      {MaxSessions: 1, Profile: "courier-2.0"},
		"policy":       {MaxSessions: 1, Blacklists: []string{"bl1"}, BlacklistPolicy: map[string]Block{"bl1": {Policy: "drop"}}},
		"txt+message":  {MaxSessions: 1, Blacklists: []string{"bl1"}, BlacklistPolicy: map[string]Block{"bl1": {TXT: true, Message: "x"}}},
		"unknown zone": {MaxSessions: 1, BlacklistPolicy: map[string]Block{"bl9": {}}},
		"negative":     {MaxSessions: 1, MaxPerIP: -1},
	} {
		if err := a.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, a)
		}
	}
}

func TestListNames(t *testing.T) {
	for _, c := range []struct{ ip, zone, want string }{
		{"127.0.0.2", "BL.example.net.", "2.0.0.127.bl.example.net"},
		{"127.0.0.2", "", "2.0.0.127.in-addr.arpa"},
		{"2001:db8::1", "", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
	} {
		if got := reverseName(net.ParseIP(c.ip), c.zone); got != c.want {
			t.Errorf("reverseName(%s, %q) = %s, want %s", c.ip, c.zone, got, c.want)
		}
	}
	if got, want := nibbleName(net.ParseIP("192.0.2.1"), "bl"), "1.0.2.0.0.0.0.c.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl"; got != want {
		t.Errorf("nibbleName = %s, want %s", got, want)
	}
	if !sameCBlock(net.ParseIP("10.1.2.3"), net.ParseIP("10.1.2.200")) || sameCBlock(net.ParseIP("10.1.2.3"), net.ParseIP("10.1.3.3")) {
		t.Error("sameCBlock does not compare the /24")
	}
}
