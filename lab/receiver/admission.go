package receiver

// couriertcpd's part of Courier R: the accept loop, the admission slots
// (-maxprocs), the per-IP and per-C limits (-maxperip, -maxperc) and the
// accepted connection as the session sees it. Read in
// github.com/svarshavchik/courier-libs tcpd/tcpd.c (doit, getfreeslot,
// run(); the same in the 2009 and 2013 versions that still had IDENT) and
// tcpd/couriertcpd.sgml.

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/wire"
)

// admit is couriertcpd's accept loop (doit): take a slot, accept, check,
// hand to SMTP. Like getfreeslot, it accepts only with a slot free.
func (s *Server) admit() {
	defer s.wg.Done()
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			return
		}
		c, err := s.ln.Accept()
		if err != nil {
			<-s.slots
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off and go on
			// accepting rather than leave the port dead.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-s.done:
				return
			}
			continue
		}
		// wire.Wrap: the session's socket read and written without the
		// runtime's system call hand-off (lab/wire).
		sc := &sessionConn{Conn: wire.Wrap(c), id: "r" + strconv.FormatInt(s.ids.Add(1), 10), s: s}
		ip := tcpIP(c.RemoteAddr())
		s.mu.Lock()
		// The child's view of its siblings is the one it forks with: the
		// connections holding a slot now, their checks and refusals
		// included (run() counts pids[] and addrs[] as of the fork).
		for o := range s.live {
			oip := tcpIP(o.RemoteAddr())
			if ip.Equal(oip) {
				sc.sameIP++
			}
			if sameCBlock(ip, oip) {
				sc.sameC++
			}
		}
		s.live[sc] = struct{}{}
		s.mu.Unlock()
		s.log.Add(events.Event{Kind: events.ConnOpen, Conn: sc.id, Host: c.RemoteAddr().String()})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if reason := s.check(sc); reason != "" {
				s.refuse(sc, reason)
				return
			}
			select {
			case s.conns <- sc:
			case <-s.done:
				sc.Close()
			}
		}()
	}
}

// overLimit is run()'s per-IP and per-C check (-maxperip, -maxperc): the
// reason c is refused, or "" when it is within both limits.
func (s *Server) overLimit(c *sessionConn) string {
	switch {
	case s.cfg.MaxPerIP > 0 && c.sameIP >= s.cfg.MaxPerIP:
		return "max_per_ip"
	case s.cfg.MaxPerC > 0 && c.sameC >= s.cfg.MaxPerC:
		return "max_per_c"
	}
	return ""
}

// refuse turns a connection away as couriertcpd does when a per-IP or
// per-C limit is reached: the child _exits, so the client sees the
// connection closed with nothing written (run() in tcpd.c; -denymsg is for
// the access file only). Its slot is free again at once.
func (s *Server) refuse(c *sessionConn, reason string) {
	s.log.Add(events.Event{Kind: events.Refused, Conn: c.id, Host: c.RemoteAddr().String(), Reason: reason})
	c.closeReason = "refused: " + reason
	c.Close()
}

// sessionConn is an accepted connection with what the checks found. When
// closed it logs ConnClose and then gives its admission slot back, so the
// log never shows more than MaxSessions connections open at once.
type sessionConn struct {
	net.Conn
	id    string
	s     *Server
	once  sync.Once
	count atomic.Int64 // messages accepted on this connection

	// sameIP and sameC count the other connections holding a slot when
	// this one was accepted, from its address and from its C block.
	sameIP, sameC int
	closeReason   string // set when refused: ConnClose's reason wins over what was seen

	// What the connection showed of its end, for ConnClose's reason.
	endMu        sync.Mutex
	sawQuit      bool  // the server answered 221 (QUIT)
	readErr      error // the first error reading from the client
	serverClosed bool  // the server shut down with the session open

	ptrName   string // "" when reverse DNS found nothing
	confirmed bool   // the PTR name's A (or AAAA) records contain the client
	identUser string
	// block, when not empty, is the text every RCPT is refused with (550),
	// as couriertcpd -block does: set by the checks, read by the session.
	block string
	// marks are the listings of mark-only zones, "zone: text" each, for
	// the Received: header or the report.
	marks []string
}

// Close may be called more than once and from several goroutines (go-smtp
// closes on QUIT, on server Close and when its handler ends); the first
// call logs and releases.
func (c *sessionConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		reason := c.endReason()
		c.s.log.Add(events.Event{Kind: events.ConnClose, Conn: c.id, Count: int(c.count.Load()), Reason: reason})
		c.s.mu.Lock()
		delete(c.s.live, c)
		c.s.mu.Unlock()
		<-c.s.slots
	})
	return err
}

// Read notes how the client's side ended: a timeout, the client closing,
// or an error.
func (c *sessionConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.endMu.Lock()
		if c.readErr == nil {
			c.readErr = err
		}
		c.endMu.Unlock()
	}
	return n, err
}

// Write notes the 221 that answers QUIT (no other reply has that code).
func (c *sessionConn) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, []byte("221 ")) || bytes.Contains(p, []byte("\r\n221 ")) {
		c.endMu.Lock()
		c.sawQuit = true
		c.endMu.Unlock()
	}
	return c.Conn.Write(p)
}

// endReason is ConnClose's reason: refused (and why), quit, timeout,
// server closed, client closed, error, or closed when nothing was seen.
func (c *sessionConn) endReason() string {
	if c.closeReason != "" {
		return c.closeReason
	}
	c.endMu.Lock()
	defer c.endMu.Unlock()
	var ne net.Error
	switch {
	case c.sawQuit:
		return "quit"
	case c.serverClosed:
		return "server closed"
	case c.readErr == nil:
		return "closed"
	case errors.As(c.readErr, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(c.readErr, io.EOF):
		return "client closed"
	case errors.Is(c.readErr, net.ErrClosed):
		return "closed"
	}
	return "error: " + c.readErr.Error()
}

// chanListener hands checked connections to go-smtp's Serve, each behind
// its front (front.go).
type chanListener struct{ s *Server }

func (l chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.s.conns:
		// go-smtp writes the 220 as soon as it has the connection.
		sc := c.(*sessionConn)
		l.s.log.Add(events.Event{Kind: events.Greeting, Conn: sc.id})
		return newFront(sc, l.s.cfg.CommandTimeout.D(), l.s.cfg.DataTimeout.D()), nil
	case <-l.s.done:
		return nil, net.ErrClosed
	}
}
func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return l.s.ln.Addr() }

// tcpIP is the IP of a TCP address (nil for anything else).
func tcpIP(a net.Addr) net.IP {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP
	}
	return nil
}

// sameCBlock reports whether a and b are in one C block as run() counts it:
// the 16-byte (IPv4-mapped) addresses agree but for the last byte, which
// for IPv4 is the /24.
func sameCBlock(a, b net.IP) bool {
	a16, b16 := a.To16(), b.To16()
	return a16 != nil && b16 != nil && a16[:15].Equal(b16[:15])
}
