package line

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
)

// fastLink is a link too fast to wait on, but for its retransmissions.
func fastLink(t testing.TB, c LinkConfig, seed uint64) *Link {
	t.Helper()
	c.Enabled = true
	c.BitsPerSecond = 1 << 30
	c.Latency = duration.Duration(time.Nanosecond)
	if c.Retransmit == 0 {
		c.Retransmit = duration.Duration(time.Millisecond)
	}
	l, err := NewLink(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// faultLog collects a connection's faults.
type faultLog struct {
	mu     sync.Mutex
	faults []Fault
}

func (f *faultLog) add(x Fault) {
	f.mu.Lock()
	f.faults = append(f.faults, x)
	f.mu.Unlock()
}

func (f *faultLog) all() []Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.faults)
}

// TestLinkLossSeeded: the same seed and connection lose the same
// segments; another seed or connection others; loss 0 none and 1 all.
func TestLinkLossSeeded(t *testing.T) {
	lost := func(l *Link, conn int) []int {
		var out []int
		for n := 1; n <= 1000; n++ {
			if l.Lost(conn, Up, n) {
				out = append(out, n)
			}
		}
		return out
	}
	a := lost(fastLink(t, LinkConfig{Loss: 0.05}, 1), 3)
	if b := lost(fastLink(t, LinkConfig{Loss: 0.05}, 1), 3); !slices.Equal(a, b) {
		t.Errorf("the same seed and connection lost %v, then %v", a, b)
	}
	if c := lost(fastLink(t, LinkConfig{Loss: 0.05}, 2), 3); slices.Equal(a, c) {
		t.Error("seeds 1 and 2 lost the same segments")
	}
	if c := lost(fastLink(t, LinkConfig{Loss: 0.05}, 1), 4); slices.Equal(a, c) {
		t.Error("connections 3 and 4 lost the same segments")
	}
	if len(a) < 20 || len(a) > 90 {
		t.Errorf("5%% loss lost %d of 1000 segments", len(a))
	}
	if n := len(lost(fastLink(t, LinkConfig{}, 1), 1)); n != 0 {
		t.Errorf("no loss lost %d", n)
	}
	if n := len(lost(fastLink(t, LinkConfig{Loss: 1}, 1), 1)); n != 1000 {
		t.Errorf("loss 1 lost %d of 1000", n)
	}
}

func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestLinkCarriesIntact: bytes cross a link that loses every segment
// whole and in order, both ways; each loss is reported, and on an idle
// line costs exactly the retransmission wait (the model's arithmetic).
func TestLinkCarriesIntact(t *testing.T) {
	client, server := tcpPair(t)
	var log faultLog
	retransmit := 2 * time.Millisecond
	c := fastLink(t, LinkConfig{Loss: 1, Segment: 100, Retransmit: duration.Duration(retransmit)}, 7).Wrap(client, 1, log.add)
	up := bytes.Repeat([]byte("0123456789abcdefghij\r\n"), 50) // 1100 bytes: 11 segments
	go c.Write(up)
	got := make([]byte, len(up))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, up) {
		t.Fatalf("the peer read %q (%v), want the %d bytes written", got, err, len(up))
	}
	down := bytes.Repeat([]byte("250 ok\r\n"), 90) // 720 bytes: at least 8 segments
	go server.Write(down)
	got = make([]byte, len(down))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, down) {
		t.Fatalf("read %q (%v) through the link, want the %d bytes the peer wrote", got, err, len(down))
	}
	faults := log.all()
	if len(faults) < 11+8 {
		t.Errorf("%d losses reported, want one per segment (at least 19)", len(faults))
	}
	for _, f := range faults {
		if f.Kind != "loss" || f.Wait != retransmit {
			t.Errorf("fault %+v: want a loss costing the retransmission wait, %s", f, retransmit)
		}
	}
}

// TestLinkSameLosses: two links with the same seed lose the same number
// of segments of the same writes on the same connection number.
func TestLinkSameLosses(t *testing.T) {
	losses := func(seed uint64) int {
		client, server := tcpPair(t)
		go io.Copy(io.Discard, server)
		var log faultLog
		c := fastLink(t, LinkConfig{Loss: 0.3, Segment: 50}, seed).Wrap(client, 2, log.add)
		for range 10 {
			if _, err := c.Write(bytes.Repeat([]byte("y"), 230)); err != nil {
				t.Fatal(err)
			}
		}
		return len(log.all())
	}
	a, b := losses(9), losses(9)
	if a != b || a == 0 || a == 50 {
		t.Errorf("the same seed lost %d, then %d, of 50 segments", a, b)
	}
}

