// Package receiver is the lab's model of Courier R: couriertcpd's admission
// and pre-greeting checks in front of an ESMTP server (emersion/go-smtp)
// that delivers local mail into a Maildir.
//
// Contract, per accepted connection, as couriertcpd and courieresmtpd do
// it (each file's header names the Courier sources it models):
//  1. Admission: at most MaxSessions connections at once; at the limit the
//     server stops accepting and connections wait in the kernel's backlog.
//  2. Before the greeting, one after another: IDENT back to the client's
//     port 113; the per-IP and per-/24 limits (over one, the connection is
//     closed without a word, and logged as events.Refused); reverse DNS
//     (PTR, then A of that name: forward confirmation); with the
//     courier-1.0.16 profile also its own address's names; one lookup per
//     DNSBL zone (reject: every RCPT refused with the zone's text; mark:
//     recorded only). Each is timed and logged as an events.Check naming
//     the query as the DNS server logs it; a failed lookup is logged and
//     the session goes on.
//  3. The SMTP session: a recipient in a local domain whose address
//     extension matches a .courier-EXT rule is accepted, and postmaster
//     at a local domain or alone (it goes where the bare account's mail
//     goes); any other domain gets 550 (never an open relay). A front
//     before go-smtp (front.go) gives RFC 5321's reply codes where go-smtp
//     does not, and the EHLO list Courier gave. Each accepted message passes the
//     filter hook and is written once per recipient into its Maildir with
//     Courier's Received: header, and logged as events.Delivered once it
//     is in new/.
package receiver

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/resolver"
)

// Server is a running receiver.
type Server struct {
	cfg   Config
	log   *events.Log
	dir   maildir.Dir
	res   *resolver.Resolver
	smtp  *smtp.Server
	slots chan struct{}
	conns chan net.Conn
	ln    net.Listener
	ids   atomic.Int64

	ctx    context.Context // ends on Close, aborting the checks in flight
	cancel context.CancelFunc
	done   chan struct{}
	served chan struct{} // closed when go-smtp's Serve has returned
	wg     sync.WaitGroup
	once   sync.Once

	mu   sync.Mutex
	live map[*sessionConn]struct{} // accepted and not yet closed
}

// New checks cfg and prepares the Maildir.
func New(cfg Config, log *events.Log) (*Server, error) {
	if err := cfg.Admission.Validate(); err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	if err := cfg.Filter.check(); err != nil {
		return nil, err
	}
	loc, err := cfg.Delivery.prepare()
	if err != nil {
		return nil, err
	}
	if cfg.IdentPort == 0 {
		cfg.IdentPort = 113
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = 10 << 20
	}
	if cfg.IdentTimeout <= 0 {
		// identd.Query takes 0 as "no timeout": a client host that drops
		// port 113 would hold the slot for the kernel's connect timeout.
		cfg.IdentTimeout = duration.Duration(30 * time.Second)
	}
	dir := maildir.Dir(cfg.Maildir)
	if err := dir.Create(); err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	s := &Server{
		cfg: cfg, log: log, dir: dir,
		slots:  make(chan struct{}, cfg.MaxSessions),
		conns:  make(chan net.Conn),
		done:   make(chan struct{}),
		served: make(chan struct{}),
		live:   map[*sessionConn]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.res = s.resolver()
	s.smtp = s.newSMTPServer(loc)
	return s, nil
}

// Listen starts accepting on addr (":25", "127.0.0.1:0") and returns the
// address bound. It serves until Close.
func (s *Server) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.admit()
	go func() {
		defer close(s.served)
		s.smtp.Serve(chanListener{s})
	}()
	return ln.Addr(), nil
}

// Close stops accepting, ends every session (checks in flight included)
// and waits until no session can write to the Maildir or the log any more.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		s.cancel()
		if s.ln == nil {
			err = s.smtp.Close()
			return
		}
		err = s.ln.Close()
		// admit and the checks end (the context aborts lookups): no more
		// hand-overs, and connections not handed over are closed.
		s.wg.Wait()
		// go-smtp's Serve has returned: it starts no more handlers.
		<-s.served
		// Unblock every handler; each then closes its sessionConn, which
		// logs ConnClose. Shutdown waits for the handlers to return.
		s.mu.Lock()
		for c := range s.live {
			c.endMu.Lock()
			c.serverClosed = true
			c.endMu.Unlock()
			c.Conn.Close()
		}
		s.mu.Unlock()
		s.smtp.Shutdown(context.Background())
	})
	return err
}
