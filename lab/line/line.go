// Package line models the serial line between a resolver and "the
// internet": the 28.8k dial-up modem every DNS query of the 1999 benchmark
// crossed. It is pure bookkeeping over a clock: callers ask it when a packet
// of a given size, handed to the line at a given time, arrives at the far
// end, and sleep until then (Carry does both).
//
// The model, per direction (up: queries out; down: answers in):
//   - one FIFO queue shared by every packet: a packet starts when the line
//     is free, so forty sessions' lookups wait behind each other as on one
//     modem;
//   - serialization at BitsPerSecond over the packet's wire size plus
//     FramingBytes (PPP, IP and UDP headers), so time on the line follows
//     the real size;
//   - then Latency (the modem's fixed overhead and the far path), plus an
//     optional Jitter drawn from a generator seeded by (Seed, packet number),
//     so the same packets draw the same jitter (packets are numbered in the
//     order they reach the line: under concurrency that order, and so which
//     packet draws which jitter, can differ between runs); jitter never
//     reorders packets.
//
// Between the two directions the far side pays Upstream for a name it has
// not cached (extra round trips to far servers); with CacheTTL > 0 it
// remembers names that long. Off by default: the 1999 benchmark counts every lookup
// as crossing the line.
package line

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Defaults: a 28.8k V.34 modem. The one-way latency is the "fixed 50 ms
// overhead built into the modem itself" of Stuart Cheshire's "It's the
// Latency, Stupid" (1996; http://www.towerdb.com/tech_connect_04.html):
// with serialization of a ~100-byte DNS packet (about 38 ms at 28.8k with
// framing) a round trip comes to about 180 ms, inside the 100-200 ms usually
// quoted for analog modems. Framing: PPP 8 bytes (flags, address, control,
// protocol, FCS) + IPv4 20 + UDP 8.
const (
	DefaultBitsPerSecond = 28800
	DefaultFramingBytes  = 8 + 20 + 8
	DefaultLatency       = 50 * time.Millisecond
)

// Config is the line's parameters; the scenario gives them and the result
// echoes them.
type Config struct {
	BitsPerSecond int           `json:"bits_per_second"` // per direction
	FramingBytes  int           `json:"framing_bytes"`   // added to every packet's size
	Latency       time.Duration `json:"latency_ns"`      // one way
	Jitter        time.Duration `json:"jitter_ns"`       // up to this much more, per packet
	Upstream      time.Duration `json:"upstream_ns"`     // far-side cost of a name not in cache
	CacheTTL      time.Duration `json:"cache_ttl_ns"`    // far-side cache; 0: none
	Seed          uint64        `json:"seed"`
}

// Validate names the first impossible value.
func (c Config) Validate() error {
	switch {
	case c.BitsPerSecond <= 0:
		return fmt.Errorf("line: bits per second must be positive, got %d", c.BitsPerSecond)
	case c.FramingBytes < 0:
		return fmt.Errorf("line: framing bytes must not be negative, got %d", c.FramingBytes)
	case c.Latency < 0, c.Jitter < 0, c.Upstream < 0, c.CacheTTL < 0:
		return fmt.Errorf("line: latency, jitter, upstream and cache TTL must not be negative")
	}
	return nil
}

// Direction is a side of the line.
type Direction int

// The two directions.
const (
	Up   Direction = iota // resolver to the internet: queries
	Down                  // internet to resolver: answers
)

func (d Direction) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Transit is what crossing one direction cost one packet.
type Transit struct {
	Handed  time.Time     // given to the line
	Start   time.Time     // first bit on the line (after the queue)
	Deliver time.Time     // arrived at the far end
	Wait    time.Duration // Start - Handed: behind other packets
	OnLine  time.Duration // Deliver - Start: serialization, latency, jitter
	Bytes   int           // wire size with framing
}

// Line is one simulated line. It is safe for concurrent use.
type Line struct {
	cfg Config

	mu      sync.Mutex
	free    [2]time.Time   // when each direction's line is next free
	last    [2]time.Time   // the latest delivery booked on each direction
	pending [2][]time.Time // start+serialization of packets not yet off the sending end
	packets uint64
	bytes   [2]int64
	cache   map[string]time.Time // name -> expiry at the far side
}

// New returns an idle line.
func New(cfg Config) (*Line, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Line{cfg: cfg, cache: map[string]time.Time{}}, nil
}

// Config returns the line's parameters.
func (l *Line) Config() Config { return l.cfg }

// Serialization is the time a packet of size bytes (without framing) takes
// to clock onto the line.
func (l *Line) Serialization(size int) time.Duration {
	bits := int64(size+l.cfg.FramingBytes) * 8
	return time.Duration(bits * int64(time.Second) / int64(l.cfg.BitsPerSecond))
}

