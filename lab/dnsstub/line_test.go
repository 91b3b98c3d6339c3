package dnsstub

import (
	"context"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/fault"
	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/line"
	"github.com/smtplab/smtplab/lab/topology"
)

// manualClock stands still until the test advances it: the line's schedule
// is then checked exactly, whatever the machine's load.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters map[chan struct{}]time.Time
}

func newManualClock(t time.Time) *manualClock {
	return &manualClock{now: t, waiters: map[chan struct{}]time.Time{}}
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *manualClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	if !t.After(c.now) {
		c.mu.Unlock()
		return ctx.Err()
	}
	ch := make(chan struct{})
	c.waiters[ch] = t
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiters, ch)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// sleepers is how many goroutines wait on the clock.
func (c *manualClock) sleepers() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.waiters) }

// step moves the clock to the earliest wake-up and releases those waiting
// for it; false when nobody waits.
func (c *manualClock) step() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiters) == 0 {
		return false
	}
	var next time.Time
	for _, t := range c.waiters {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	c.now = next
	for ch, t := range c.waiters {
		if !t.After(next) {
			close(ch)
			delete(c.waiters, ch)
		}
	}
	return true
}

var modem = line.Config{BitsPerSecond: 28800, FramingBytes: line.DefaultFramingBytes, Latency: line.DefaultLatency}

// lineServer starts a stub whose line runs on clk.
func lineServer(t *testing.T, cfg Config, clk line.Clock) (*Server, *events.Log, string) {
	t.Helper()
	log := events.NewLog("dns")
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	s.clock = clk
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, log, addr.String()
}

// Five queries handed to the line at the same moment leave one after
// another (FIFO), and each answer's time on the line and in the queue is
// what bandwidth, framing and latency predict, to the nanosecond.
func TestLineSchedule(t *testing.T) {
	cfg := testConfig()
	cfg.Line = &modem
	t0 := time.Date(1999, 6, 1, 12, 0, 0, 0, time.UTC)
	clk := newManualClock(t0)
	srv, log, addr := lineServer(t, cfg, clk)

	const n = 5
	var wg sync.WaitGroup
	answered := make(chan *dns.Msg, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: "udp", Timeout: 30 * time.Second}
			m, _, err := c.Exchange(new(dns.Msg).SetQuestion("receiver.lab.", dns.TypeA), addr)
			if err != nil {
				t.Error(err)
				return
			}
			answered <- m
		}()
	}
	// All five are on the uplink at t0: the live gauge says so.
	labtest.Until(t, "the line", func() bool { return clk.sleepers() == n })
	if d := gauge(t, srv, "smtplab_dns_line_queue_depth", "up"); d != n {
		t.Errorf("queue depth up %v, want %d", d, n)
	}
	// Drive the clock: once every query sleeps on the line (or is answered),
	// move to the next wake-up.
	done := 0
	for done < n {
		labtest.Until(t, "the line", func() bool { return clk.sleepers()+done+len(answered) >= n })
		for len(answered) > 0 {
			<-answered
			done++
		}
		if done < n && !clk.step() {
			labtest.Until(t, "the line", func() bool { return clk.sleepers() > 0 || len(answered) > 0 })
		}
	}
	wg.Wait()

	var evs []events.Event
	for _, e := range log.Events() {
		if e.Kind == events.Query {
			evs = append(evs, e)
		}
	}
	if len(evs) != n {
		t.Fatalf("%d query events, want %d", len(evs), n)
	}
	// Serialization from first principles, not from the code under test:
	// (size + 36 bytes of framing) * 8 bits at 28,800 bit/s.
	ser := func(size int) time.Duration { return time.Duration((size + 36) * 8 * int(time.Second) / 28800) }
	up, down := ser(evs[0].SizeIn), ser(evs[0].SizeOut)
	if down < up {
		t.Fatalf("test assumes answers longer than queries: %s < %s", down, up)
	}
	var waits []time.Duration
	for _, e := range evs {
		if e.Time != t0 || e.Result != "NOERROR" {
			t.Errorf("query arrived %s with %s", e.Time.Sub(t0), e.Result)
		}
		if want := up + down + 2*modem.Latency; e.OnLine != want {
			t.Errorf("on line %s, want %s", e.OnLine, want)
		}
		waits = append(waits, e.QueueWait)
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	// The k-th query waits k up-packets, then its answer waits behind the
	// earlier, longer answers: k down-packets in all.
	for k, w := range waits {
		if want := time.Duration(k) * down; w != want {
			t.Errorf("query %d waited %s in the queues, want %s", k, w, want)
		}
	}
}

