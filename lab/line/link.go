package line

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
)

// The SMTP link: the same line model between the sender and the
// receiver, carrying TCP segments instead of DNS packets, so that a 28.8k
// SMTP path is one scenario setting (the sender's link:).
//
// What is modelled, per direction, on one Line shared by every connection
// of the sender (one modem carries them all): each segment (at most
// Segment bytes) waits for the line, is clocked onto it at BitsPerSecond
// with FramingBytes of PPP, IP and TCP headers, and arrives Latency (plus
// seeded Jitter) later.
//   - A write's segments are handed to the line together, as the socket
//     takes a whole write, so they cross back to back; each goes to the
//     socket when it arrives.
//   - A read takes at most one segment from the socket and returns it
//     once it has crossed down.
//   - A lost segment (Loss) used the line for nothing: TCP sends it again
//     Retransmit (its retransmission timeout) after it first went out,
//     and it crosses a second time. The segments behind it on its
//     connection wait for it (TCP delivers in order); the other
//     connections keep the line meanwhile.
//   - ResetAfterBytes resets a connection (RST) before the segment that
//     would carry it past that many bytes, both directions together, in
//     the manner of toxiproxy's limit_data and reset_peer.
//
// Not modelled: congestion control and windows (a write is not held for
// acknowledgements, and a loss does not slow the connection down),
// reordering, fast retransmit, and the real TCP underneath, which still
// runs at the bridge's speed. Deadlines hold: a crossing ends at the
// connection's deadline as the socket's own wait would (a deadline set
// during a crossing counts from the next segment), and Close ends it.
//
// Loss decisions are drawn from a generator seeded by (Seed, the
// connection's number, its direction, the segment's number in that
// direction), so the same connections sending the same bytes lose the
// same segments. The sender's writes are cut the same way on every run;
// a read takes what the socket holds, so the numbering of segments read
// can differ when replies arrive in other pieces.

// Defaults of the SMTP link.
const (
	DefaultTCPFramingBytes = 8 + 20 + 20     // PPP, IPv4, TCP
	DefaultSegment         = 536             // RFC 879's default MSS
	DefaultRetransmit      = 1 * time.Second // RFC 6298 2.4: RTO at least 1 s
)

// LinkConfig is the SMTP link as a scenario gives it (sender.link).
type LinkConfig struct {
	Enabled         bool              `yaml:"enabled" json:"enabled"`
	BitsPerSecond   int               `yaml:"bits_per_second" json:"bits_per_second,omitempty"` // default 28800
	FramingBytes    int               `yaml:"framing_bytes" json:"framing_bytes,omitempty"`     // default 48
	Latency         duration.Duration `yaml:"latency" json:"latency,omitempty"`                 // one way; default 50ms
	Jitter          duration.Duration `yaml:"jitter" json:"jitter,omitempty"`
	Loss            float64           `yaml:"loss" json:"loss,omitempty"`                           // chance a segment is lost, [0, 1]
	Segment         int               `yaml:"segment" json:"segment,omitempty"`                     // bytes per segment; default 536
	Retransmit      duration.Duration `yaml:"retransmit" json:"retransmit,omitempty"`               // a loss's wait; default 1s
	ResetAfterBytes int               `yaml:"reset_after_bytes" json:"reset_after_bytes,omitempty"` // 0: never
}

// WithDefaults fills in the defaults named in LinkConfig's comments.
func (c LinkConfig) WithDefaults() LinkConfig {
	if c.BitsPerSecond == 0 {
		c.BitsPerSecond = DefaultBitsPerSecond
	}
	if c.FramingBytes == 0 {
		c.FramingBytes = DefaultTCPFramingBytes
	}
	if c.Latency == 0 {
		c.Latency = duration.Duration(DefaultLatency)
	}
	if c.Segment == 0 {
		c.Segment = DefaultSegment
	}
	if c.Retransmit == 0 {
		c.Retransmit = duration.Duration(DefaultRetransmit)
	}
	return c
}

// maxLinkBytes bounds segment and framing_bytes: an IPv4 datagram's
// largest size, and far from overflowing the line's arithmetic.
const maxLinkBytes = 65535

