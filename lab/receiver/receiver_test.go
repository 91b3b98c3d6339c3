package receiver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/maildir"
)

// The lab in miniature: a client on 127.0.0.1 whose PTR and A records the
// stub DNS serves, an identd answering for it, and the receiver.
const (
	clientIP   = "127.0.0.1"
	clientName = "client.lab.example.net"
	clientRev  = "1.0.0.127.in-addr.arpa"
	identUser  = "courier"
	heloName   = "sender.lab.example.net"
	hostname   = "receiver.lab.example.net"
	account    = "recipient"
	rcptFoo7   = "recipient-foo-7@7.foo.example.com"
)

var twoZones = []dnsstub.Blacklist{{Zone: "bl1.example.net"}, {Zone: "bl2.example.net"}}

func clientZone() dnsstub.Zone {
	return dnsstub.Zone{
		A:   map[string][]string{clientName: {clientIP}},
		PTR: map[string]string{clientIP: clientName},
	}
}

type lab struct {
	t         *testing.T
	dns       *dnsstub.Server
	dnsLog    *events.Log
	identLog  *events.Log
	identPort int
	srv       *Server
	log       *events.Log
	addr      string
	dir       maildir.Dir
	errs      *errorLog
}

// errorLog is go-smtp's ErrorLog in the tests: it keeps the panics go-smtp
// recovered from (and logged), so a test can fail on them.
type errorLog struct {
	mu     sync.Mutex
	panicd []string
}

func (l *errorLog) Printf(format string, v ...any) { l.add(fmt.Sprintf(format, v...)) }
func (l *errorLog) Println(v ...any)               { l.add(fmt.Sprintln(v...)) }
func (l *errorLog) add(s string) {
	if !strings.Contains(s, "panic") {
		return
	}
	l.mu.Lock()
	l.panicd = append(l.panicd, s)
	l.mu.Unlock()
}

// take returns the panics logged since the last take.
func (l *errorLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.panicd
	l.panicd = nil
	return p
}

func dnsConfig(zone dnsstub.Zone, bls []dnsstub.Blacklist) dnsstub.Config {
	return dnsstub.Config{Zone: zone, Blacklists: bls}
}

