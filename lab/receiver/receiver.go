// Package receiver is the lab's model of Courier R: couriertcpd's admission
// and pre-greeting checks in front of an ESMTP server (emersion/go-smtp)
// that delivers local mail into a Maildir.
//
// Contract, per accepted connection, in this order:
//  1. Admission: at most MaxSessions connections at once. Like couriertcpd
//     at its limit, the server stops accepting; connections wait in the
//     kernel's backlog until a session ends.
//  2. Before the greeting: reverse DNS (PTR of the client, then A of that
//     name: forward confirmation), one lookup per DNSBL zone, and an IDENT
//     query back to the client's port 113. Each is timed and logged as an
//     events.Check. A failed lookup is logged and the session goes on; a
//     DNSBL listing rejects every RCPT with 550, as couriertcpd -block does.
//  3. The SMTP session: a recipient in a local domain whose local part is
//     Account or Account-extension is accepted (the seed's
//     .courier-foo-default); any other domain gets 550 (never an open
//     relay). Each accepted message is written once per recipient into the
//     Maildir with a Received: header naming the PTR name, IDENT user and
//     address, and logged as events.Delivered once it is in new/.
package receiver

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/resolver"
)

// Config is everything the receiver needs; the lab fills it from the
// scenario and the live topology. Each part is defined beside the code
// that reads it.
type Config struct {
	Hostname string `json:"hostname"`
	Admission
	SMTP
	Delivery
}

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
	if cfg.MaxSessions < 1 {
		return nil, fmt.Errorf("receiver: max sessions must be at least 1, got %d", cfg.MaxSessions)
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
		cfg.IdentTimeout = 30 * time.Second
	}
	dir := maildir.Dir(cfg.Maildir)
	if err := dir.Create(); err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	s := &Server{
		cfg: cfg, log: log, dir: dir,
		res:    &resolver.Resolver{Servers: cfg.DNSServers, FirstTimeout: cfg.DNSTimeout},
		slots:  make(chan struct{}, cfg.MaxSessions),
		conns:  make(chan net.Conn),
		done:   make(chan struct{}),
		served: make(chan struct{}),
		live:   map[*sessionConn]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.smtp = s.newSMTPServer()
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
			c.Conn.Close()
		}
		s.mu.Unlock()
		s.smtp.Shutdown(context.Background())
	})
	return err
}