// Validate names the first impossible value, enabled or not: a scenario
// that sets one is wrong either way.
func (c LinkConfig) Validate() error {
	if math.IsNaN(c.Loss) || c.Loss < 0 || c.Loss > 1 {
		return fmt.Errorf("link: loss must be a probability in [0, 1], got %g", c.Loss)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"bits_per_second", c.BitsPerSecond}, {"framing_bytes", c.FramingBytes}, {"segment", c.Segment}, {"reset_after_bytes", c.ResetAfterBytes}} {
		if f.v < 0 {
			return fmt.Errorf("link: %s must not be negative, got %d", f.name, f.v)
		}
	}
	if c.Segment > maxLinkBytes || c.FramingBytes > maxLinkBytes {
		return fmt.Errorf("link: segment and framing_bytes must be at most %d bytes, got %d and %d", maxLinkBytes, c.Segment, c.FramingBytes)
	}
	for _, f := range []struct {
		name string
		v    duration.Duration
	}{{"latency", c.Latency}, {"jitter", c.Jitter}, {"retransmit", c.Retransmit}} {
		if f.v < 0 {
			return fmt.Errorf("link: %s must not be negative, got %s", f.name, f.v)
		}
	}
	return nil
}

// Link is the modelled SMTP path, shared by every connection wrapped.
type Link struct {
	cfg  LinkConfig
	line *Line
	seed uint64
}

// NewLink is the link of cfg (defaults filled in), seeded with seed.
func NewLink(cfg LinkConfig, seed uint64) (*Link, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	l, err := New(Config{BitsPerSecond: cfg.BitsPerSecond, FramingBytes: cfg.FramingBytes,
		Latency: cfg.Latency.D(), Jitter: cfg.Jitter.D(), Seed: seed})
	if err != nil {
		return nil, err
	}
	return &Link{cfg: cfg, line: l, seed: seed}, nil
}

// Lost says whether segment n (from 1) of direction d on connection conn
// is lost: one seeded draw, the same for the same arguments.
func (l *Link) Lost(conn int, d Direction, n int) bool {
	if l.cfg.Loss <= 0 {
		return false
	}
	r := rand.New(rand.NewPCG(l.seed^0x6c696e6b, uint64(conn)<<33|uint64(d)<<32|uint64(uint32(n))))
	return r.Float64() < l.cfg.Loss
}

// Fault is what the link did to a connection, for its event log: kind
// "loss" (Wait is how much later the segment arrived than it would have)
// or "reset" (Bytes carried before it, both directions).
type Fault struct {
	Kind  string
	Wait  time.Duration
	Bytes int
}

// ErrReset is what a connection the link reset returns.
var ErrReset = errors.New("link: connection reset after its byte limit")

// Wrap returns nc carried over the link as connection number conn;
// onFault (may be nil) hears each loss and the reset.
func (l *Link) Wrap(nc net.Conn, conn int, onFault func(Fault)) net.Conn {
	if onFault == nil {
		onFault = func(Fault) {}
	}
	return &linkConn{Conn: nc, l: l, conn: conn, onFault: onFault, closed: make(chan struct{})}
}

type linkConn struct {
	net.Conn
	l       *Link
	conn    int
	onFault func(Fault)

	mu       sync.Mutex
	segs     [2]int       // segments so far, per direction
	carried  int          // bytes, both directions
	reset    bool         // the link reset the connection
	deadline [2]time.Time // Up: the write deadline; Down: the read deadline

	wmu sync.Mutex // one Write at a time: its segments go out in order

	rmu   sync.Mutex // one Read at a time, and the segment read so far:
	rbuf  []byte     // room for one segment
	rdata []byte     // read from the socket, not yet returned
	rseg  *segment   // rdata's crossing, while it has not arrived
	rerr  error      // the socket's error that came with rdata

	closed    chan struct{}
	closeOnce sync.Once
}

// segment is one segment's crossing.
type segment struct {
	n      int
	first  Transit   // its first copy
	again  time.Time // lost: when TCP sends it again
	arrive time.Time // zero while a lost segment is not yet sent again
}

// book claims size bytes in direction d, cut into segments handed to the
// line now. over says the byte limit stopped it short (the segments
// returned are those under the limit); a connection already reset
// returns ErrReset.
func (c *linkConn) book(d Direction, size int) (segs []segment, over bool, err error) {
	cfg := c.l.cfg
	var nums []int
	c.mu.Lock()
	if c.reset {
		c.mu.Unlock()
		return nil, false, ErrReset
	}
	for size > 0 {
		n := min(size, cfg.Segment)
		if cfg.ResetAfterBytes > 0 && c.carried+n > cfg.ResetAfterBytes {
			over = true
			break
		}
		size -= n
		c.carried += n
		c.segs[d]++
		nums = append(nums, c.segs[d])
		segs = append(segs, segment{n: n})
	}
	c.mu.Unlock()
	now := time.Now()
	for i := range segs {
		s := &segs[i]
		s.first = c.l.line.Send(d, now, s.n)
		if c.l.Lost(c.conn, d, nums[i]) {
			s.again = s.first.Start.Add(cfg.Retransmit.D())
		} else {
			s.arrive = s.first.Deliver
		}
	}
	return segs, over, nil
}