// startLab runs a dnsstub configured by dc, an identd answering identUser,
// and a receiver checking every zone of dc, configured by mod on top of the
// lab defaults. Everything listens on 127.0.0.1 port 0 and is closed at the
// end of the test, the receiver first.
func startLab(t testing.TB, dc dnsstub.Config, mod func(*Config)) *lab {
	t.Helper()
	l := &lab{dnsLog: events.NewLog("dns"), identLog: events.NewLog("identd"), log: events.NewLog("receiver"), errs: &errorLog{}}
	if tt, ok := t.(*testing.T); ok {
		l.t = tt
	}
	var err error
	l.dns, err = dnsstub.New(dc, l.dnsLog)
	if err != nil {
		t.Fatal(err)
	}
	// dnsstub binds TCP on the port the kernel gave UDP and tries five
	// ports; on a host with many client sockets in TIME-WAIT (after a fuzz
	// run) all five can be taken, so try a few more rounds.
	var dnsAddr net.Addr
	for try := 0; try < 10; try++ {
		if dnsAddr, err = l.dns.Listen("127.0.0.1:0"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.dns.Close() })
	id := identd.New(identd.Config{User: identUser}, l.identLog)
	identAddr, err := id.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { id.Close() })
	l.identPort = identAddr.(*net.TCPAddr).Port

	var zones []string
	for _, b := range dc.Blacklists {
		zones = append(zones, b.Zone)
	}
	cfg := Config{
		Hostname: hostname,
		Admission: Admission{
			MaxSessions: 4,
			DNSServers:  []string{dnsAddr.String()},
			DNSTimeout:  duration.Duration(5 * time.Second),
			ReverseDNS:  true,
			Blacklists:  zones, DNSBL: true,
			Ident:        true,
			IdentPort:    l.identPort,
			IdentTimeout: duration.Duration(10 * time.Second),
		},
		Delivery: Delivery{
			LocalDomains: []string{".example.com"},
			Account:      account,
			Maildir:      filepath.Join(t.TempDir(), "Maildir"),
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	l.dir = maildir.Dir(cfg.Maildir)
	l.srv, err = New(cfg, l.log)
	if err != nil {
		t.Fatal(err)
	}
	l.srv.smtp.ErrorLog = l.errs
	addr, err := l.srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = addr.String()
	t.Cleanup(func() {
		l.srv.Close()
		if p := l.errs.take(); len(p) > 0 {
			t.Errorf("the SMTP server panicked: %q", p)
		}
	})
	return l
}

// close ends the receiver and waits for its sessions, so the event log and
// the Maildir are final.
func (l *lab) close() {
	l.t.Helper()
	if err := l.srv.Close(); err != nil {
		l.t.Errorf("Close: %v", err)
	}
}

func message(id string) string {
	return "Message-ID: <" + id + ">\r\nFrom: sender@example.com\r\nSubject: test\r\n\r\ntest " + id + "\r\n"
}

// client dials the receiver and returns the go-smtp client and the local
// address of its connection.
func (l *lab) client() (*smtp.Client, *net.TCPAddr) {
	l.t.Helper()
	conn, err := net.Dial("tcp", l.addr)
	if err != nil {
		l.t.Fatal(err)
	}
	c := smtp.NewClient(conn)
	l.t.Cleanup(func() { c.Close() })
	if err := c.Hello(heloName); err != nil {
		l.t.Fatalf("EHLO: %v", err)
	}
	return c, conn.LocalAddr().(*net.TCPAddr)
}

// sendOn sends one message in an open session.
func sendOn(c *smtp.Client, rcpts []string, msg string) error {
	if err := c.Mail("sender@example.com", nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return fmt.Errorf("RCPT %s: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return nil
}

// send is one whole session carrying one message.
func (l *lab) send(rcpts []string, msg string) {
	l.t.Helper()
	c, _ := l.client()
	if err := sendOn(c, rcpts, msg); err != nil {
		l.t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		l.t.Fatalf("QUIT: %v", err)
	}
}

// files lists the names in one folder of the Maildir.
func (l *lab) files(sub string) []string {
	l.t.Helper()
	ents, err := os.ReadDir(filepath.Join(string(l.dir), sub))
	if err != nil {
		l.t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(string(l.dir), sub, e.Name()))
	}
	return out
}

// expectEmpty checks that nothing at all was written to the Maildir.
func (l *lab) expectEmpty() {
	l.t.Helper()
	for _, sub := range []string{"tmp", "new", "cur"} {
		if f := l.files(sub); len(f) != 0 {
			l.t.Errorf("%d files in %s/: %v", len(f), sub, f)
		}
	}
	if n := l.log.Counts()[events.Delivered]; n != 0 {
		l.t.Errorf("%d Delivered events", n)
	}
}

func readMessage(t *testing.T, path string) *mail.Message {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := mail.ReadMessage(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func kinds(evs []events.Event) []events.Kind {
	var out []events.Kind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func ofKind(evs []events.Event, k events.Kind) []events.Event {
	var out []events.Event
	for _, e := range evs {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func ofConn(evs []events.Event, conn string) []events.Event {
	var out []events.Event
	for _, e := range evs {
		if e.Conn == conn {
			out = append(out, e)
		}
	}
	return out
}

// maxOpen is the largest number of connections the log shows open at once
// (ConnOpen seen, ConnClose not yet), and whether every ConnClose follows
// its ConnOpen.
func maxOpen(evs []events.Event) (int, bool) {
	open := map[string]bool{}
	most, ok := 0, true
	for _, e := range evs {
		switch e.Kind {
		case events.ConnOpen:
			if open[e.Conn] {
				ok = false
			}
			open[e.Conn] = true
			most = max(most, len(open))
		case events.ConnClose:
			if !open[e.Conn] {
				ok = false
			}
			delete(open, e.Conn)
		}
	}
	return most, ok
}

func smtpCode(err error) (int, smtp.EnhancedCode, string) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, se.EnhancedCode, se.Message
	}
	return 0, smtp.EnhancedCode{}, ""
}

type checkWant struct{ check, name, qtype, result string }

func expectChecks(t *testing.T, evs []events.Event, want []checkWant) {
	t.Helper()
	got := ofKind(evs, events.Check)
	if len(got) != len(want) {
		t.Errorf("%d check events, want %d: %+v", len(got), len(want), got)
	}
	for i := 0; i < min(len(got), len(want)); i++ {
		g, w := got[i], want[i]
		if g.Check != w.check || g.Name != w.name || g.QType != w.qtype || g.Result != w.result || g.Host != clientIP {
			t.Errorf("check %d = %s %s %s -> %q (host %s), want %s %s %s -> %q", i, g.Check, g.Name, g.QType, g.Result, g.Host, w.check, w.name, w.qtype, w.result)
		}
	}
}

func TestOneMessage(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), twoZones), nil)
	c, local := l.client()
	if err := sendOn(c, []string{rcptFoo7}, message("one@test")); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	l.close()

	newFiles := l.files("new")
	if len(newFiles) != 1 {
		t.Fatalf("%d files in new/, want 1", len(newFiles))
	}
	if tmp := l.files("tmp"); len(tmp) != 0 {
		t.Errorf("left in tmp/: %v", tmp)
	}
	m := readMessage(t, newFiles[0])
	if got := m.Header.Get("Message-Id"); got != "<one@test>" {
		t.Errorf("Message-ID %q", got)
	}
	if got := m.Header["Delivered-To"]; len(got) != 1 || got[0] != rcptFoo7 {
		t.Errorf("Delivered-To %q", got)
	}
	rcv := m.Header["Received"]
	if len(rcv) != 1 {
		t.Fatalf("Received: %q", rcv)
	}
	for _, want := range []string{"from " + heloName, "(" + clientName + " [" + clientIP + "])", "(IDENT: " + identUser + ")", "by " + hostname} {
		if !strings.Contains(rcv[0], want) {
			t.Errorf("Received: %q lacks %q", rcv[0], want)
		}
	}

	evs := l.log.Events()
	wantKinds := []events.Kind{events.ConnOpen, events.Check, events.Check, events.Check, events.Check, events.Check, events.Greeting, events.Command, events.Command, events.Received, events.Delivered, events.Command, events.ConnClose}
	if !slices.Equal(kinds(evs), wantKinds) {
		t.Fatalf("events %v, want %v", kinds(evs), wantKinds)
	}
	conn := evs[0].Conn
	if conn == "" || len(ofConn(evs, conn)) != len(evs) {
		t.Errorf("events not all of connection %q: %+v", conn, evs)
	}
	if evs[0].Host != local.String() {
		t.Errorf("ConnOpen host %q, want %q", evs[0].Host, local)
	}
	identName := net.JoinHostPort(clientIP, strconv.Itoa(l.identPort))
	expectChecks(t, evs, []checkWant{
		{"ident", identName, "IDENT", identUser},
		{"reverse", "1.0.0.127.in-addr.arpa", "PTR", clientName},
		{"forward", clientName, "A", clientIP},
		{"dnsbl", "1.0.0.127.bl1.example.net", "A", "not listed"},
		{"dnsbl", "1.0.0.127.bl2.example.net", "A", "not listed"},
	})
	for _, e := range ofKind(evs, events.Check) {
		if e.Error != "" {
			t.Errorf("check %s failed: %s", e.Check, e.Error)
		}
	}
	d := evs[10]
	if d.MessageID != "<one@test>" || !slices.Equal(d.Rcpts, []string{rcptFoo7}) || d.Path != newFiles[0] || d.From != "sender@example.com" {
		t.Errorf("Delivered %+v", d)
	}
	if cl := evs[12]; cl.Count != 1 {
		t.Errorf("ConnClose count %d, want 1", cl.Count)
	}

	// What the stub DNS saw: the four lookups, in the receiver's order.
	type q struct{ name, qtype, result string }
	var gotQ []q
	for _, e := range l.dnsLog.Events() {
		gotQ = append(gotQ, q{e.Name, e.QType, e.Result})
	}
	wantQ := []q{
		{clientRev, "PTR", "NOERROR"},
		{clientName, "A", "NOERROR"},
		{"1.0.0.127.bl1.example.net", "A", "NXDOMAIN"},
		{"1.0.0.127.bl2.example.net", "A", "NXDOMAIN"},
	}
	if !slices.Equal(gotQ, wantQ) {
		t.Errorf("dns queries %v, want %v", gotQ, wantQ)
	}
	// And the identd: one query, for this connection's ports.
	iq := l.identLog.Events()
	if len(iq) != 1 {
		t.Fatalf("%d ident queries, want 1: %+v", len(iq), iq)
	}
	_, srvPort, _ := net.SplitHostPort(l.addr)
	if want := fmt.Sprintf("%d, %s", local.Port, srvPort); iq[0].Name != want {
		t.Errorf("ident query %q, want %q", iq[0].Name, want)
	}
	if !strings.HasSuffix(iq[0].Result, ": USERID : UNIX : "+identUser) {
		t.Errorf("ident reply %q", iq[0].Result)
	}
}

func TestRelayDenied(t *testing.T) {
	relay := smtp.EnhancedCode{5, 7, 1}
	unknown := smtp.EnhancedCode{5, 1, 1}
	syntax := smtp.EnhancedCode{5, 1, 3}
	cases := []struct {
		rcpt string
		code int
		ec   smtp.EnhancedCode
	}{
		{"recipient@elsewhere.org", 550, relay},
		{"recipient-foo-7@example.net", 550, relay},
		{"recipient@example.com.evil.org", 550, relay},
		{"recipient@[127.0.0.1]", 550, relay},
		{"recipient@example.com", 550, relay}, // bare domain, not listed
		{"nobody@7.foo.example.com", 550, unknown},
		{"recipientfoo@7.foo.example.com", 550, unknown},
		// Postmaster is taken at every local domain and alone
		// (TestProtocolPostmaster); RFC 5321 4.5.1 asks for no more, so
		// at a domain not served it is relaying like any address.
		{"postmaster@example.com", 550, relay},
		{"postmaster@elsewhere.org", 550, relay},
		// Addresses that read two ways are refused outright.
		{"recipient-x@evil.org@7.foo.example.com", 553, syntax},
		{"recipient@7.foo.example.com@evil.org", 553, syntax},
	}
	l := startLab(t, dnsConfig(clientZone(), twoZones), nil)
	c, _ := l.client()
	if err := c.Mail("sender@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		code, ec, _ := smtpCode(c.Rcpt(tc.rcpt, nil))
		if code != tc.code || ec != tc.ec {
			t.Errorf("RCPT %s: %d %v, want %d %v", tc.rcpt, code, ec, tc.code, tc.ec)
		}
	}
	if _, err := c.Data(); err == nil {
		t.Error("DATA accepted without a recipient")
	}
	c.Quit()
	l.close()
	l.expectEmpty()
	if rej := ofKind(l.log.Events(), events.Rejected); len(rej) != len(cases) {
		t.Errorf("%d Rejected events, want %d", len(rej), len(cases))
	}

	t.Run("bare domain listed", func(t *testing.T) {
		l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.LocalDomains = []string{"example.com", ".example.com"} })
		l.send([]string{"recipient@example.com", "Recipient-X@EXAMPLE.COM."}, message("bare@test"))
		l.close()
		if n := len(l.files("new")); n != 2 {
			t.Errorf("%d files, want 2", n)
		}
	})
}

