package line

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
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
// Segment bytes of a write or a read) waits for the line, is clocked onto
// it at BitsPerSecond with FramingBytes of PPP, IP and TCP headers, and
// arrives Latency (plus seeded Jitter) later. A lost segment (Loss) is
// sent again after Retransmit, TCP's retransmission timeout, and crosses
// the line a second time. ResetAfterBytes resets a connection (RST) once
// it has carried that many bytes, both directions together, in the manner
// of toxiproxy's limit_data and reset_peer. Not modelled: congestion
// control and windows (a write is not held for acknowledgements),
// reordering, and the real TCP underneath, which still runs at the
// bridge's speed.
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

// Validate names the first impossible value.
func (c LinkConfig) Validate() error {
	switch {
	case !c.Enabled:
		return nil
	case math.IsNaN(c.Loss) || c.Loss < 0 || c.Loss > 1:
		return fmt.Errorf("link: loss must be in [0, 1], got %g", c.Loss)
	case c.BitsPerSecond < 0:
		return fmt.Errorf("link: bits_per_second must be positive, got %d", c.BitsPerSecond)
	case c.FramingBytes < 0, c.Segment < 0, c.ResetAfterBytes < 0:
		return fmt.Errorf("link: framing_bytes, segment and reset_after_bytes must not be negative")
	case c.Latency < 0, c.Jitter < 0, c.Retransmit < 0:
		return fmt.Errorf("link: latency, jitter and retransmit must not be negative")
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
// "loss" (Wait is what the loss cost) or "reset" (Bytes carried so far).
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

	mu        sync.Mutex
	segs      [2]int // segments so far, per direction
	carried   int    // bytes, both directions
	reset     bool
	closed    chan struct{}
	closeOnce sync.Once
}

// cross carries size bytes in direction d: segment by segment over the
// line, sleeping until the last arrives. It returns ErrReset when the
// link's byte limit is crossed (the connection is then reset).
func (c *linkConn) cross(d Direction, size int) error {
	cfg := c.l.cfg
	for size > 0 {
		n := min(size, cfg.Segment)
		size -= n
		c.mu.Lock()
		if c.reset {
			c.mu.Unlock()
			return ErrReset
		}
		c.segs[d]++
		seg := c.segs[d]
		c.carried += n
		over := cfg.ResetAfterBytes > 0 && c.carried > cfg.ResetAfterBytes
		carried := c.carried
		c.mu.Unlock()
		if over {
			c.resetNow(carried)
			return ErrReset
		}
		t := c.l.line.Send(d, time.Now(), n)
		arrive := t.Deliver
		if c.l.Lost(c.conn, d, seg) {
			again := c.l.line.Send(d, t.Deliver.Add(cfg.Retransmit.D()), n)
			arrive = again.Deliver
			c.onFault(Fault{Kind: "loss", Wait: arrive.Sub(t.Deliver)})
		}
		if err := c.sleepUntil(arrive); err != nil {
			return err
		}
	}
	return nil
}

func (c *linkConn) sleepUntil(t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-c.closed:
		return net.ErrClosed
	}
}

// resetNow ends the connection with an RST: the peer reads "connection
// reset by peer", as when a router or a modem drops a session.
func (c *linkConn) resetNow(carried int) {
	c.mu.Lock()
	if c.reset {
		c.mu.Unlock()
		return
	}
	c.reset = true
	c.mu.Unlock()
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.onFault(Fault{Kind: "reset", Bytes: carried})
	c.Close()
}

// Write carries p to the far end, then hands it to the socket.
func (c *linkConn) Write(p []byte) (int, error) {
	if err := c.cross(Up, len(p)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Read takes what the socket has, then holds it for its crossing.
func (c *linkConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if cerr := c.cross(Down, n); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

// Close closes the socket and wakes a crossing in progress.
func (c *linkConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
