package line

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
)

func fastLink(t *testing.T, c LinkConfig, seed uint64) *Link {
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

// TestLinkLossSeeded: the same seed loses the same segments; another
// seed others; 0 none and 1 all.
func TestLinkLossSeeded(t *testing.T) {
	lost := func(l *Link) []int {
		var out []int
		for conn := 1; conn <= 5; conn++ {
			for n := 1; n <= 200; n++ {
				if l.Lost(conn, Up, n) {
					out = append(out, conn*1000+n)
				}
			}
		}
		return out
	}
	a, b, c := lost(fastLink(t, LinkConfig{Loss: 0.05}, 1)), lost(fastLink(t, LinkConfig{Loss: 0.05}, 1)), lost(fastLink(t, LinkConfig{Loss: 0.05}, 2))
	if !slices.Equal(a, b) {
		t.Error("the same seed lost different segments")
	}
	if slices.Equal(a, c) {
		t.Error("seeds 1 and 2 lost the same segments")
	}
	if len(a) < 20 || len(a) > 90 {
		t.Errorf("5%% loss lost %d of 1000 segments", len(a))
	}
	if n := len(lost(fastLink(t, LinkConfig{}, 1))); n != 0 {
		t.Errorf("no loss lost %d", n)
	}
	if n := len(lost(fastLink(t, LinkConfig{Loss: 1}, 1))); n != 1000 {
		t.Errorf("loss 1 lost %d of 1000", n)
	}
}

func tcpPair(t *testing.T) (client, server net.Conn) {
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
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestLinkCarriesIntact: bytes written over a lossy link arrive whole and
// in order, and every segment's loss is reported.
func TestLinkCarriesIntact(t *testing.T) {
	client, server := tcpPair(t)
	var mu sync.Mutex
	var faults []Fault
	c := fastLink(t, LinkConfig{Loss: 1, Segment: 100}, 7).Wrap(client, 1, func(f Fault) {
		mu.Lock()
		faults = append(faults, f)
		mu.Unlock()
	})
	msg := bytes.Repeat([]byte("0123456789abcdefghij\r\n"), 50) // 1100 bytes: 11 segments
	go func() {
		c.Write(msg)
		c.Close()
	}()
	got, err := io.ReadAll(server)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, len(msg))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(faults) != 11 {
		t.Errorf("%d losses reported, want 11 (every segment)", len(faults))
	}
	for _, f := range faults {
		if f.Kind != "loss" || f.Wait < time.Millisecond {
			t.Errorf("fault %+v: want a loss costing at least the retransmission wait", f)
		}
	}
}

// TestLinkResets: past its byte limit the link resets the connection
// once; the peer reads a reset and no byte beyond the limit.
func TestLinkResets(t *testing.T) {
	client, server := tcpPair(t)
	var resets []Fault
	c := fastLink(t, LinkConfig{ResetAfterBytes: 1000, Segment: 100}, 1).Wrap(client, 1, func(f Fault) { resets = append(resets, f) })
	var werr error
	for range 30 {
		if _, werr = c.Write(bytes.Repeat([]byte("x"), 100)); werr != nil {
			break
		}
	}
	if !errors.Is(werr, ErrReset) {
		t.Errorf("writing past the limit: %v, want ErrReset", werr)
	}
	got, err := io.ReadAll(server)
	if len(got) > 1000 {
		t.Errorf("the peer read %d bytes, past the limit of 1000", len(got))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the peer read %v, want a connection reset", err)
	}
	if len(resets) != 1 || resets[0].Kind != "reset" || resets[0].Bytes != 1100 {
		t.Errorf("faults %+v, want one reset at 1100 bytes", resets)
	}
	if _, err := c.Read(make([]byte, 10)); err == nil {
		t.Error("a reset connection still reads")
	}
}

// TestLinkTime: a write costs what the line model books for its segments
// (checked against the model's own arithmetic, not a clock).
func TestLinkTime(t *testing.T) {
	l, err := NewLink(LinkConfig{Enabled: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// 536 bytes + 48 of framing at 28.8k: 162.2 ms on the line, 50 ms latency.
	at := time.Unix(0, 0)
	tr := l.line.Send(Up, at, 536)
	if want := l.line.Serialization(536) + DefaultLatency; tr.Deliver.Sub(at) != want || l.line.Serialization(536) != 162222222*time.Nanosecond {
		t.Errorf("a full segment arrives after %s, want %s", tr.Deliver.Sub(at), want)
	}
	for _, bad := range []LinkConfig{{Enabled: true, Loss: 2}, {Enabled: true, Segment: -1}, {Enabled: true, Latency: -1}} {
		if _, err := NewLink(bad, 1); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
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
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err == nil {
					io.Copy(io.Discard, c)
				}
			}()
			var c net.Conn
			if c, err = net.Dial("tcp", ln.Addr().String()); err != nil {
				b.Fatal(err)
			}
			defer c.Close()
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