func TestDNSBLListed(t *testing.T) {
	bls := []dnsstub.Blacklist{{Zone: "bl1.example.net"}, {Zone: "bl2.example.net", Listed: []string{clientIP}}}
	l := startLab(t, dnsConfig(clientZone(), bls), nil)
	c, _ := l.client()
	if err := c.Mail("sender@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{rcptFoo7, "recipient@x.example.com", "someone@elsewhere.org"} {
		code, ec, msg := smtpCode(c.Rcpt(r, nil))
		if code != 511 || ec != (smtp.EnhancedCode{0, 0, 0}) || msg != "Blacklisted by bl2.example.net" { // Courier: 511, no enhanced code
			t.Errorf("RCPT %s: %d %v %q, want 511 \"Blacklisted by bl2.example.net\"", r, code, ec, msg)
		}
	}
	c.Quit()
	l.close()
	l.expectEmpty()
	expectChecks(t, l.log.Events(), []checkWant{
		{"ident", net.JoinHostPort(clientIP, strconv.Itoa(l.identPort)), "IDENT", identUser},
		{"reverse", "1.0.0.127.in-addr.arpa", "PTR", clientName},
		{"forward", clientName, "A", clientIP},
		{"dnsbl", "1.0.0.127.bl1.example.net", "A", "not listed"},
		{"dnsbl", "1.0.0.127.bl2.example.net", "A", "listed 127.0.0.2"},
	})
}

