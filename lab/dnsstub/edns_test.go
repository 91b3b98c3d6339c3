package dnsstub

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
)

// rawExchange sends q over a UDP socket of its own and returns the answer's
// bytes as they came off the wire.
func rawExchange(t *testing.T, addr string, q []byte) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEDNS(t *testing.T) {
	cfg := testConfig()
	cfg.Zone.A["bigger.lab"] = bigList(100)
	_, log, addr := startServer(t, cfg)

	withOPT := func(name string, size uint16, do bool) *dns.Msg {
		return new(dns.Msg).SetQuestion(name, dns.TypeA).SetEdns0(size, do)
	}
	tests := []struct {
		what    string
		q       *dns.Msg
		max     int    // largest answer allowed on the wire
		tc      bool   // truncated
		n       int    // answers (when not truncated)
		optSize uint16 // the answer's OPT payload size; 0 for no OPT
		do      bool
	}{
		{"no OPT, 60 A", new(dns.Msg).SetQuestion("big.lab.", dns.TypeA), 512, true, 0, 0, false},
		{"4096, 60 A", withOPT("big.lab.", 4096, true), 1232, false, 60, 1232, true},
		{"1232, 100 A", withOPT("bigger.lab.", 1232, false), 1232, true, 0, 1232, false},
		{"700, 60 A", withOPT("big.lab.", 700, false), 700, true, 0, 700, false},
		{"100 counts as 512", withOPT("big.lab.", 100, false), 512, true, 0, 512, false},
		{"small answer", withOPT("sender.lab.", 4096, false), 1232, false, 1, 1232, false},
	}
	for _, tt := range tests {
		q := pack(t, tt.q)
		wire := rawExchange(t, addr, q)
		m := new(dns.Msg)
		if err := m.Unpack(wire); err != nil {
			t.Fatalf("%s: %v", tt.what, err)
		}
		if len(wire) > tt.max || (tt.tc && len(wire) <= 512 && tt.max > 512) {
			t.Errorf("%s: %d bytes, want at most %d (and over 512 when allowed)", tt.what, len(wire), tt.max)
		}
		if m.Truncated != tt.tc || (!tt.tc && len(m.Answer) != tt.n) {
			t.Errorf("%s: TC %v with %d answers, want TC %v (%d answers)", tt.what, m.Truncated, len(m.Answer), tt.tc, tt.n)
		}
		opt := m.IsEdns0()
		switch {
		case tt.optSize == 0 && opt != nil:
			t.Errorf("%s: OPT %v in the answer to a query without", tt.what, opt)
		case tt.optSize != 0 && (opt == nil || opt.UDPSize() != tt.optSize || opt.Version() != 0 || opt.Do() != tt.do):
			t.Errorf("%s: OPT %v, want size %d version 0 DO %v", tt.what, opt, tt.optSize, tt.do)
		}
		// The event has the sizes on the wire.
		evs := log.Events()
		if e := evs[len(evs)-1]; e.SizeIn != len(q) || e.SizeOut != len(wire) {
			t.Errorf("%s: event sizes in %d out %d, want %d and %d", tt.what, e.SizeIn, e.SizeOut, len(q), len(wire))
		}
	}

	// TCP carries everything, OPT or not.
	if m := query(t, "tcp", addr, "bigger.lab.", dns.TypeA); m.Truncated || len(m.Answer) != 100 {
		t.Errorf("tcp: TC %v with %d answers, want 100", m.Truncated, len(m.Answer))
	}

	// EDNS version 1: BADVERS (an extended rcode) with an OPT of version 0.
	v1 := withOPT("sender.lab.", 1232, false)
	v1.IsEdns0().SetVersion(1)
	m := new(dns.Msg)
	if err := m.Unpack(rawExchange(t, addr, pack(t, v1))); err != nil {
		t.Fatal(err)
	}
	if opt := m.IsEdns0(); m.Rcode != dns.RcodeBadVers || len(m.Answer) != 0 || opt == nil || opt.Version() != 0 {
		t.Errorf("version 1: rcode %d, %d answers, OPT %v; want BADVERS, none, version 0", m.Rcode, len(m.Answer), opt)
	}

	// Two OPT records: FORMERR, without OPT.
	two := withOPT("sender.lab.", 1232, false)
	two.Extra = append(two.Extra, dns.Copy(two.Extra[0]))
	m = new(dns.Msg)
	if err := m.Unpack(rawExchange(t, addr, pack(t, two))); err != nil {
		t.Fatal(err)
	}
	if m.Rcode != dns.RcodeFormatError || m.IsEdns0() != nil {
		t.Errorf("two OPTs: rcode %s OPT %v, want FORMERR without OPT", dns.RcodeToString[m.Rcode], m.IsEdns0())
	}

	var results []string
	for _, e := range log.Events()[len(tests)+1:] {
		results = append(results, e.Result)
	}
	if len(results) != 2 || results[0] != "BADVERS" || results[1] != "FORMERR" {
		t.Errorf("results %q, want BADVERS FORMERR", results)
	}
	// Every event has its own arrival number, 1 to n.
	seen := map[int]bool{}
	for _, e := range log.Events() {
		if e.Kind != events.Query || e.Seq < 1 || seen[e.Seq] {
			t.Errorf("event %+v: seq repeated or missing", e)
		}
		seen[e.Seq] = true
	}
	if len(seen) != len(log.Events()) || !seen[len(seen)] {
		t.Errorf("seqs %v, want 1..%d", seen, len(log.Events()))
	}
}
