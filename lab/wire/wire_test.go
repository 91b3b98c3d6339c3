package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// pair is a real loopback TCP connection: the accepted end wrapped, and
// the client's end as the net package gives it.
func pair(t *testing.T) (server net.Conn, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	w := Wrap(s)
	t.Cleanup(func() { w.Close(); c.Close() })
	return w, c.(*net.TCPConn)
}

func TestWrapTakesTCPOnLinux(t *testing.T) {
	s, _ := pair(t)
	_, raw := s.(*conn)
	if raw != (runtime.GOOS == "linux") {
		t.Fatalf("Wrap gave %T on %s", s, runtime.GOOS)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("a connection that is not TCP was wrapped")
	}
}

// Both ways, more than the sockets' buffers hold, with the far end
// reading in small pieces: the writes fill the buffer, meet EAGAIN and
// wait on the poller, and every byte arrives once, in order.
func TestBytesBothWays(t *testing.T) {
	s, c := pair(t)
	data := make([]byte, 8<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	sent := make(chan error, 1)
	go func() {
		n, err := s.Write(data)
		if err == nil && n != len(data) {
			err = io.ErrShortWrite
		}
		sent <- err
	}()
	got := make([]byte, 0, len(data))
	buf := make([]byte, 1000)
	for len(got) < len(data) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes read are not the bytes written")
	}

	go func() {
		_, err := c.Write(data)
		sent <- err
	}()
	got, err := io.ReadAll(io.LimitReader(s, int64(len(data))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes read are not the bytes written")
	}
}

func TestEndOfStream(t *testing.T) {
	s, c := pair(t)
	c.Write([]byte("QUIT\r\n"))
	c.CloseWrite()
	got, err := io.ReadAll(s) // ReadAll stops at io.EOF only
	if err != nil || string(got) != "QUIT\r\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	if n, err := s.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	s, c := pair(t)
	s.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := s.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v; want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("error %#v; want a *net.OpError of read", err)
	}
	// With the deadline lifted the next read waits again and succeeds.
	s.SetReadDeadline(time.Time{})
	c.Write([]byte("NOOP\r\n"))
	buf := make([]byte, 10)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "NOOP\r\n" {
		t.Fatalf("read after the deadline was lifted: %q, %v", buf[:n], err)
	}
}

// A Read waiting on the poller is ended by Close from another goroutine
// (the receiver's shutdown does this), with net.ErrClosed.
func TestCloseEndsAWaitingRead(t *testing.T) {
	s, _ := pair(t)
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := s.Read(make([]byte, 10))
		done <- err
	}()
	<-started
	s.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v; want net.ErrClosed", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v; want net.ErrClosed", err)
	}
}

// A peer that resets the connection: the write fails with the system's
// error inside a *net.OpError, and the process goes on.
func TestWriteToAResetPeer(t *testing.T) {
	s, c := pair(t)
	c.SetLinger(0)
	c.Close() // RST
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = s.Write([]byte("250 ok\r\n"))
		time.Sleep(time.Millisecond)
	}
	var se *os.SyscallError
	if !errors.As(err, &se) {
		t.Fatalf("write after the peer's reset: %v; want a system call error", err)
	}
}

// Writers on several goroutines at once, as net.Conn allows: each
// write's bytes arrive whole (not interleaved with another's), and all
// of them arrive.
func TestConcurrentWriters(t *testing.T) {
	s, c := pair(t)
	const writers, each = 8, 200
	line := func(w, i int) string { return fmt.Sprintf("250 writer %d line %d\r\n", w, i) }
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Write([]byte(line(w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := map[string]bool{}
	r := bufio.NewReader(c)
	for len(got) < writers*each {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got[l] {
			t.Fatalf("%q read twice", l)
		}
		got[l] = true
	}
	wg.Wait()
	for w := range writers {
		for i := range each {
			if !got[line(w, i)] {
				t.Fatalf("%q never arrived", line(w, i))
			}
		}
	}
}