func TestChecksOff(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), twoZones), func(c *Config) {
		c.ReverseDNS, c.Blacklists, c.Ident = false, nil, false
	})
	l.send([]string{rcptFoo7}, message("off@test"))
	l.close()
	if n := len(l.dnsLog.Events()); n != 0 {
		t.Errorf("%d DNS queries, want none", n)
	}
	if n := len(l.identLog.Events()); n != 0 {
		t.Errorf("%d ident queries, want none", n)
	}
	if n := len(ofKind(l.log.Events(), events.Check)); n != 0 {
		t.Errorf("%d check events, want none", n)
	}
	f := l.files("new")
	if len(f) != 1 {
		t.Fatalf("%d files, want 1", len(f))
	}
	rcv := readMessage(t, f[0]).Header.Get("Received")
	if !strings.Contains(rcv, "from "+heloName+" (["+clientIP+"])") || strings.Contains(rcv, "IDENT:") {
		t.Errorf("Received: %q", rcv)
	}
}

// A check that fails is logged and the session goes on.
func TestChecksFail(t *testing.T) {
	identName := func(l *lab) string { return net.JoinHostPort(clientIP, strconv.Itoa(l.identPort)) }
	t.Run("no PTR", func(t *testing.T) {
		l := startLab(t, dnsConfig(dnsstub.Zone{}, twoZones), nil)
		l.send([]string{rcptFoo7}, message("noptr@test"))
		l.close()
		evs := l.log.Events()
		expectChecks(t, evs, []checkWant{
			{"ident", identName(l), "IDENT", identUser},
			{"reverse", "1.0.0.127.in-addr.arpa", "PTR", "NXDOMAIN"},
			{"dnsbl", "1.0.0.127.bl1.example.net", "A", "not listed"},
			{"dnsbl", "1.0.0.127.bl2.example.net", "A", "not listed"},
		})
		if e := ofKind(evs, events.Check)[1]; e.Check != "reverse" || e.Error == "" {
			t.Errorf("failed reverse check without error: %+v", e)
		}
		if n := len(l.dnsLog.Events()); n != 3 {
			t.Errorf("%d DNS queries, want 3 (no forward lookup)", n)
		}
		f := l.files("new")
		if len(f) != 1 {
			t.Fatalf("%d files, want 1", len(f))
		}
		rcv := readMessage(t, f[0]).Header.Get("Received")
		if !strings.Contains(rcv, "from "+heloName+" (["+clientIP+"])") || !strings.Contains(rcv, "(IDENT: "+identUser+")") {
			t.Errorf("Received: %q", rcv)
		}
	})
	t.Run("PTR not confirmed", func(t *testing.T) {
		zone := dnsstub.Zone{A: map[string][]string{clientName: {"192.0.2.9"}}, PTR: map[string]string{clientIP: clientName}}
		l := startLab(t, dnsConfig(zone, nil), nil)
		l.send([]string{rcptFoo7}, message("unconfirmed@test"))
		l.close()
		expectChecks(t, l.log.Events(), []checkWant{
			{"ident", identName(l), "IDENT", identUser},
			{"reverse", "1.0.0.127.in-addr.arpa", "PTR", clientName},
			{"forward", clientName, "A", "192.0.2.9"},
		})
		f := l.files("new")
		if len(f) != 1 {
			t.Fatalf("%d files, want 1", len(f))
		}
		if rcv := readMessage(t, f[0]).Header.Get("Received"); !strings.Contains(rcv, "from "+heloName+" (["+clientIP+"])") || strings.Contains(rcv, clientName) {
			t.Errorf("Received: %q names an unconfirmed PTR", rcv)
		}
	})
	t.Run("no DNS server, no identd", func(t *testing.T) {
		deadUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadUDP.Close()
		deadTCP, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadTCP.Close()
		l := startLab(t, dnsConfig(clientZone(), twoZones), func(c *Config) {
			c.DNSServers = []string{deadUDP.LocalAddr().String()}
			c.DNSTimeout, c.DNSRounds = duration.Duration(20*time.Millisecond), 1 // a dead server costs Courier 155 s; not here
			c.IdentPort = deadTCP.Addr().(*net.TCPAddr).Port
		})
		l.send([]string{rcptFoo7}, message("dead@test"))
		l.close()
		checks := ofKind(l.log.Events(), events.Check)
		var got []string
		for _, e := range checks {
			got = append(got, e.Check)
			if e.Error == "" || e.Result == "" {
				t.Errorf("check %s: result %q error %q, want both set", e.Check, e.Result, e.Error)
			}
		}
		if want := []string{"ident", "reverse", "dnsbl", "dnsbl"}; !slices.Equal(got, want) {
			t.Errorf("checks %v, want %v", got, want)
		}
		if n := len(l.files("new")); n != 1 {
			t.Errorf("%d files, want 1", n)
		}
	})
}