// Send books a packet of size bytes handed to direction d at time at, and
// returns when it arrives. Packets are served in the order they are booked.
func (l *Line) Send(d Direction, at time.Time, size int) Transit {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := at
	if l.free[d].After(start) {
		start = l.free[d]
	}
	ser := l.Serialization(size)
	l.free[d] = start.Add(ser)
	l.packets++
	var jitter time.Duration
	if l.cfg.Jitter > 0 {
		r := rand.New(rand.NewPCG(l.cfg.Seed, l.packets))
		jitter = time.Duration(r.Int64N(int64(l.cfg.Jitter)))
	}
	deliver := l.free[d].Add(l.cfg.Latency + jitter)
	if deliver.Before(l.last[d]) {
		// A serial line does not reorder: jitter delays a packet, never
		// lets it overtake the one before.
		deliver = l.last[d]
	}
	l.last[d] = deliver
	l.pending[d] = append(prune(l.pending[d], at), l.free[d])
	l.bytes[d] += int64(size + l.cfg.FramingBytes)
	return Transit{Handed: at, Start: start, Deliver: deliver, Wait: start.Sub(at), OnLine: deliver.Sub(start), Bytes: size + l.cfg.FramingBytes}
}

// prune drops the packets that left the sending end by now.
func prune(ends []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ends) && !ends[i].After(now) {
		i++
	}
	return append(ends[:0], ends[i:]...)
}

// Depth is the number of packets queued or being clocked out on direction d
// at time now.
func (l *Line) Depth(d Direction, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending[d] = prune(l.pending[d], now)
	return len(l.pending[d])
}

// Bytes is the wire bytes (with framing) booked on direction d so far.
func (l *Line) Bytes(d Direction) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes[d]
}

// Upstream is what the far side spends on name at time at: Config.Upstream
// unless the name is in its cache.
func (l *Line) Upstream(name string, at time.Time) time.Duration {
	if l.cfg.Upstream == 0 {
		return 0
	}
	if l.cfg.CacheTTL == 0 {
		return l.cfg.Upstream
	}
	name = strings.ToLower(name)
	l.mu.Lock()
	defer l.mu.Unlock()
	if exp, ok := l.cache[name]; ok && at.Before(exp) {
		return 0
	}
	l.cache[name] = at.Add(l.cfg.Upstream + l.cfg.CacheTTL)
	return l.cfg.Upstream
}

// Clock is the time the line runs on: the real one in the lab, a fake one
// in tests so schedules are checked exactly.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at t, or with ctx's error when ctx ends first.
	SleepUntil(ctx context.Context, t time.Time) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// SleepUntil sleeps until t or ctx ends.
func (RealClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Trip is one query's round trip over the line.
type Trip struct {
	Up, Down Transit
	Upstream time.Duration // far-side cost paid
	Extra    time.Duration // added by the caller at the far side (a fault)
}

// Wait is the time spent queued, both directions.
func (t Trip) Wait() time.Duration { return t.Up.Wait + t.Down.Wait }

// OnLine is the time spent on the line, both directions.
func (t Trip) OnLine() time.Duration { return t.Up.OnLine + t.Down.OnLine }

// Carry takes a query of qsize bytes for name, handed over at arrival,
// across the line and back, sleeping on clock: up, the far side's upstream
// cost plus extra, then answer() (which builds the reply and returns its
// size) and down. It returns when the answer has arrived, or with ctx's
// error (the trip so far is still returned).
func (l *Line) Carry(ctx context.Context, clock Clock, arrival time.Time, name string, qsize int, extra time.Duration, answer func() int) (Trip, error) {
	var t Trip
	t.Up = l.Send(Up, arrival, qsize)
	t.Upstream = l.Upstream(name, t.Up.Deliver)
	t.Extra = extra
	ready := t.Up.Deliver.Add(t.Upstream + extra)
	if err := clock.SleepUntil(ctx, ready); err != nil {
		return t, err
	}
	// Booked at the model time the answer is ready, not the (slightly
	// later) time this goroutine woke: the line's schedule stays exact.
	t.Down = l.Send(Down, ready, answer())
	return t, clock.SleepUntil(ctx, t.Down.Deliver)
}

// Floor is the least time the line allows for round trips whose queries and
// answers have the given sizes (without framing): all queries handed over at
// once, the busier direction clocking without a gap, plus one packet of the
// other direction, two latencies and one upstream cost. A run cannot finish
// its lookups faster than this, whatever the MTAs do.
func (c Config) Floor(queries, answers []int) time.Duration {
	if len(queries) == 0 {
		return 0
	}
	l := Line{cfg: c}
	sum := func(sizes []int) (total, least time.Duration) {
		for i, s := range sizes {
			d := l.Serialization(s)
			total += d
			if i == 0 || d < least {
				least = d
			}
		}
		return total, least
	}
	upAll, upMin := sum(queries)
	downAll, downMin := sum(answers)
	return max(upAll+downMin, downAll+upMin) + 2*c.Latency + c.Upstream
}