// arrive sleeps until s has arrived at the far end, first sending it
// again if it was lost. The retransmission is booked on the line only
// when it is due, so the line stays free for others until then.
func (c *linkConn) arrive(d Direction, s *segment) error {
	if s.arrive.IsZero() {
		if err := c.sleepUntil(d, s.again); err != nil {
			return err
		}
		s.arrive = c.l.line.Send(d, s.again, s.n).Deliver
		c.onFault(Fault{Kind: "loss", Wait: max(s.arrive.Sub(s.first.Deliver), 0)})
	}
	return c.sleepUntil(d, s.arrive)
}

// sleepUntil waits until t, or until direction d's deadline (a timeout
// error) or Close (net.ErrClosed), whichever comes first.
func (c *linkConn) sleepUntil(d Direction, t time.Time) error {
	c.mu.Lock()
	dl := c.deadline[d]
	c.mu.Unlock()
	var err error
	if !dl.IsZero() && dl.Before(t) {
		t, err = dl, os.ErrDeadlineExceeded
	}
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	wait := time.Until(t)
	if wait <= 0 {
		return err
	}
	tm := time.NewTimer(wait)
	defer tm.Stop()
	select {
	case <-tm.C:
		return err
	case <-c.closed:
		return net.ErrClosed
	}
}

// resetNow ends the connection with an RST: the peer reads "connection
// reset by peer", as when a router or a modem drops a session.
func (c *linkConn) resetNow() {
	c.mu.Lock()
	if c.reset {
		c.mu.Unlock()
		return
	}
	c.reset = true
	carried := c.carried
	c.mu.Unlock()
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.onFault(Fault{Kind: "reset", Bytes: carried})
	c.Close()
}

// Write carries p to the far end segment by segment, handing each to
// the socket as it arrives. Stopped short (a deadline, Close, the reset),
// it returns what reached the socket.
func (c *linkConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	segs, over, err := c.book(Up, len(p))
	if err != nil {
		return 0, err
	}
	done := 0
	for i := 0; i < len(segs); i++ {
		if err := c.arrive(Up, &segs[i]); err != nil {
			return done, err
		}
		// The segments behind it that have arrived too go in the same
		// write: one system call, not one per segment, on a fast line.
		end := done + segs[i].n
		for now := time.Now(); i+1 < len(segs) && !segs[i+1].arrive.IsZero() && !segs[i+1].arrive.After(now); i++ {
			end += segs[i+1].n
		}
		n, err := c.Conn.Write(p[done:end])
		done += n
		if err != nil {
			return done, err
		}
	}
	if over {
		c.resetNow()
		return done, ErrReset
	}
	return done, nil
}

// Read takes at most one segment from the socket and returns it once it
// has crossed down. A segment whose crossing a deadline cut short is
// kept for the next Read, so no byte is lost to a timeout.
func (c *linkConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.rdata) == 0 {
		if c.rbuf == nil {
			c.rbuf = make([]byte, c.l.cfg.Segment)
		}
		n, err := c.Conn.Read(c.rbuf[:min(len(c.rbuf), len(p))])
		if n == 0 {
			return 0, err
		}
		segs, over, berr := c.book(Down, n)
		if berr != nil {
			return 0, berr
		}
		if over {
			c.resetNow()
			return 0, ErrReset
		}
		c.rdata, c.rseg, c.rerr = c.rbuf[:n], &segs[0], err
	}
	if c.rseg != nil {
		if err := c.arrive(Down, c.rseg); err != nil {
			return 0, err
		}
		c.rseg = nil
	}
	n := copy(p, c.rdata)
	c.rdata = c.rdata[n:]
	var err error
	if len(c.rdata) == 0 {
		err, c.rerr = c.rerr, nil
	}
	return n, err
}

func (c *linkConn) setDeadline(d Direction, t time.Time) {
	c.mu.Lock()
	c.deadline[d] = t
	c.mu.Unlock()
}

// SetDeadline sets the socket's deadlines and the crossings'.
func (c *linkConn) SetDeadline(t time.Time) error {
	c.setDeadline(Up, t)
	c.setDeadline(Down, t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the socket's read deadline and the reads' crossings'.
func (c *linkConn) SetReadDeadline(t time.Time) error {
	c.setDeadline(Down, t)
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the socket's write deadline and the writes' crossings'.
func (c *linkConn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(Up, t)
	return c.Conn.SetWriteDeadline(t)
}

// Close closes the socket and wakes a crossing in progress.
func (c *linkConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
