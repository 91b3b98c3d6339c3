package wire

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// conn is a TCP connection whose Read and Write are raw system calls.
type conn struct {
	net.Conn
	rc     syscall.RawConn
	r, w   half
	closed atomic.Bool // Close was called: deadlines go to the socket, for its error
}

// half is one direction of the connection: the buffer its system call
// works on and what the call gave. As with net.Conn, several goroutines
// may read (or write) at once: mu gives the half to one call at a time.
type half struct {
	mu    sync.Mutex
	p     []byte // what is left to read into, or to write
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // c.read or c.write, bound once: a method value made per call would be allocated

	// The half's deadline (see the comment above SetReadDeadline). dmu
	// guards these, apart from mu: a deadline may be set during a call.
	dmu   sync.Mutex
	want  time.Time             // the deadline last asked for
	set   time.Time             // the deadline the socket has (net's)
	setOn func(time.Time) error // the net package's SetReadDeadline or SetWriteDeadline
}

func wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &conn{Conn: c, rc: rc}
	w.r.fn, w.w.fn = w.read, w.write
	w.r.setOn, w.w.setOn = c.SetReadDeadline, c.SetWriteDeadline
	return w
}

// read is one read(2); false (EAGAIN) has RawConn wait for the socket to
// be readable and call it again.
func (c *conn) read(fd uintptr) bool {
	h := &c.r
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&h.p[0])), uintptr(len(h.p)))
		switch e {
		case 0:
			h.n = int(n)
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			h.errno = e
		}
		return true
	}
}

// write writes what is left of its half's p; false (EAGAIN: the
// socket's buffer is full) has RawConn wait for room and call it again.
func (c *conn) write(fd uintptr) bool {
	h := &c.w
	for len(h.p) > 0 {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&h.p[0])), uintptr(len(h.p)))
		switch e {
		case 0:
			h.n += int(n)
			h.p = h.p[n:]
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			h.errno = e
			return true
		}
	}
	return true
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.run(&c.r, "read", p)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) { return c.run(&c.w, "write", p) }

// run makes one Read or Write: h's system call, through RawConn's Read
// or Write, on p.
func (c *conn) run(h *half, op string, p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.p, h.n, h.errno = p, 0, 0
	var err error
	for {
		if h == &c.r {
			err = c.rc.Read(h.fn)
		} else {
			err = c.rc.Write(h.fn)
		}
		// A deadline the socket has but the caller no longer asked for
		// ended the call: make it again under the one asked for.
		if !h.retry(err) {
			break
		}
	}
	h.p = nil
	switch {
	case err != nil:
		return h.n, c.opError(op, err)
	case h.errno != 0:
		return h.n, c.opError(op, os.NewSyscallError(op, h.errno))
	}
	return h.n, nil
}

// Deadlines. go-smtp sets a read deadline before every command line and a
// write deadline before every reply, and the receiver and the sender set
// one per phase: several a message, each of which the net package hands
// to the runtime's poller (a lock, a timer moved). Nearly all of them
// only push the deadline later, and a call that does not wait looks at
// its deadline only to see whether it has passed. So a half keeps the
// deadline asked for (want) and gives it to the socket (set) only when
// that changes what a call does:
//   - at once when it is earlier than the socket's (a shortened deadline,
//     or one already past, ends the next call, or a waiting one, as
//     net's would);
//   - otherwise when the socket's deadline, earlier, ends a call: the
//     call is made again under the one asked for (retry).
// A pending deadline is thus never earlier than the socket's, and a call
// fails with a timeout exactly when net's would; a waiting call whose
// deadline was pushed later wakes once at the old one and waits on.
// After Close every deadline goes to the socket, so that setting one
// fails as net's does: go-smtp's command loop ends on that error (a QUIT
// closes the connection, and a command the client had pipelined after it
// must not be served).

func (c *conn) SetReadDeadline(t time.Time) error  { return c.r.deadline(t, c.closed.Load()) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.w.deadline(t, c.closed.Load()) }
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *conn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

func (h *half) deadline(t time.Time, closed bool) error {
	h.dmu.Lock()
	defer h.dmu.Unlock()
	h.want = t
	if closed || !t.IsZero() && (h.set.IsZero() || t.Before(h.set)) {
		h.set = t
		return h.setOn(t)
	}
	return nil
}

// retry reports whether a call that failed with err must be made again:
// the socket's deadline ended it while a later one (or none) was asked
// for, which the socket now has.
func (h *half) retry(err error) bool {
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	h.dmu.Lock()
	defer h.dmu.Unlock()
	if h.want.Equal(h.set) {
		return false
	}
	h.set = h.want
	return h.setOn(h.want) == nil
}

// opError is err as net.Conn's Read and Write report it: a *net.OpError
// naming the operation and both addresses. RawConn's own errors (a
// deadline, the connection closed) come as an OpError of "raw-read" or
// "raw-write"; their inner error is kept.
func (c *conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
