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
// As with net.Conn, several goroutines may call them at once: rmu and wmu
// give the fields below to one Read and one Write at a time.
type conn struct {
	net.Conn
	rc syscall.RawConn

	rmu     sync.Mutex
	rp      []byte // what read reads into
	rn      int
	rerr    syscall.Errno
	readFn  func(fd uintptr) bool
	wmu     sync.Mutex
	wp      []byte // what write has still to write
	wn      int
	werr    syscall.Errno
	writeFn func(fd uintptr) bool
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
	// Bound once: a method value made at each call would be allocated.
	w.readFn, w.writeFn = w.read, w.write
	return w
}

// read is one read(2); false (EAGAIN) has RawConn wait for the socket to
// be readable and call it again.
func (c *conn) read(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rp[0])), uintptr(len(c.rp)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.rn, c.rerr = int(n), e
		return true
	}
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rp, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	c.rp = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case c.rerr != 0:
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

// write writes what is left of wp; false (EAGAIN: the socket's buffer is
// full) has RawConn wait for room and call it again.
func (c *conn) write(fd uintptr) bool {
	for len(c.wp) > 0 {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wp[0])), uintptr(len(c.wp)))
		switch e {
		case 0:
			c.wn += int(n)
			c.wp = c.wp[n:]
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wp, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	c.wp = nil
	switch {
	case err != nil:
		return c.wn, c.opError("write", err)
	case c.werr != 0:
		return c.wn, c.opError("write", os.NewSyscallError("write", c.werr))
	}
	return c.wn, nil
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