// readGreeting reads one reply line; a read that times out returns the
// timeout error.
func readGreeting(c net.Conn, r *bufio.Reader, wait time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(wait))
	defer c.SetReadDeadline(time.Time{})
	return r.ReadString('\n')
}

func TestAdmissionLimit(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), twoZones), func(c *Config) { c.MaxSessions = 2 })
	type held struct {
		c net.Conn
		r *bufio.Reader
	}
	dial := func() held {
		c, err := net.Dial("tcp", l.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return held{c, bufio.NewReader(c)}
	}
	greeted := func(h held) {
		t.Helper()
		line, err := readGreeting(h.c, h.r, time.Minute)
		if err != nil || !strings.HasPrefix(line, "220 ") {
			t.Fatalf("greeting %q, %v", line, err)
		}
	}
	notGreeted := func(h held) {
		t.Helper()
		// The connection waits in the backlog: the read must time out.
		line, err := readGreeting(h.c, h.r, 300*time.Millisecond)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("over the limit, read %q, %v; want a timeout", line, err)
		}
	}
	a, b := dial(), dial()
	greeted(a)
	greeted(b)
	c := dial()
	notGreeted(c)
	a.c.Close() // never said HELO: its slot must come back all the same
	greeted(c)
	d := dial()
	notGreeted(d)
	b.c.Close()
	greeted(d)
	c.c.Close()
	d.c.Close()
	l.close()

	evs := l.log.Events()
	if most, ok := maxOpen(evs); most != 2 || !ok {
		t.Errorf("log shows %d connections open at once (want 2), consistent %v: %v", most, ok, kinds(evs))
	}
	cnt := l.log.Counts()
	if cnt[events.ConnOpen] != 4 || cnt[events.ConnClose] != 4 {
		t.Errorf("%d ConnOpen, %d ConnClose; want 4 and 4", cnt[events.ConnOpen], cnt[events.ConnClose])
	}
}