// TestLinkResets: past its byte limit (both directions together) the
// link resets the connection once, before the segment that would cross
// it; the peer reads a reset and no byte beyond the limit.
func TestLinkResets(t *testing.T) {
	client, server := tcpPair(t)
	var log faultLog
	c := fastLink(t, LinkConfig{ResetAfterBytes: 1000, Segment: 100}, 1).Wrap(client, 1, log.add)
	server.Write(bytes.Repeat([]byte("r"), 200))
	if _, err := io.ReadFull(c, make([]byte, 200)); err != nil {
		t.Fatal(err)
	}
	var werr error
	writes := 0
	for range 30 {
		if _, werr = c.Write(bytes.Repeat([]byte("x"), 100)); werr != nil {
			break
		}
		writes++
	}
	if !errors.Is(werr, ErrReset) || writes != 8 {
		t.Errorf("after %d writes of 100: %v, want ErrReset after 8 (200 read + 800 written)", writes, werr)
	}
	got, err := io.ReadAll(server)
	if len(got) > 800 {
		t.Errorf("the peer read %d bytes, past the limit", len(got))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the peer read %v, want a connection reset", err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("a reset connection still writes")
	}
	if _, err := c.Read(make([]byte, 10)); err == nil {
		t.Error("a reset connection still reads")
	}
	if f := log.all(); len(f) != 1 || f[0].Kind != "reset" || f[0].Bytes != 1000 {
		t.Errorf("faults %+v, want one reset at 1000 bytes", f)
	}
}

// TestLinkWriteCost: what a write costs on the 28.8k default link, from
// the Transits the line books (the model's arithmetic, not a clock): its
// segments cross back to back, the last arriving after their
// serializations and one latency; a lost one goes again a retransmission
// wait after it first went out.
func TestLinkWriteCost(t *testing.T) {
	l, err := NewLink(LinkConfig{Enabled: true, Loss: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Wrap(nil, 1, nil).(*linkConn)
	segs, over, err := c.book(Up, 1100)
	if err != nil || over || len(segs) != 3 || segs[0].n != 536 || segs[1].n != 536 || segs[2].n != 28 {
		t.Fatalf("1100 bytes booked as %+v (over %v, %v), want segments of 536, 536, 28", segs, over, err)
	}
	// (536 + 48) bytes at 28.8k: 162.222222 ms; (28 + 48): 21.111111 ms.
	ser536, ser28 := 162222222*time.Nanosecond, 21111111*time.Nanosecond
	if l.line.Serialization(536) != ser536 || l.line.Serialization(28) != ser28 {
		t.Fatalf("serialization %s and %s", l.line.Serialization(536), l.line.Serialization(28))
	}
	if got, want := segs[2].first.Deliver.Sub(segs[0].first.Handed), 2*ser536+ser28+DefaultLatency; got != want {
		t.Errorf("the write's last segment arrives after %s, want %s", got, want)
	}
	for i, s := range segs {
		if s.first.Bytes != s.n+DefaultTCPFramingBytes || !s.arrive.IsZero() || s.again != s.first.Start.Add(DefaultRetransmit) {
			t.Errorf("segment %d: %+v, want it sent again %s after it went out", i, s, DefaultRetransmit)
		}
	}
}

// TestLinkDeadlines: a write deadline ends a crossing with a timeout; a
// read deadline too, and the segment read is kept for the next Read.
func TestLinkDeadlines(t *testing.T) {
	client, server := tcpPair(t)
	go io.Copy(io.Discard, server)
	c := fastLink(t, LinkConfig{Loss: 1, Retransmit: duration.Duration(time.Hour)}, 1).Wrap(client, 1, nil)
	c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
	n, err := c.Write([]byte("MAIL FROM:<a@example.com>\r\n"))
	var ne net.Error
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("write past its deadline: %d, %v; want 0 and a timeout", n, err)
	}

	client, server = tcpPair(t)
	var log faultLog
	retransmit := 300 * time.Millisecond
	c = fastLink(t, LinkConfig{Loss: 1, Retransmit: duration.Duration(retransmit)}, 1).Wrap(client, 1, log.add)
	server.Write([]byte("250 ok\r\n"))
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	buf := make([]byte, 100)
	if n, err := c.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past its deadline: %d, %v; want 0 and a timeout", n, err)
	}
	c.SetReadDeadline(time.Time{})
	if n, err := c.Read(buf); string(buf[:n]) != "250 ok\r\n" || err != nil {
		t.Errorf("read after the timeout: %q, %v; want the reply", buf[:n], err)
	}
	if f := log.all(); len(f) != 1 || f[0].Wait != retransmit {
		t.Errorf("faults %+v, want one loss of %s", f, retransmit)
	}
}

