package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/events"
)

// stub runs a dnsstub.Server for the lab's little world on 127.0.0.1:0.
func stub(t *testing.T) (string, *events.Log) {
	t.Helper()
	var big []string
	for i := 1; i <= 60; i++ {
		big = append(big, fmt.Sprintf("10.1.0.%d", i))
	}
	log := events.NewLog("dns")
	s, err := dnsstub.New(dnsstub.Config{
		Blacklists: []dnsstub.Blacklist{{Zone: "bl.example.net", Listed: []string{"10.0.0.66"}, Code: "127.0.0.3", Reason: "spam source"}},
		Zone: dnsstub.Zone{
			A:   map[string][]string{"sender.lab": {"10.0.0.2"}, "noaddr.lab": {}, "big.lab": big},
			PTR: map[string]string{"10.0.0.2": "Sender.Lab."},
		},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return addr.String(), log
}

// silent is a UDP socket that never answers; it reports each packet it
// receives (as a server index) on got, and counts them.
type silent struct {
	conn net.PacketConn
	mu   sync.Mutex
	n    int
	got  chan struct{}
}

func newSilent(t *testing.T) *silent {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silent{conn: c, got: make(chan struct{}, 100)}
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			s.mu.Lock()
			s.n++
			s.mu.Unlock()
			s.got <- struct{}{}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

func (s *silent) addr() string { return s.conn.LocalAddr().String() }

// count waits until want packets arrived (packets already sent may still be
// in the socket buffer), then returns the count.
func (s *silent) count(want int) int {
	deadline := time.Now().Add(10 * time.Second) // a failure bound, not a measurement
	for {
		s.mu.Lock()
		n := s.n
		s.mu.Unlock()
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

func notFound(t *testing.T, err error, result string) {
	t.Helper()
	var le *LookupError
	if !errors.As(err, &le) || !le.NotFound || le.Temporary() || le.Result() != result {
		t.Errorf("error %v, want a not-found LookupError with result %s", err, result)
	}
}

func TestLookups(t *testing.T) {
	addr, dnsLog := stub(t)
	r := &Resolver{Servers: []string{addr}}
	ctx := context.Background()

	names, err := r.PTR(ctx, net.ParseIP("10.0.0.2"))
	if err != nil || fmt.Sprint(names) != "[Sender.Lab]" {
		t.Errorf("PTR 10.0.0.2: %v %v", names, err)
	}
	names, err = r.PTR(ctx, net.ParseIP("10.0.0.9"))
	if names != nil {
		t.Errorf("PTR 10.0.0.9 names %v", names)
	}
	notFound(t, err, "NXDOMAIN")

	ips, err := r.A(ctx, "SENDER.lab")
	if err != nil || fmt.Sprint(ips) != "[10.0.0.2]" {
		t.Errorf("A sender.lab: %v %v", ips, err)
	}
	_, err = r.A(ctx, "nowhere.lab.")
	notFound(t, err, "NXDOMAIN")
	_, err = r.A(ctx, "noaddr.lab")
	notFound(t, err, "NODATA")

	listed, code, err := r.DNSBL(ctx, net.ParseIP("10.0.0.66"), "bl.example.net")
	if !listed || code != "127.0.0.3" || err != nil {
		t.Errorf("DNSBL 10.0.0.66: %v %q %v", listed, code, err)
	}
	listed, code, err = r.DNSBL(ctx, net.ParseIP("10.0.0.2"), "bl.example.net.")
	if listed || code != "" || err != nil {
		t.Errorf("DNSBL 10.0.0.2: %v %q %v", listed, code, err)
	}
	if _, _, err = r.DNSBL(ctx, net.ParseIP("::1"), "bl.example.net"); err == nil {
		t.Error("DNSBL of an IPv6 address succeeded")
	}

	m, err := r.Exchange(ctx, "66.0.0.10.bl.example.net", dns.TypeTXT)
	if err != nil || len(m.Answer) != 1 || fmt.Sprint(m.Answer[0].(*dns.TXT).Txt) != "[spam source]" {
		t.Errorf("TXT: %v %v", m, err)
	}

	// One query each: no answer was retried.
	if n := len(dnsLog.Events()); n != 8 {
		t.Errorf("%d queries at the server, want 8", n)
	}
}

// TestTruncated: 60 A records do not fit 512 bytes, so the stub truncates
// the UDP answer and the resolver must ask again over TCP.
func TestTruncated(t *testing.T) {
	addr, dnsLog := stub(t)
	r := &Resolver{Servers: []string{addr}}
	ips, err := r.A(context.Background(), "big.lab")
	if err != nil || len(ips) != 60 {
		t.Fatalf("A big.lab: %d addresses, %v", len(ips), err)
	}
	if n := len(dnsLog.Events()); n != 2 {
		t.Errorf("%d queries at the server, want 2 (UDP, then TCP)", n)
	}
}

func TestRetrySchedule(t *testing.T) {
	a, b := newSilent(t), newSilent(t)
	r := &Resolver{Servers: []string{a.addr(), b.addr()}, FirstTimeout: 10 * time.Millisecond, Multiplier: 2, Rounds: 3}
	_, err := r.Exchange(context.Background(), "sender.lab", dns.TypeA)
	var le *LookupError
	if !errors.As(err, &le) || !le.Temporary() || le.Rcode != -1 || le.Result() != "TIMEOUT" {
		t.Errorf("error %v, want a temporary TIMEOUT", err)
	}
	if na, nb := a.count(3), b.count(3); na != 3 || nb != 3 {
		t.Errorf("packets %d and %d, want 3 each (rounds x 1)", na, nb)
	}
}

// TestFailover: a dead server (no answer), then a refused port, then the
// stub: the answer comes from the stub and the dead one was asked once.
func TestFailover(t *testing.T) {
	addr, dnsLog := stub(t)
	dead := newSilent(t)
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().String()
	closed.Close()
	r := &Resolver{Servers: []string{dead.addr(), closedAddr, addr}, FirstTimeout: 20 * time.Millisecond}
	ips, err := r.A(context.Background(), "sender.lab")
	if err != nil || len(ips) != 1 {
		t.Fatalf("A: %v %v", ips, err)
	}
	if n := dead.count(1); n != 1 {
		t.Errorf("dead server got %d packets, want 1", n)
	}
	if n := len(dnsLog.Events()); n != 1 {
		t.Errorf("stub got %d queries, want 1", n)
	}
}

// TestServfailNotRetried: an answer with any rcode ends the lookup, so the
// second server is never asked; SERVFAIL is a temporary failure.
func TestServfailNotRetried(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteMsg(new(dns.Msg).SetRcode(q, dns.RcodeServerFailure))
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	defer srv.Shutdown()
	addr, dnsLog := stub(t)

	r := &Resolver{Servers: []string{pc.LocalAddr().String(), addr}}
	_, err = r.PTR(context.Background(), net.ParseIP("10.0.0.2"))
	var le *LookupError
	if !errors.As(err, &le) || !le.Temporary() || le.Rcode != dns.RcodeServerFailure || Result(err) != "SERVFAIL" {
		t.Errorf("error %v, want a temporary SERVFAIL", err)
	}
	listed, _, err := r.DNSBL(context.Background(), net.ParseIP("10.0.0.66"), "bl.example.net")
	if listed || err == nil {
		t.Errorf("DNSBL on SERVFAIL: listed %v err %v, want a temporary error", listed, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 2 || len(dnsLog.Events()) != 0 {
		t.Errorf("SERVFAIL server asked %d times, stub %d; want 2 and 0", n, len(dnsLog.Events()))
	}
}

// TestCancel: with an hour-long timeout, the lookup can only return because
// the context was cancelled.
func TestCancel(t *testing.T) {
	dead := newSilent(t)
	r := &Resolver{Servers: []string{dead.addr()}, FirstTimeout: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-dead.got
		cancel()
	}()
	_, err := r.A(ctx, "sender.lab")
	if !errors.Is(err, context.Canceled) || Result(err) != "CANCELED" {
		t.Errorf("error %v, want context.Canceled", err)
	}
	_, err = r.Exchange(ctx, "sender.lab", dns.TypeA)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("already cancelled: %v", err)
	}
	if n := dead.count(1); n != 1 {
		t.Errorf("%d packets, want 1 (none after the cancel)", n)
	}
}

func TestNoServers(t *testing.T) {
	_, err := (&Resolver{}).A(context.Background(), "sender.lab")
	var le *LookupError
	if !errors.As(err, &le) || !le.Temporary() {
		t.Errorf("error %v", err)
	}
}

// FuzzAnswers feeds arbitrary replies to the answer parser: no panic, and
// either records or a LookupError that says NotFound exactly for NXDOMAIN
// and empty NOERROR.
func FuzzAnswers(f *testing.F) {
	m := new(dns.Msg).SetQuestion("sender.lab.", dns.TypeA)
	m.Response = true
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "sender.lab.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(10, 0, 0, 2)}}
	b, _ := m.Pack()
	f.Add(b)
	m.Answer, m.Rcode = nil, dns.RcodeNameError
	b, _ = m.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if m.Unpack(b) != nil {
			return
		}
		as, aerr := answers[*dns.A](m, "x", dns.TypeA)
		ps, perr := answers[*dns.PTR](m, "x", dns.TypePTR)
		for _, c := range []struct {
			n   int
			err error
		}{{len(as), aerr}, {len(ps), perr}} {
			var le *LookupError
			switch {
			case c.err == nil && c.n == 0:
				t.Fatal("no records and no error")
			case c.err == nil:
			case !errors.As(c.err, &le):
				t.Fatalf("error %T", c.err)
			case le.NotFound != (m.Rcode == dns.RcodeNameError || m.Rcode == dns.RcodeSuccess):
				t.Fatalf("rcode %d NotFound %v", m.Rcode, le.NotFound)
			}
		}
	})
}

// TestLateAnswerTaken: a server that answers only after the retry. Courier
// builds the query once and keeps its socket, so the retry has the same
// source and id, and an answer to either try ends the lookup; a reply with
// another id is skipped.
func TestLateAnswerTaken(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	type pkt struct {
		from string
		id   uint16
	}
	got := make(chan []pkt, 1)
	go func() {
		var seen []pkt
		var first *dns.Msg
		var from net.Addr
		buf := make([]byte, 512)
		for len(seen) < 2 {
			n, f, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil {
				continue
			}
			seen = append(seen, pkt{f.String(), m.Id})
			if first == nil {
				first, from = m, f
			}
		}
		// After the retry: first a reply with a wrong id, then the answer
		// to the first try.
		wrong := new(dns.Msg).SetRcode(first, dns.RcodeNameError)
		wrong.Id = first.Id + 1
		b, _ := wrong.Pack()
		pc.WriteTo(b, from)
		ans := new(dns.Msg).SetReply(first)
		ans.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: first.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(10, 0, 0, 2)}}
		b, _ = ans.Pack()
		pc.WriteTo(b, from)
		got <- seen
	}()
	r := &Resolver{Servers: []string{pc.LocalAddr().String()}, FirstTimeout: 20 * time.Millisecond, Multiplier: 1000, Rounds: 3}
	tr := &Trace{}
	ips, err := r.A(WithTrace(context.Background(), tr), "sender.lab")
	if err != nil || fmt.Sprint(ips) != "[10.0.0.2]" {
		t.Fatalf("A: %v %v, want the late answer", ips, err)
	}
	seen := <-got
	if seen[0] != seen[1] {
		t.Errorf("tries %v and %v: want one source and one id", seen[0], seen[1])
	}
	if keys := tr.Keys(); len(keys) != 1 || keys[0] != events.QueryKey(seen[0].from, seen[0].id) {
		t.Errorf("trace %v, want the one query key", keys)
	}
}

// TestRefusedPortWaited: Courier's unconnected UDP socket never hears the
// ICMP "port unreachable", so a closed port is a timeout, not an error.
func TestRefusedPortWaited(t *testing.T) {
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.LocalAddr().String()
	closed.Close()
	r := &Resolver{Servers: []string{addr}, FirstTimeout: 20 * time.Millisecond, Rounds: 1}
	_, err = r.A(context.Background(), "sender.lab")
	if Result(err) != "TIMEOUT" {
		t.Errorf("error %v (%s), want TIMEOUT", err, Result(err))
	}
}

// TestAAAAAndListed: the lookups the 1.0.16 profile adds.
func TestAAAAAndListed(t *testing.T) {
	addr, _ := stub(t)
	r := &Resolver{Servers: []string{addr}}
	ctx := context.Background()
	_, err := r.AAAA(ctx, "sender.lab")
	notFound(t, err, "NODATA")
	listed, txt, err := r.Listed(ctx, "66.0.0.10.bl.example.net", dns.TypeTXT)
	if !listed || txt != "spam source" || err != nil {
		t.Errorf("TXT listing: %v %q %v", listed, txt, err)
	}
	listed, _, err = r.Listed(ctx, "6.6.0.0.0.0.a.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.example.net", dns.TypeA)
	if listed || err != nil {
		t.Errorf("nibble form: %v %v, want not listed", listed, err)
	}
}
