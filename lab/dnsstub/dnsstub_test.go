package dnsstub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

func testConfig() Config {
	return Config{
		Blacklists: []Blacklist{
			{Zone: "bl1.example.net", Listed: []string{"10.0.0.66"}},
			{Zone: "BL2.example.net.", Listed: []string{"10.0.0.66", "10.0.0.67"}, Code: "127.0.0.4", Reason: "spam source"},
		},
		Zone: Zone{
			A: map[string][]string{
				"Sender.Lab.":     {"10.0.0.2"},
				"receiver.lab":    {"10.0.0.3", "10.0.0.4"},
				"noaddr.lab":      {},
				"big.lab":         bigList(60),
				"spammer.lab":     {"10.0.0.66"},
				"in.bl1.lab.test": {"10.9.9.9"},
			},
			AAAA: map[string][]string{"Receiver.lab": {"fd00::3"}, "v6only.lab.": {"fd00:0:0::6"}},
			PTR:  map[string]string{"10.0.0.2": "sender.lab", "10.0.0.66": "Spammer.Lab.", "fd00::3": "receiver.lab"},
			MX:   map[string][]MX{"Mail.Example.com": {{Pref: 20, Host: "backup.lab"}, {Pref: 10, Host: "receiver.lab."}}},
			Extra: []string{
				"_smtp._tcp.lab. SRV 0 0 25 receiver.lab.",
				"alias.lab. CNAME receiver.lab.",
				"dangling.lab. CNAME gone.lab.",
				"loop1.lab. CNAME loop2.lab.",
				"loop2.lab. CNAME loop1.lab.",
				`txt.example.com. 300 IN TXT "hello world"`,
			},
		},
		Origins: []string{"lab", "Example.COM."},
	}
}

func bigList(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
	}
	return out
}

// startServer runs a server for cfg on 127.0.0.1:0 and returns it with its address.
func startServer(t testing.TB, cfg Config) (*Server, *events.Log, string) {
	t.Helper()
	log := events.NewLog("dns")
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, log, addr.String()
}

func query(t *testing.T, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	m, _, err := c.Exchange(new(dns.Msg).SetQuestion(name, qtype), addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.Type(qtype), err)
	}
	return m
}

func rrStrings(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		h := rr.Header()
		out = append(out, strings.TrimPrefix(rr.String(), h.String()))
	}
	return out
}

