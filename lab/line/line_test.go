package line

import (
	"context"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(1999, 6, 1, 12, 0, 0, 0, time.UTC)

func modem(t *testing.T) *Line {
	l, err := New(Config{BitsPerSecond: DefaultBitsPerSecond, FramingBytes: DefaultFramingBytes, Latency: DefaultLatency})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// (100 + 36) bytes * 8 bits at 28,800 bit/s.
const ser100 = time.Duration(136 * 8 * int64(time.Second) / 28800)

func TestOnePacket(t *testing.T) {
	l := modem(t)
	if got := l.Serialization(100); got != ser100 {
		t.Fatalf("serialization %s, want %s", got, ser100)
	}
	tr := l.Send(Up, t0, 100)
	if tr.Start != t0 || tr.Wait != 0 || tr.Deliver != t0.Add(ser100+DefaultLatency) || tr.Bytes != 136 {
		t.Errorf("transit %+v", tr)
	}
}

// Packets handed over together leave one after another (FIFO); the other
// direction is a line of its own.
func TestFIFO(t *testing.T) {
	l := modem(t)
	for i := 0; i < 5; i++ {
		tr := l.Send(Up, t0, 100)
		wantStart := t0.Add(time.Duration(i) * ser100)
		if tr.Start != wantStart || tr.Wait != time.Duration(i)*ser100 {
			t.Errorf("packet %d: start %s wait %s, want start %s", i, tr.Start.Sub(t0), tr.Wait, wantStart.Sub(t0))
		}
		if tr.Deliver != wantStart.Add(ser100+DefaultLatency) {
			t.Errorf("packet %d: deliver %s", i, tr.Deliver.Sub(t0))
		}
	}
	if d := l.Depth(Up, t0); d != 5 {
		t.Errorf("depth at t0 %d, want 5", d)
	}
	if d := l.Depth(Up, t0.Add(2*ser100)); d != 3 {
		t.Errorf("depth after two packets %d, want 3", d)
	}
	if tr := l.Send(Down, t0, 100); tr.Wait != 0 {
		t.Errorf("down waited %s behind up traffic", tr.Wait)
	}
	// A packet handed over after the queue drained waits for nothing.
	late := t0.Add(time.Hour)
	if tr := l.Send(Up, late, 40); tr.Start != late || tr.Wait != 0 {
		t.Errorf("late packet %+v", tr)
	}
	if b := l.Bytes(Up); b != 5*136+76 {
		t.Errorf("bytes up %d", b)
	}
}

func TestJitterIsSeeded(t *testing.T) {
	cfg := Config{BitsPerSecond: 28800, Latency: 10 * time.Millisecond, Jitter: 20 * time.Millisecond, Seed: 7}
	run := func(seed uint64) []time.Duration {
		cfg.Seed = seed
		l, _ := New(cfg)
		var out []time.Duration
		for i := 0; i < 50; i++ {
			tr := l.Send(Down, t0.Add(time.Duration(i)*time.Second), 60)
			j := tr.OnLine - l.Serialization(60) - cfg.Latency
			if j < 0 || j >= cfg.Jitter {
				t.Fatalf("jitter %s outside [0, %s)", j, cfg.Jitter)
			}
			out = append(out, j)
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	same, differs := true, false
	for i := range a {
		same = same && a[i] == b[i]
		differs = differs || a[i] != c[i]
	}
	if !same || !differs {
		t.Errorf("same seed same jitter: %v; other seed differs: %v", same, differs)
	}
}

func TestUpstreamCache(t *testing.T) {
	l, _ := New(Config{BitsPerSecond: 1, Upstream: 300 * time.Millisecond, CacheTTL: 10 * time.Second})
	if u := l.Upstream("A.example", t0); u != 300*time.Millisecond {
		t.Errorf("first lookup upstream %s", u)
	}
	if u := l.Upstream("a.example", t0.Add(5*time.Second)); u != 0 {
		t.Errorf("cached lookup paid %s", u)
	}
	if u := l.Upstream("a.example", t0.Add(11*time.Second)); u != 300*time.Millisecond {
		t.Errorf("expired lookup paid %s", u)
	}
	nocache, _ := New(Config{BitsPerSecond: 1, Upstream: time.Second})
	nocache.Upstream("a", t0)
	if u := nocache.Upstream("a", t0); u != time.Second {
		t.Errorf("without a cache every lookup pays, got %s", u)
	}
}

// fakeClock jumps to whatever time is slept until.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	return ctx.Err()
}

func TestCarry(t *testing.T) {
	l, _ := New(Config{BitsPerSecond: 28800, FramingBytes: 36, Latency: 50 * time.Millisecond, Upstream: 200 * time.Millisecond})
	clk := &fakeClock{now: t0}
	trip, err := l.Carry(context.Background(), clk, t0, "x.example", 100, time.Second, func() int { return 200 })
	if err != nil {
		t.Fatal(err)
	}
	serDown := l.Serialization(200)
	want := t0.Add(ser100 + 50*time.Millisecond + 200*time.Millisecond + time.Second + serDown + 50*time.Millisecond)
	if trip.Down.Deliver != want || clk.Now() != want {
		t.Errorf("answer at %s, clock %s, want %s", trip.Down.Deliver.Sub(t0), clk.Now().Sub(t0), want.Sub(t0))
	}
	if trip.Upstream != 200*time.Millisecond || trip.Extra != time.Second || trip.Wait() != 0 {
		t.Errorf("trip %+v", trip)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Carry(ctx, clk, clk.Now(), "y", 10, 0, func() int { return 10 }); err == nil {
		t.Error("a cancelled carry returned no error")
	}
}

// Under concurrency every direction stays a single FIFO line: no two
// packets on it at once, and a saturated line has no gaps.
func TestConcurrentSendsNeverOverlap(t *testing.T) {
	l := modem(t)
	var mu sync.Mutex
	var trs []Transit
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := l.Send(Up, t0, 60+i)
			mu.Lock()
			trs = append(trs, tr)
			mu.Unlock()
		}()
	}
	wg.Wait()
	var busy time.Duration
	last := t0
	for _, tr := range sortByStart(trs) {
		if tr.Start.Before(last) {
			t.Fatalf("packets overlap on the line at %s", tr.Start.Sub(t0))
		}
		if tr.Start != last {
			t.Fatalf("gap on a saturated line at %s", last.Sub(t0))
		}
		ser := tr.OnLine - DefaultLatency
		busy += ser
		last = tr.Start.Add(ser)
	}
	if last.Sub(t0) != busy {
		t.Errorf("line busy %s, span %s", busy, last.Sub(t0))
	}
}

func sortByStart(trs []Transit) []Transit {
	for i := 1; i < len(trs); i++ {
		for j := i; j > 0 && trs[j].Start.Before(trs[j-1].Start); j-- {
			trs[j], trs[j-1] = trs[j-1], trs[j]
		}
	}
	return trs
}

func TestFloor(t *testing.T) {
	c := Config{BitsPerSecond: 28800, FramingBytes: 36, Latency: 50 * time.Millisecond}
	if f := c.Floor(nil, nil); f != 0 {
		t.Errorf("floor of nothing %s", f)
	}
	// 4 queries of 100 bytes, 4 answers of 100: one direction's four packets
	// plus one of the other, and two latencies.
	q := []int{100, 100, 100, 100}
	if f, want := c.Floor(q, q), 5*ser100+100*time.Millisecond; f != want {
		t.Errorf("floor %s, want %s", f, want)
	}
	// The floor is what the line itself gives four trips handed over at once.
	l, _ := New(c)
	clk := &fakeClock{now: t0}
	var end time.Time
	for range 4 {
		tr, _ := l.Carry(context.Background(), clk, t0, "n", 100, 0, func() int { return 100 })
		end = tr.Down.Deliver
	}
	if got := end.Sub(t0); got != c.Floor(q, q) {
		t.Errorf("four trips took %s on the model, floor says %s", got, c.Floor(q, q))
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{BitsPerSecond: 0}, {BitsPerSecond: 1, FramingBytes: -1}, {BitsPerSecond: 1, Latency: -1}} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// Jitter delays packets but never lets one overtake the one before it.
func TestJitterKeepsOrder(t *testing.T) {
	l, _ := New(Config{BitsPerSecond: 10_000_000, Latency: time.Millisecond, Jitter: 50 * time.Millisecond, Seed: 3})
	var last time.Time
	for i := 0; i < 200; i++ {
		tr := l.Send(Down, t0, 40)
		if tr.Deliver.Before(last) {
			t.Fatalf("packet %d delivered at %s, before the one ahead of it (%s)", i, tr.Deliver.Sub(t0), last.Sub(t0))
		}
		last = tr.Deliver
	}
}
