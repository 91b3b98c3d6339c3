package wire

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The socket's own deadline moves only when the new one is earlier, or
// when the socket's older one ends a call: a later deadline stays
// pending (the saving), and still governs the next call: an earlier
// deadline the socket still has, already past, does not end it.
func TestLaterDeadlineIsPendingYetHonoured(t *testing.T) {
	s, c := pair(t)
	w := s.(*conn)
	past := time.Now().Add(-time.Second)
	s.SetReadDeadline(past) // earlier than none: on the socket at once
	if _, err := s.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v; want a timeout", err)
	}
	later := time.Now().Add(time.Hour)
	s.SetReadDeadline(later)
	if !w.r.set.Equal(past) {
		t.Fatalf("a later deadline reached the socket at once (set %v)", w.r.set)
	}
	c.Write([]byte("NOOP\r\n"))
	buf := make([]byte, 10)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "NOOP\r\n" {
		t.Fatalf("read under a later deadline, the socket's past: %q, %v", buf[:n], err)
	}
	if !w.r.set.Equal(later) {
		t.Fatalf("the socket's deadline is %v after the retry; want the one asked for", w.r.set)
	}
}

// An earlier deadline takes effect at once, as net's: a read with bytes
// already there fails once it has passed.
func TestEarlierDeadlineAtOnce(t *testing.T) {
	s, c := pair(t)
	s.SetReadDeadline(time.Now().Add(time.Hour))
	c.Write([]byte("NOOP\r\n"))
	waitFor(t, func() bool { return buffered(t, s) })
	s.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := s.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with bytes waiting, past its shortened deadline: %v; want a timeout", err)
	}
	s.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := s.Write([]byte("250 ok\r\n")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v; want a timeout", err)
	}
	s.SetWriteDeadline(time.Time{}) // pending; the write finds the past one and retries
	if _, err := s.Write([]byte("250 ok\r\n")); err != nil {
		t.Fatalf("write with the deadline lifted: %v", err)
	}
}

// A deadline set while a read waits governs it, whichever way it moves:
// lifted (the read goes on past the socket's old deadline) or brought
// to now (the read ends with a timeout). Whether the read has begun to
// wait when the deadline is set does not change what it must do.
func TestDeadlineSetWhileWaiting(t *testing.T) {
	s, c := pair(t)
	s.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	got := make(chan error, 1)
	buf := make([]byte, 10)
	go func() {
		_, err := s.Read(buf)
		got <- err
	}()
	time.Sleep(50 * time.Millisecond) // most often the read waits by now
	s.SetReadDeadline(time.Time{})
	time.Sleep(600 * time.Millisecond) // past the deadline the read began with
	c.Write([]byte("NOOP\r\n"))
	if err := <-got; err != nil {
		t.Fatalf("a read whose deadline was lifted while it waited: %v", err)
	}
	go func() {
		_, err := s.Read(buf)
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	s.SetReadDeadline(time.Now())
	if err := <-got; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a waiting read whose deadline was brought to now: %v; want a timeout", err)
	}
}

// After Close, setting a deadline fails as net's does (go-smtp's command
// loop stops on that error), even one that would otherwise be pending.
func TestDeadlineAfterClose(t *testing.T) {
	s, _ := pair(t)
	s.SetReadDeadline(time.Now().Add(time.Minute))
	s.Close()
	if err := s.SetReadDeadline(time.Now().Add(time.Hour)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read deadline set after Close: %v; want net.ErrClosed", err)
	}
	if err := s.SetWriteDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write deadline set after Close: %v; want net.ErrClosed", err)
	}
}

// waitFor polls cond until it holds (the test's own timeout ends it
// otherwise).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

// buffered says whether the wrapped side s has bytes waiting to be
// read (SIOCINQ, the bytes queued on its socket).
func buffered(t *testing.T, s net.Conn) bool {
	t.Helper()
	w := s.(*conn)
	var n int
	var err error
	w.rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}