func TestMultiRecipient(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), twoZones), nil)
	rcpts := []string{"recipient-a@1.foo.example.com", "recipient-b@2.foo.example.com"}
	// The same mailbox named twice (in another case) gets one copy.
	l.send(append(rcpts, "RECIPIENT-A@1.foo.example.com"), message("multi@test"))
	l.close()
	f := l.files("new")
	if len(f) != 2 {
		t.Fatalf("%d files, want 2", len(f))
	}
	var got []string
	for _, p := range f {
		m := readMessage(t, p)
		if id := m.Header.Get("Message-Id"); id != "<multi@test>" {
			t.Errorf("%s: Message-ID %q", p, id)
		}
		dt := m.Header["Delivered-To"]
		if len(dt) != 1 {
			t.Errorf("%s: Delivered-To %q", p, dt)
			continue
		}
		got = append(got, dt[0])
	}
	slices.Sort(got)
	if !slices.Equal(got, rcpts) {
		t.Errorf("Delivered-To %v, want %v", got, rcpts)
	}
	var evRcpts []string
	for _, e := range ofKind(l.log.Events(), events.Delivered) {
		if len(e.Rcpts) != 1 {
			t.Errorf("Delivered event with %v", e.Rcpts)
		}
		evRcpts = append(evRcpts, e.Rcpts...)
	}
	slices.Sort(evRcpts)
	if !slices.Equal(evRcpts, rcpts) {
		t.Errorf("Delivered events for %v, want %v", evRcpts, rcpts)
	}
}

