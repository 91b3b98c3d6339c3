package wire

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// conn is a TCP connection whose Read and Write are raw system calls.
type conn struct {
	net.Conn
	rc   syscall.RawConn
	r, w half
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
	if h == &c.r {
		err = c.rc.Read(h.fn)
	} else {
		err = c.rc.Write(h.fn)
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