func faultEvents(log *events.Log) []string {
	var out []string
	for _, e := range log.Events() {
		if e.Kind == events.Fault {
			out = append(out, e.FaultName+" "+e.Name)
			if len(e.Via) != 1 || !strings.Contains(e.Via[0], "#") {
				out = append(out, "fault event without its query's key")
			}
		}
	}
	return out
}

func TestFaults(t *testing.T) {
	cfg := testConfig()
	cfg.Seed = 7
	cfg.Faults = []fault.Spec{
		{Type: "drop", Name: "lost.lab.example.net"},
		{Type: "servfail", QType: "MX"},
		{Type: "stall", Name: "slow.lab.example.net", Duration: 20 * time.Millisecond},
		{Type: "stall", Name: "never.lab.example.net", Forever: true},
	}
	s, log, addr := startServer(t, cfg)

	c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("lost.lab.example.net.", dns.TypeA), addr); err == nil {
		t.Error("a dropped query was answered")
	}
	if m := query(t, "udp", addr, "receiver.lab.", dns.TypeMX); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("servfail fault: rcode %s", dns.RcodeToString[m.Rcode])
	}
	if m := query(t, "udp", addr, "slow.lab.example.net.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("a stalled query is answered as the zone says, got %s", dns.RcodeToString[m.Rcode])
	}
	never := make(chan error, 1)
	go func() {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		_, _, err := c.Exchange(new(dns.Msg).SetQuestion("never.lab.example.net.", dns.TypeA), addr)
		never <- err
	}()
	labtest.Until(t, "the line", func() bool { return len(faultEvents(log)) == 4 })
	// Still held, it is in the evidence all the same (GET /events).
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/events", nil))
	evs, err := events.ReadJSONL(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, e := range evs {
		if e.Kind == events.Query && e.Result == "PENDING" {
			if e.Role != topology.DNS {
				t.Errorf("pending query %s served with role %q, want %q", e.Name, e.Role, topology.DNS)
			}
			held = append(held, e.Name+" "+e.FaultName)
		}
	}
	if !slices.Equal(held, []string{"never.lab.example.net stall"}) {
		t.Errorf("queries served as pending: %q, want the one stalled forever", held)
	}
	s.Close() // releases the query stalled forever, unanswered
	labtest.Until(t, "the stalled query logged as dropped, no longer pending", func() bool { return len(s.Pending()) == 0 })
	if err := <-never; err == nil {
		t.Error("a query stalled forever was answered")
	}
	want := []string{"drop lost.lab.example.net", "servfail receiver.lab", "stall slow.lab.example.net", "stall never.lab.example.net"}
	if got := faultEvents(log); !slices.Equal(got, want) {
		t.Errorf("fault events %q, want %q", got, want)
	}
	results := map[string]string{}
	for _, e := range log.Events() {
		if e.Kind == events.Query {
			results[e.Name] = e.Result + " " + e.FaultName
		}
	}
	for name, want := range map[string]string{
		"lost.lab.example.net": "DROPPED drop", "receiver.lab": "SERVFAIL servfail",
		"slow.lab.example.net": "NXDOMAIN stall", "never.lab.example.net": "DROPPED stall",
	} {
		if results[name] != want {
			t.Errorf("%s: %q, want %q", name, results[name], want)
		}
	}
}

// gauge reads one series of srv's metrics registry.
func gauge(t *testing.T, srv *Server, name, direction string) float64 {
	t.Helper()
	mfs, err := srv.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" && l.GetValue() == direction {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{direction=%q}", name, direction)
	return 0
}