func TestConcurrentClients(t *testing.T) {
	const clients, perClient, maxSessions = 20, 5, 8
	l := startLab(t, dnsConfig(clientZone(), twoZones), func(c *Config) { c.MaxSessions = maxSessions })
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := smtp.Dial(l.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if err := c.Hello(heloName); err != nil {
				t.Error(err)
				return
			}
			for j := range perClient {
				rcpt := fmt.Sprintf("recipient-foo-%d@%d.foo.example.com", j, i)
				if err := sendOn(c, []string{rcpt}, message(fmt.Sprintf("c%d-m%d@test", i, j))); err != nil {
					t.Error(err)
					return
				}
			}
			if err := c.Quit(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	l.close()

	if tmp := l.files("tmp"); len(tmp) != 0 {
		t.Errorf("left in tmp/: %v", tmp)
	}
	msgs, err := l.dir.List()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.MessageID]++
	}
	if len(msgs) != clients*perClient {
		t.Errorf("%d messages, want %d", len(msgs), clients*perClient)
	}
	for i := range clients {
		for j := range perClient {
			if id := fmt.Sprintf("<c%d-m%d@test>", i, j); seen[id] != 1 {
				t.Errorf("%s found %d times", id, seen[id])
			}
		}
	}
	evs := l.log.Events()
	cnt := l.log.Counts()
	if cnt[events.Delivered] != clients*perClient || cnt[events.ConnOpen] != clients || cnt[events.ConnClose] != clients {
		t.Errorf("counts %v", cnt)
	}
	if most, ok := maxOpen(evs); most > maxSessions || !ok {
		t.Errorf("log shows %d connections open at once, limit %d (consistent %v)", most, maxSessions, ok)
	}
	for _, e := range ofKind(evs, events.ConnClose) {
		if e.Count != perClient {
			t.Errorf("connection %s carried %d messages, want %d", e.Conn, e.Count, perClient)
		}
		if n := len(ofKind(ofConn(evs, e.Conn), events.Check)); n != 5 {
			t.Errorf("connection %s: %d checks, want 5", e.Conn, n)
		}
	}
	if n := len(l.dnsLog.Events()); n != 4*clients {
		t.Errorf("%d DNS queries, want %d", n, 4*clients)
	}
	if n := len(l.identLog.Events()); n != clients {
		t.Errorf("%d ident queries, want %d", n, clients)
	}
}

// rawConn speaks SMTP line by line, for what go-smtp's client will not send.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *textproto.Reader
}

func (l *lab) raw() *rawConn {
	l.t.Helper()
	c, err := net.Dial("tcp", l.addr)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: l.t, c: c, r: textproto.NewReader(bufio.NewReader(c))}
	if code := rc.reply(); code != 220 {
		l.t.Fatalf("greeting %d", code)
	}
	return rc
}

func (rc *rawConn) reply() int {
	rc.t.Helper()
	code, msg, err := rc.r.ReadResponse(0)
	if err != nil {
		rc.t.Fatalf("reading reply: %v", err)
	}
	_ = msg
	return code
}

func (rc *rawConn) cmd(line string, want int) {
	rc.t.Helper()
	if _, err := fmt.Fprintf(rc.c, "%s\r\n", line); err != nil {
		rc.t.Fatal(err)
	}
	if code := rc.reply(); code != want {
		rc.t.Errorf("%q: %d, want %d", line, code, want)
	}
}