func TestAnswers(t *testing.T) {
	_, log, addr := startServer(t, testConfig())
	v6rev, _ := dns.ReverseAddr("fd00::3")
	var loop []string
	for i := range maxChain {
		loop = append(loop, []string{"loop2.lab.", "loop1.lab."}[i%2])
	}
	const labSOA = "ns.lab. hostmaster.lab. 1999 3600 600 86400 0"
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string
		soa    string // owner of the SOA in the authority section; "" for none
	}{
		{"sender.lab.", dns.TypeA, dns.RcodeSuccess, []string{"10.0.0.2"}, ""},
		{"SENDER.lab.", dns.TypeA, dns.RcodeSuccess, []string{"10.0.0.2"}, ""},
		{"receiver.LAB.", dns.TypeA, dns.RcodeSuccess, []string{"10.0.0.3", "10.0.0.4"}, ""},
		{"receiver.lab.", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00::3"}, ""},
		{"v6only.lab.", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00::6"}, ""},
		{"v6only.lab.", dns.TypeA, dns.RcodeSuccess, nil, "lab."},
		{"receiver.lab.", dns.TypeMX, dns.RcodeSuccess, nil, "lab."},
		{"noaddr.lab.", dns.TypeA, dns.RcodeSuccess, nil, "lab."},
		{"nowhere.lab.", dns.TypeA, dns.RcodeNameError, nil, "lab."},
		// An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN.
		{"lab.", dns.TypeA, dns.RcodeSuccess, nil, "lab."},
		{"Lab.", dns.TypeSOA, dns.RcodeSuccess, []string{labSOA}, ""},
		{".", dns.TypeSOA, dns.RcodeSuccess, []string{"ns.smtplab.invalid. hostmaster.smtplab.invalid. 1999 3600 600 86400 0"}, ""},
		{"2.0.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"sender.lab."}, ""},
		{"66.0.0.10.IN-ADDR.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"Spammer.Lab."}, ""},
		{"66.0.0.10.in-addr.arpa.", dns.TypeA, dns.RcodeSuccess, nil, "."},
		{"3.0.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, "."},
		{"0.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, nil, "."},
		{v6rev, dns.TypePTR, dns.RcodeSuccess, []string{"receiver.lab."}, ""},
		{"66.0.0.10.bl1.example.net.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2"}, ""},
		{"66.0.0.10.BL1.example.net.", dns.TypeTXT, dns.RcodeSuccess, []string{`"listed in bl1.example.net"`}, ""},
		{"66.0.0.10.bl1.example.net.", dns.TypeAAAA, dns.RcodeSuccess, nil, "bl1.example.net."},
		{"67.0.0.10.bl1.example.net.", dns.TypeA, dns.RcodeNameError, nil, "bl1.example.net."},
		{"67.0.0.10.bl2.example.net.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.4"}, ""},
		{"67.0.0.10.bl2.example.net.", dns.TypeTXT, dns.RcodeSuccess, []string{`"spam source"`}, ""},
		{"68.0.0.10.bl2.example.net.", dns.TypeTXT, dns.RcodeNameError, nil, "bl2.example.net."},
		{"bl1.example.net.", dns.TypeA, dns.RcodeSuccess, nil, "bl1.example.net."},
		{"bl1.example.net.", dns.TypeSOA, dns.RcodeSuccess, []string{"ns.bl1.example.net. hostmaster.bl1.example.net. 1999 3600 600 86400 0"}, ""},
		{"0.0.10.bl1.example.net.", dns.TypeA, dns.RcodeSuccess, nil, "bl1.example.net."},
		{"1.0.10.bl1.example.net.", dns.TypeA, dns.RcodeNameError, nil, "bl1.example.net."},
		{"1.66.0.0.10.bl1.example.net.", dns.TypeA, dns.RcodeNameError, nil, "bl1.example.net."},
		{"066.0.0.10.bl1.example.net.", dns.TypeA, dns.RcodeNameError, nil, "bl1.example.net."},
		{"in.bl1.lab.test.", dns.TypeA, dns.RcodeSuccess, []string{"10.9.9.9"}, ""},
		{"out.bl1.lab.test.", dns.TypeA, dns.RcodeNameError, nil, "."},
		{"mail.example.com.", dns.TypeMX, dns.RcodeSuccess, []string{"20 backup.lab.", "10 receiver.lab."}, ""},
		{"mail.example.com.", dns.TypeA, dns.RcodeSuccess, nil, "example.com."},
		{"x.example.com.", dns.TypeA, dns.RcodeNameError, nil, "example.com."},
		{"txt.example.com.", dns.TypeTXT, dns.RcodeSuccess, []string{`"hello world"`}, ""},
		{"_smtp._tcp.lab.", dns.TypeSRV, dns.RcodeSuccess, []string{"0 0 25 receiver.lab."}, ""},
		{"_smtp._tcp.lab.", dns.TypeA, dns.RcodeSuccess, nil, "lab."},
		{"_tcp.lab.", dns.TypeSRV, dns.RcodeSuccess, nil, "lab."},
		{"alias.lab.", dns.TypeA, dns.RcodeSuccess, []string{"receiver.lab.", "10.0.0.3", "10.0.0.4"}, ""},
		{"alias.lab.", dns.TypeCNAME, dns.RcodeSuccess, []string{"receiver.lab."}, ""},
		{"alias.lab.", dns.TypeMX, dns.RcodeSuccess, []string{"receiver.lab."}, "lab."},
		{"dangling.lab.", dns.TypeA, dns.RcodeNameError, []string{"gone.lab."}, "lab."},
		{"loop1.lab.", dns.TypeA, dns.RcodeSuccess, loop, "lab."},
	}
	for i, tt := range tests {
		network := []string{"udp", "tcp"}[i%2]
		m := query(t, network, addr, tt.name, tt.qtype)
		got := rrStrings(m)
		if m.Rcode != tt.rcode || !m.Authoritative || fmt.Sprint(got) != fmt.Sprint(tt.answer) {
			t.Errorf("%s %s %s: rcode %s aa %v answer %q; want %s aa true %q", network, tt.name, dns.Type(tt.qtype),
				dns.RcodeToString[m.Rcode], m.Authoritative, got, dns.RcodeToString[tt.rcode], tt.answer)
		}
		if len(m.Answer) > 0 && m.Answer[0].Header().Name != tt.name {
			t.Errorf("%s: owner %q, want the question's spelling", tt.name, m.Answer[0].Header().Name)
		}
		for _, rr := range m.Answer {
			want := uint32(0)
			if tt.name == "txt.example.com." { // an extra line's own TTL
				want = 300
			}
			if rr.Header().Ttl != want {
				t.Errorf("%s: TTL %d, want %d", tt.name, rr.Header().Ttl, want)
			}
		}
		switch {
		case tt.soa == "" && len(m.Ns) != 0:
			t.Errorf("%s %s: authority %v, want none", tt.name, dns.Type(tt.qtype), m.Ns)
		case tt.soa != "":
			soa, ok := (*dns.SOA)(nil), len(m.Ns) == 1
			if ok {
				soa, ok = m.Ns[0].(*dns.SOA)
			}
			if !ok || soa.Hdr.Name != tt.soa || soa.Minttl != 0 || soa.Hdr.Ttl != 0 || soa.Serial != soaSerial {
				t.Errorf("%s %s: authority %v, want the SOA of %s", tt.name, dns.Type(tt.qtype), m.Ns, tt.soa)
			}
		}
	}
	evs := log.Events()
	if len(evs) != len(tests) {
		t.Fatalf("%d events, want %d", len(evs), len(tests))
	}
	byName := map[string]events.Event{}
	for _, e := range evs {
		if e.Kind != events.Query || e.Host == "" || !strings.HasPrefix(e.Host, "127.0.0.1:") {
			t.Errorf("event %+v", e)
		}
		byName[e.Name+" "+e.QType] = e
	}
	for _, tt := range tests {
		key := strings.ToLower(strings.TrimSuffix(tt.name, ".")) + " " + dns.Type(tt.qtype).String()
		if e, ok := byName[key]; !ok || e.Result != dns.RcodeToString[tt.rcode] {
			t.Errorf("event for %q: %+v (found %v)", key, e, ok)
		}
	}
}

func TestMalformed(t *testing.T) {
	_, log, addr := startServer(t, testConfig())
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	two := new(dns.Msg).SetQuestion("sender.lab.", dns.TypeA)
	two.Question = append(two.Question, dns.Question{Name: "receiver.lab.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	none := new(dns.Msg).SetQuestion("sender.lab.", dns.TypeA)
	none.Question = nil
	chaos := new(dns.Msg).SetQuestion("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	update := new(dns.Msg).SetQuestion("lab.", dns.TypeSOA)
	update.Opcode = dns.OpcodeUpdate
	for _, tt := range []struct {
		q     *dns.Msg
		rcode int
	}{{two, dns.RcodeFormatError}, {none, dns.RcodeFormatError}, {chaos, dns.RcodeRefused}, {update, dns.RcodeNotImplemented}} {
		co := &dns.Conn{Conn: c}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := co.WriteMsg(tt.q); err != nil {
			t.Fatal(err)
		}
		m, err := co.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if m.Rcode != tt.rcode || m.Id != tt.q.Id {
			t.Errorf("rcode %s id %d, want %s id %d", dns.RcodeToString[m.Rcode], m.Id, dns.RcodeToString[tt.rcode], tt.q.Id)
		}
	}
	// A header claiming a question that is not there: miekg/dns answers
	// FORMERR itself and the server logs it.
	bad := []byte{0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a'}
	if _, err := c.Write(bad); err != nil {
		t.Fatal(err)
	}
	m, err := (&dns.Conn{Conn: c}).ReadMsg()
	if err != nil || m.Rcode != dns.RcodeFormatError {
		t.Errorf("truncated packet: %v %v", m, err)
	}
	// Shorter than a header: dropped without an answer, and the server goes
	// on serving.
	if _, err := c.Write([]byte{0x12, 0x34, 0}); err != nil {
		t.Fatal(err)
	}
	if m := query(t, "udp", addr, "sender.lab.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Errorf("after malformed packets: %v", m)
	}
	labtest.Until(t, "7 events", func() bool { return len(log.Events()) >= 7 })
	var results []string
	for _, e := range log.Events() {
		results = append(results, e.Result)
	}
	if len(results) == 7 {
		slices.Sort(results[5:]) // the last two raced
	}
	if got, want := strings.Join(results, " "), "FORMERR FORMERR REFUSED NOTIMP FORMERR DROPPED NOERROR"; got != want {
		t.Errorf("results %q, want %q", got, want)
	}
}

func TestTruncation(t *testing.T) {
	_, _, addr := startServer(t, testConfig())
	udp := query(t, "udp", addr, "big.lab.", dns.TypeA)
	if !udp.Truncated || len(udp.Answer) >= 60 {
		t.Errorf("udp: TC %v with %d answers, want TC and fewer than 60", udp.Truncated, len(udp.Answer))
	}
	if tcp := query(t, "tcp", addr, "big.lab.", dns.TypeA); tcp.Truncated || len(tcp.Answer) != 60 {
		t.Errorf("tcp: TC %v with %d answers, want 60", tcp.Truncated, len(tcp.Answer))
	}
}

// TestDelayConcurrent holds queries for an hour: they can only all be
// waiting at once if each UDP packet and each TCP connection has its own
// goroutine. Close must then end every wait.
func TestDelayConcurrent(t *testing.T) {
	cfg := testConfig()
	cfg.QueryDelay = time.Hour
	s, log, addr := startServer(t, cfg)
	const n = 4
	for i := range 2 * n {
		network := []string{"udp", "tcp"}[i%2]
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := (&dns.Conn{Conn: c}).WriteMsg(new(dns.Msg).SetQuestion("sender.lab.", dns.TypeA)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second) // a failure bound, not a measurement
	for s.waiting.Load() != 2*n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.waiting.Load(); got != 2*n {
		t.Fatalf("%d queries waiting at once, want %d", got, 2*n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.waiting.Load(); got != 0 {
		t.Errorf("%d queries still waiting after Close", got)
	}
	evs := log.Events()
	if len(evs) != 2*n {
		t.Fatalf("%d events, want %d", len(evs), 2*n)
	}
	for _, e := range evs {
		if e.Result != "DROPPED" || e.Name != "sender.lab" || e.QType != "A" {
			t.Errorf("event %+v", e)
		}
	}
}

func TestSetZoneConcurrent(t *testing.T) {
	s, _, addr := startServer(t, testConfig())
	zones := []Zone{
		{A: map[string][]string{"flip.lab": {"10.0.1.1"}}},
		{A: map[string][]string{"FLIP.lab.": {"10.0.2.2"}}},
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.SetZone(zones[i%2]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 50 {
		m := query(t, "udp", addr, "flip.lab.", dns.TypeA)
		if got := fmt.Sprint(rrStrings(m)); m.Rcode == dns.RcodeSuccess && got != "[10.0.1.1]" && got != "[10.0.2.2]" {
			t.Errorf("answer %s", got)
		}
		// Before the first SetZone lands the name is unknown.
		if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
			t.Errorf("rcode %s", dns.RcodeToString[m.Rcode])
		}
	}
	close(stop)
	wg.Wait()
}

func TestValidate(t *testing.T) {
	good := testConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.QueryDelay = -time.Second }, "-1s"},
		{func(c *Config) { c.Zone.A = map[string][]string{"a..b": {"10.0.0.1"}} }, `"a..b"`},
		{func(c *Config) { c.Zone.A = map[string][]string{".": {"10.0.0.1"}} }, `"."`},
		{func(c *Config) { c.Zone.A = map[string][]string{"ok.lab": {"10.0.0.256"}} }, `"10.0.0.256"`},
		{func(c *Config) { c.Zone.A = map[string][]string{"ok.lab": {"::1"}} }, `"::1"`},
		{func(c *Config) { c.Zone.A = map[string][]string{"ok.lab": nil, "OK.lab.": nil} }, "twice"},
		{func(c *Config) { c.Zone.PTR = map[string]string{"10.0.0.x": "ok.lab"} }, `"10.0.0.x"`},
		{func(c *Config) { c.Zone.PTR = map[string]string{"10.0.0.1": ""} }, `""`},
		{func(c *Config) { c.Blacklists[0].Zone = "bad zone..x" }, `"bad zone..x"`},
		{func(c *Config) { c.Blacklists[0].Listed = []string{"10.0.0"} }, `"10.0.0"`},
		{func(c *Config) { c.Blacklists[0].Code = "spam" }, `"spam"`},
		{func(c *Config) { c.Blacklists[0].Reason = strings.Repeat("x", 256) }, "255"},
		{func(c *Config) { c.Zone.PTR = map[string]string{"::ffff:10.0.0.1": "ok.lab"} }, `"::ffff:10.0.0.1"`},
		{func(c *Config) { c.Zone.PTR = map[string]string{"FD00::1": "ok.lab"} }, `"FD00::1"`},
		{func(c *Config) { c.Zone.AAAA = map[string][]string{"ok.lab": {"10.0.0.1"}} }, `"10.0.0.1"`},
		{func(c *Config) { c.Zone.AAAA = map[string][]string{"ok.lab": {"::ffff:10.0.0.1"}} }, `"::ffff:10.0.0.1"`},
		{func(c *Config) { c.Zone.AAAA = map[string][]string{"ok..lab": {"fd00::1"}} }, `"ok..lab"`},
		{func(c *Config) { c.Zone.AAAA = map[string][]string{"ok.lab": nil, "OK.LAB": nil} }, "twice"},
		{func(c *Config) { c.Zone.MX = map[string][]MX{"ok.lab": {{Host: "bad..mx"}}} }, `"bad..mx"`},
		{func(c *Config) { c.Zone.MX = map[string][]MX{"ok.lab.": nil, "ok.lab": nil} }, "twice"},
		{func(c *Config) { c.Zone.Extra = []string{"ok.lab. A 10.0.0.1", "x.lab. A 10.0.0.300"} }, `extra record 2 "x.lab. A 10.0.0.300": dns: bad A A`},
		{func(c *Config) { c.Zone.Extra = []string{"x.lab. BOGUS 1"} }, `"x.lab. BOGUS 1": dns:`},
		{func(c *Config) { c.Zone.Extra = []string{"; a comment"} }, "no record"},
		{func(c *Config) { c.Zone.Extra = []string{"x.lab. CH TXT \"a\""} }, "only IN"},
		{func(c *Config) { c.Zone.Extra = []string{"x.lab. A 10.0.0.1\ny.lab. A 10.0.0.2"} }, "more than one"},
		{func(c *Config) { c.Origins = []string{"lab", "bad..origin"} }, `"bad..origin"`},
	}
	for _, tt := range tests {
		cfg := testConfig()
		tt.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want one naming %s", err, tt.want)
		}
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("New accepted the config with %s", tt.want)
		}
	}
}

func TestListenClose(t *testing.T) {
	s, _, addr := startServer(t, testConfig())
	if _, err := s.Listen("127.0.0.1:0"); err == nil {
		t.Error("second Listen succeeded")
	}
	// TCP is on the UDP port.
	if m := query(t, "tcp", addr, "sender.lab.", dns.TypeA); len(m.Answer) != 1 {
		t.Errorf("tcp answer %v", m.Answer)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Listen("127.0.0.1:0"); err == nil {
		t.Error("Listen after Close succeeded")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("TCP still accepting after Close")
	}
	unstarted, _ := New(Config{}, nil)
	if err := unstarted.Close(); err != nil {
		t.Errorf("Close without Listen: %v", err)
	}
}

func TestHandler(t *testing.T) {
	s, log, addr := startServer(t, testConfig())
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	post := func(body string) (int, string) {
		resp, err := http.Post(hs.URL+"/zone", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"a":{"x.lab":["10.0.0.300"]}}`, "10.0.0.300"},
		{`{"a":`, "JSON"},
		{`{"hosts":{}}`, "hosts"},
		{`{"a":{}} {}`, "after"},
	} {
		if code, body := post(tt.body); code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
			t.Errorf("POST %s: %d %q, want 400 naming %s", tt.body, code, body, tt.want)
		}
	}
	// The old zone survives bad posts.
	if m := query(t, "udp", addr, "sender.lab.", dns.TypeA); m.Rcode != dns.RcodeSuccess {
		t.Errorf("sender.lab after bad posts: %s", dns.RcodeToString[m.Rcode])
	}
	if code, body := post(`{"a":{"new.lab":["10.0.5.5"]},"ptr":{"10.0.5.5":"new.lab"}}`); code != http.StatusNoContent {
		t.Fatalf("good POST: %d %q", code, body)
	}
	if m := query(t, "udp", addr, "5.5.0.10.in-addr.arpa.", dns.TypePTR); fmt.Sprint(rrStrings(m)) != "[new.lab.]" {
		t.Errorf("PTR after POST: %v", m.Answer)
	}
	if m := query(t, "udp", addr, "sender.lab.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("sender.lab after POST: %s, want NXDOMAIN (zone replaced)", dns.RcodeToString[m.Rcode])
	}
	resp, err := http.Get(hs.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var counts map[events.Kind]int
	err = json.NewDecoder(resp.Body).Decode(&counts)
	resp.Body.Close()
	if err != nil || counts[events.Query] != 3 {
		t.Errorf("status %v %v, want 3 queries", counts, err)
	}
	resp, err = http.Get(hs.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	evs, err := events.ReadJSONL(resp.Body)
	resp.Body.Close()
	if err != nil || len(evs) != len(log.Events()) {
		t.Errorf("events %d %v", len(evs), err)
	}
}

// FuzzReply feeds packets that parse to the answer logic: it must not
// panic, must answer with one of the rcodes it knows, and the answer must
// pack. FuzzServe takes whole packets the rest of the way.
func FuzzReply(f *testing.F) {
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion("66.0.0.10.bl1.example.net.", dns.TypeA),
		new(dns.Msg).SetQuestion("2.0.0.10.in-addr.arpa.", dns.TypePTR),
		new(dns.Msg).SetQuestion("Receiver.Lab.", dns.TypeTXT),
	} {
		b, _ := q.Pack()
		f.Add(b)
	}
	s, err := New(testConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if req.Unpack(b) != nil {
			return
		}
		m := s.reply(req)
		switch m.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeFormatError, dns.RcodeRefused, dns.RcodeNotImplemented, dns.RcodeBadVers:
		default:
			t.Fatalf("rcode %d", m.Rcode)
		}
		if m.Id != req.Id || !m.Response {
			t.Fatalf("reply header %v", m.MsgHdr)
		}
		m.Truncate(dns.MinMsgSize)
		if _, err := m.Pack(); err != nil {
			t.Fatalf("pack: %v", err)
		}
	})
}

// FuzzZoneJSON posts arbitrary bodies: a body that decodes and validates
// must then answer A for every host it names.
func FuzzZoneJSON(f *testing.F) {
	f.Add([]byte(`{"a":{"Host.Lab.":["10.0.0.1","10.0.0.2"]},"ptr":{"10.0.0.1":"host.lab"}}`))
	f.Add([]byte(`{"a":{"x":[]},"ptr":{}}`))
	f.Add([]byte(`{"a":{"a\\.":["1.2.3.4"]}}`))
	f.Add([]byte(`{"aaaa":{"h.lab":["fd00::1"]},"mx":{"lab":[{"pref":10,"host":"h.lab"}]},"extra":["h.lab. CNAME x.lab.","x.lab. 60 TXT \"t\""]}`))
	s, err := New(Config{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		z, err := decodeZone(bytes.NewReader(b))
		if err != nil || s.SetZone(z) != nil {
			return
		}
		for name, ips := range z.A {
			m := s.reply(new(dns.Msg).SetQuestion(dns.Fqdn(name), dns.TypeA))
			// Extra lines may add more addresses, never fewer.
			if m.Rcode != dns.RcodeSuccess || len(m.Answer) < len(ips) {
				t.Fatalf("%q: rcode %d, %d answers, want %d", name, m.Rcode, len(m.Answer), len(ips))
			}
		}
	})
}

// FuzzReversedIPv4 checks the DNSBL octet parser: whatever it accepts must
// be exactly the reversed dotted quad of the address it returns.
func FuzzReversedIPv4(f *testing.F) {
	f.Add("4.3.2.1")
	f.Add("04.3.2.1")
	f.Add("1.2.3")
	f.Fuzz(func(t *testing.T, s string) {
		ip, ok := reversedIPv4(s)
		if !ok {
			return
		}
		rev, _ := dns.ReverseAddr(ip.String())
		if rev != s+".in-addr.arpa." {
			t.Fatalf("%q parsed as %v", s, ip)
		}
	})
}

// FuzzServe takes whole packets, as they come off a socket, the way
// ServeDNS does: miekg/dns's header check and accept function, then
// arrival, answer and logging exactly as ServeDNS runs them; only the final
// socket write is left out (finish with a nil writer). Whatever comes in, either nothing is answered
// or the answer unpacks, fits the transport, matches the query and is
// logged with its size and a new sequence number.
func FuzzServe(f *testing.F) {
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion("66.0.0.10.bl1.example.net.", dns.TypeTXT),
		new(dns.Msg).SetQuestion("2.0.0.10.in-addr.arpa.", dns.TypePTR).SetEdns0(4096, true),
		new(dns.Msg).SetQuestion("big.lab.", dns.TypeA).SetEdns0(600, false),
		new(dns.Msg).SetQuestion("big.lab.", dns.TypeA),
		new(dns.Msg).SetQuestion("alias.lab.", dns.TypeA),
		new(dns.Msg).SetQuestion("lab.", dns.TypeANY),
	} {
		b, _ := q.Pack()
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte{0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a'}, false)
	s, err := New(testConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	remote := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
	f.Fuzz(func(t *testing.T, b []byte, tcp bool) {
		s.log = events.NewLog("dns") // one log per input, so memory stays flat
		seq := s.seq.Load()
		req := new(dns.Msg)
		switch {
		case len(b) < 12:
			s.invalid(b, dns.ErrShortRead)
			return
		case accept(dns.Header{Bits: uint16(b[2])<<8 | uint16(b[3])}) == dns.MsgIgnore:
			return
		case req.Unpack(b) != nil:
			s.invalid(b, errors.New("unpack"))
			return
		}
		x := s.arrived(req, remote, tcp)
		s.answer(x)
		s.finish(nil, x)
		evs := s.log.Events()
		if len(evs) != 1 || evs[0].Seq != int(seq)+1 {
			t.Fatalf("events %+v after seq %d", evs, seq)
		}
		if x.wire == nil {
			t.Fatalf("no answer; event %+v", evs[0])
		}
		limit := dns.MaxMsgSize
		if !tcp {
			limit = dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				limit = max(dns.MinMsgSize, min(int(opt.UDPSize()), 1232))
			}
		}
		if len(x.wire) > limit || evs[0].SizeOut != len(x.wire) {
			t.Fatalf("answer of %d bytes, limit %d, event says %d", len(x.wire), limit, evs[0].SizeOut)
		}
		m := new(dns.Msg)
		if err := m.Unpack(x.wire); err != nil {
			t.Fatalf("answer does not unpack: %v", err)
		}
		if m.Id != req.Id || !m.Response || m.Rcode == dns.RcodeServerFailure || evs[0].Result != rcodeName(m.Rcode) {
			t.Fatalf("answer header %v, event result %s", m.MsgHdr, evs[0].Result)
		}
	})
}

// BenchmarkThroughputUDP runs concurrent UDP clients, each on a socket of
// its own with one query outstanding, against one server without delay,
// and reports the answers per second. A lost packet is sent again after a
// second, and counted.
func BenchmarkThroughputUDP(b *testing.B) {
	_, _, addr := startServer(b, testConfig())
	var queries [][]byte
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion("sender.lab.", dns.TypeA),
		new(dns.Msg).SetQuestion("2.0.0.10.in-addr.arpa.", dns.TypePTR),
		new(dns.Msg).SetQuestion("66.0.0.10.bl1.example.net.", dns.TypeA),
		new(dns.Msg).SetQuestion("nowhere.lab.", dns.TypeA).SetEdns0(1232, false),
	} {
		q.Id = 0
		p, err := q.Pack()
		if err != nil {
			b.Fatal(err)
		}
		queries = append(queries, p)
	}
	var lost atomic.Int64
	b.SetParallelism(4) // 4 clients per CPU keep the server busy while clients wait
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 2048)
		own := make([][]byte, len(queries)) // IDs are written into these
		for i, q := range queries {
			own[i] = append([]byte(nil), q...)
		}
		var id uint16
		for i := 0; pb.Next(); i++ {
			q := own[i%len(own)]
			id++
			q[0], q[1] = byte(id>>8), byte(id)
			for {
				if _, err := c.Write(q); err != nil {
					b.Error(err)
					return
				}
				c.SetReadDeadline(time.Now().Add(time.Second))
				n, err := c.Read(buf)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					lost.Add(1)
					continue
				}
				if err != nil {
					b.Error(err)
					return
				}
				if n < 12 || buf[0] != q[0] || buf[1] != q[1] || buf[2]&0x80 == 0 || buf[3]&0xf > dns.RcodeNameError {
					b.Errorf("bad answer % x", buf[:min(n, 12)])
					return
				}
				break
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	b.ReportMetric(float64(lost.Load()), "lost")
}
