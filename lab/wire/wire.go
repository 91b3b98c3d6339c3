// Package wire is the socket under an SMTP session, read and written
// with as little of the Go runtime between the session and the kernel as
// the net package allows.
//
// A read or write on a Go TCP connection is a blocking-style system call
// wrapped in the runtime's entersyscall and exitsyscall, on a socket the
// runtime has made non-blocking. While a thread sits in such a call, the
// runtime's monitor (sysmon) takes its P back after 20 µs and hands it to
// another thread, which it wakes; when the call returns, the first
// thread finds its P gone and parks. On loopback a write also runs the
// receiving end's TCP input in the same call, so the replies of an SMTP
// server often last that long: measured with smtp-source against the
// receiver (docs/PERFORMANCE.md), sysmon then ticked every 20 µs and
// threads were parked and woken several times a message.
//
// A non-blocking socket never waits in the kernel: a read with nothing
// to read and a write with no room fail at once with EAGAIN. Wrap makes
// such calls as raw system calls, which the runtime does not hand off,
// and leaves everything else to the net package through
// syscall.RawConn: the descriptor's locking against Close, the read and
// write deadlines, and the wait on the network poller after an EAGAIN.
// A deadline reaches the socket only when it changes what a call does
// (wire_linux.go): an SMTP session sets several a message, nearly all
// of them later than the one before, and none matters to a call that
// does not wait.
package wire

import "net"

// Wrap returns c reading and writing with raw system calls where the
// platform and the connection allow it (a TCP connection on Linux), and
// c itself elsewhere. The returned connection's errors are the net
// package's: io.EOF at the end, a *net.OpError otherwise (net.ErrClosed
// after Close, a timeout after a deadline).
func Wrap(c net.Conn) net.Conn {
	if w := wrap(c); w != nil {
		return w
	}
	return c
}