// A second MAIL without RSET is refused (503): resetting the receiver's
// recipients but not go-smtp's would make DATA answer 250 and deliver
// nothing.
func TestNestedMail(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), nil)
	rc := l.raw()
	rc.cmd("EHLO "+heloName, 250)
	rc.cmd("MAIL FROM:<a@example.org>", 250)
	rc.cmd("RCPT TO:<"+rcptFoo7+">", 250)
	rc.cmd("MAIL FROM:<b@example.org>", 503)
	rc.cmd("DATA", 354)
	rc.cmd(message("nested@test")+".", 250)
	// After the transaction a new MAIL is fine again, and RSET ends one.
	rc.cmd("MAIL FROM:<c@example.org>", 250)
	rc.cmd("RSET", 250)
	rc.cmd("MAIL FROM:<d@example.org>", 250)
	rc.cmd("QUIT", 221)
	l.close()
	f := l.files("new")
	if len(f) != 1 {
		t.Fatalf("%d files after one accepted DATA, want 1", len(f))
	}
	if id := readMessage(t, f[0]).Header.Get("Message-Id"); id != "<nested@test>" {
		t.Errorf("Message-ID %q", id)
	}
}

// The HELO name goes into Received: as a word, whatever the client sent.
func TestReceivedHeloSanitized(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), nil)
	rc := l.raw()
	rc.cmd("HELO evil\rX-Injected:\x01yes", 250)
	rc.cmd("MAIL FROM:<a@example.org>", 250)
	rc.cmd("RCPT TO:<"+rcptFoo7+">", 250)
	rc.cmd("DATA", 354)
	rc.cmd(message("helo@test")+".", 250)
	rc.cmd("QUIT", 221)
	l.close()
	f := l.files("new")
	if len(f) != 1 {
		t.Fatalf("%d files, want 1", len(f))
	}
	data, err := os.ReadFile(f[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\nReceived: from evil_X-Injected:_yes ("+clientName+" ") {
		t.Errorf("HELO name not written as one word:\n%q", data)
	}
}

// Close ends a session still in its checks (here a DNS that never answers
// in time) and logs its close.
func TestCloseDuringChecks(t *testing.T) {
	// The stub holds every query for an hour.
	// The DNS server is a socket that reads and never answers: once it has
	// a query, the connection is in its reverse-DNS check. IDENT (first, as
	// couriertcpd does it) is off, so that is the first check.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) {
		c.DNSServers, c.DNSTimeout, c.Ident = []string{silent.LocalAddr().String()}, duration.Duration(time.Hour), false
	})
	c, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	silent.SetReadDeadline(time.Now().Add(time.Minute)) // a hang detector
	if _, _, err := silent.ReadFrom(make([]byte, 512)); err != nil {
		t.Fatalf("no DNS query from the check: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- l.srv.Close() }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close did not end a session in its checks")
	}
	evs := l.log.Events()
	if got, want := kinds(evs), []events.Kind{events.ConnOpen, events.Check, events.ConnClose}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if e := evs[1]; e.Check != "reverse" || e.Result != "CANCELED" {
		t.Errorf("check %+v, want reverse CANCELED", e)
	}
	// The client sees its connection closed, never a greeting.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read %d bytes, %v after Close", n, err)
	}
}

// Every DNS check names the queries it sent (Via) as the DNS server logged
// them, so a fault on one query is traced to the connection that waited.
func TestChecksNameTheirQueries(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), twoZones), nil)
	l.send([]string{rcptFoo7}, message("via@test"))
	l.close()
	served := map[string]string{}
	for _, e := range ofKind(l.dnsLog.Events(), events.Query) {
		for _, k := range e.Via {
			served[k] = e.Name
		}
	}
	n := 0
	for _, c := range ofKind(l.log.Events(), events.Check) {
		if c.Check == "ident" {
			continue
		}
		if len(c.Via) != 1 {
			t.Errorf("%s check sent %d queries, want 1: %v", c.Check, len(c.Via), c.Via)
		}
		for _, k := range c.Via {
			if served[k] != c.Name {
				t.Errorf("%s check's query %s: the DNS server logged %q, the check %q", c.Check, k, served[k], c.Name)
			}
			n++
		}
	}
	if n != 4 || len(served) != 4 {
		t.Errorf("%d traced queries, %d served; want 4 and 4", n, len(served))
	}
}