// TestLinkCloseWakes: Close ends a write waiting on the line.
func TestLinkCloseWakes(t *testing.T) {
	client, _ := tcpPair(t)
	c := fastLink(t, LinkConfig{Loss: 1, Retransmit: duration.Duration(time.Hour)}, 1).Wrap(client, 1, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("DATA\r\n"))
		done <- err
	}()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("write on a closed link: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second): // a hang, not a timing
		t.Fatal("Close left a write waiting")
	}
}

func TestLinkValidate(t *testing.T) {
	for _, tc := range []struct {
		c    LinkConfig
		want string // in the error; "" valid
	}{
		{LinkConfig{}, ""},
		{LinkConfig{Enabled: true, Loss: 1}, ""},
		{LinkConfig{Enabled: true, Loss: math.NaN()}, "loss"},
		{LinkConfig{Enabled: true, Loss: 1.01}, "loss"},
		{LinkConfig{Loss: -0.1}, "loss"},
		{LinkConfig{Enabled: true, BitsPerSecond: -1}, "bits_per_second"},
		{LinkConfig{Enabled: true, FramingBytes: -1}, "framing_bytes"},
		{LinkConfig{Enabled: true, Segment: -1}, "segment"},
		{LinkConfig{Enabled: true, Segment: 65536}, "segment"},
		{LinkConfig{Enabled: true, ResetAfterBytes: -1}, "reset_after_bytes"},
		{LinkConfig{Enabled: true, Latency: -1}, "latency"},
		{LinkConfig{Enabled: true, Jitter: -1}, "jitter"},
		{LinkConfig{Enabled: true, Retransmit: -1}, "retransmit"},
	} {
		err := tc.c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want an error naming %q", tc.c, err, tc.want)
		}
	}
}

// FuzzLinkConfig: whatever Validate accepts makes a link whose segments
// cost a sane time on the line; what it refuses, it says why.
func FuzzLinkConfig(f *testing.F) {
	f.Add(0, 0, int64(0), int64(0), 0.0, 0, int64(0), 0)
	f.Add(28800, 48, int64(50e6), int64(5e6), 0.01, 536, int64(1e9), 100000)
	f.Add(-1, 0, int64(0), int64(0), math.NaN(), 0, int64(0), 0)
	f.Fuzz(func(t *testing.T, bps, framing int, latency, jitter int64, loss float64, segment int, retransmit int64, reset int) {
		c := LinkConfig{Enabled: true, BitsPerSecond: bps, FramingBytes: framing, Latency: duration.Duration(latency),
			Jitter: duration.Duration(jitter), Loss: loss, Segment: segment, Retransmit: duration.Duration(retransmit), ResetAfterBytes: reset}
		if err := c.Validate(); err != nil {
			if !strings.HasPrefix(err.Error(), "link: ") {
				t.Errorf("error %q does not say it is the link's", err)
			}
			return
		}
		l, err := NewLink(c, 1)
		if err != nil {
			t.Fatalf("valid %+v: %v", c, err)
		}
		d := l.cfg
		if d.Segment < 1 || d.BitsPerSecond < 1 || d.Retransmit < 0 || l.line.Serialization(d.Segment) < 0 {
			t.Errorf("valid %+v made %+v", c, d)
		}
	})
}

// BenchmarkLinkWrite is what the link's bookkeeping costs a 1 KB write
// (two segments) on a line too fast to wait on, beside the bare socket
// in the same run: go test ./lab/line -run '^$' -bench LinkWrite -count 5
func BenchmarkLinkWrite(b *testing.B) {
	msg := bytes.Repeat([]byte("x"), 1024)
	for _, wrapped := range []bool{false, true} {
		name := "bare"
		if wrapped {
			name = "link"
		}
		b.Run(name, func(b *testing.B) {
			c, server := tcpPair(b)
			go io.Copy(io.Discard, server)
			if wrapped {
				l, err := NewLink(LinkConfig{Enabled: true, BitsPerSecond: 1 << 40, Latency: duration.Duration(time.Nanosecond)}, 1)
				if err != nil {
					b.Fatal(err)
				}
				c = l.Wrap(c, 1, nil)
			}
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
