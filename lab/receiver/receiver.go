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
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/resolver"
	"github.com/smtplab/smtplab/lab/scenario"
)

// Config is everything the receiver needs; the lab fills it from the
// scenario and the live topology.
type Config struct {
	Hostname     string        `json:"hostname"`
	MaxSessions  int           `json:"max_sessions"`
	LocalDomains []string      `json:"local_domains"`
	Account      string        `json:"account"`
	Maildir      string        `json:"maildir"`
	DNSServers   []string      `json:"dns_servers"` // "ip:port"
	DNSTimeout   time.Duration `json:"dns_timeout_ns"`
	ReverseDNS   bool          `json:"reverse_dns"`
	Blacklists   []string      `json:"blacklists"` // DNSBL zones checked per connection
	Ident        bool          `json:"ident"`
	IdentPort    int           `json:"ident_port"`
	IdentTimeout time.Duration `json:"ident_timeout_ns"`
	MaxMessage   int64         `json:"max_message_bytes"`
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
	done  chan struct{}
	once  sync.Once
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
	dir := maildir.Dir(cfg.Maildir)
	if err := dir.Create(); err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	s := &Server{
		cfg: cfg, log: log, dir: dir,
		res:   &resolver.Resolver{Servers: cfg.DNSServers, FirstTimeout: cfg.DNSTimeout},
		slots: make(chan struct{}, cfg.MaxSessions),
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
	}
	s.smtp = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.smtp.Domain = cfg.Hostname
	s.smtp.ReadTimeout = 5 * time.Minute
	s.smtp.WriteTimeout = 5 * time.Minute
	s.smtp.MaxMessageBytes = cfg.MaxMessage
	s.smtp.MaxRecipients = 100
	s.smtp.EnableSMTPUTF8 = false
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
	go s.admit()
	go s.smtp.Serve(chanListener{s})
	return ln.Addr(), nil
}

// Close stops accepting and ends every session.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.done) })
	if s.ln != nil {
		s.ln.Close()
	}
	return s.smtp.Close()
}

// admit is couriertcpd: take a slot, accept, check, hand to SMTP.
func (s *Server) admit() {
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
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		sc := &sessionConn{Conn: c, id: "r" + strconv.FormatInt(s.ids.Add(1), 10), release: func() { <-s.slots }}
		go func() {
			s.log.Add(events.Event{Kind: events.ConnOpen, Conn: sc.id, Host: c.RemoteAddr().String()})
			s.check(sc)
			select {
			case s.conns <- sc:
			case <-s.done:
				sc.Close()
			}
		}()
	}
}

// sessionConn is an accepted connection with what the checks found. It
// gives its admission slot back when closed.
type sessionConn struct {
	net.Conn
	id      string
	release func()
	once    sync.Once

	ptrName   string // "" when reverse DNS found nothing
	confirmed bool   // the PTR name's A records contain the client
	identUser string
	listedIn  string // the first DNSBL zone that lists the client
}

func (c *sessionConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// check runs the pre-greeting checks in couriertcpd's order.
func (s *Server) check(c *sessionConn) {
	ctx := context.Background()
	raddr, _ := c.RemoteAddr().(*net.TCPAddr)
	if raddr == nil {
		return
	}
	ip := raddr.IP
	timed := func(check, name, qtype string, f func() (string, error)) {
		start := time.Now()
		result, err := f()
		e := events.Event{Time: start, Kind: events.Check, Conn: c.id, Host: ip.String(), Check: check, Name: name, QType: qtype, Result: result, Duration: time.Since(start)}
		if err != nil {
			e.Error = err.Error()
		}
		s.log.Add(e)
	}
	if s.cfg.ReverseDNS {
		timed("reverse", ip.String(), "PTR", func() (string, error) {
			names, err := s.res.PTR(ctx, ip)
			if len(names) > 0 {
				c.ptrName = names[0]
			}
			return strings.Join(names, ","), err
		})
		if c.ptrName != "" {
			timed("forward", c.ptrName, "A", func() (string, error) {
				ips, err := s.res.A(ctx, c.ptrName)
				var got []string
				for _, a := range ips {
					got = append(got, a.String())
					if a.Equal(ip) {
						c.confirmed = true
					}
				}
				return strings.Join(got, ","), err
			})
		}
	}
	for _, zone := range s.cfg.Blacklists {
		timed("dnsbl", zone, "A", func() (string, error) {
			listed, code, err := s.res.DNSBL(ctx, ip, zone)
			if listed && c.listedIn == "" {
				c.listedIn = zone
			}
			if !listed {
				return "not listed", err
			}
			return "listed " + code, err
		})
	}
	if s.cfg.Ident {
		laddr, _ := c.LocalAddr().(*net.TCPAddr)
		addr := net.JoinHostPort(ip.String(), strconv.Itoa(s.cfg.IdentPort))
		timed("ident", addr, "IDENT", func() (string, error) {
			rep, err := identd.Query(ctx, addr, raddr.Port, laddr.Port, s.cfg.IdentTimeout)
			if err != nil {
				return rep.Error, err
			}
			c.identUser = rep.UserID
			return rep.UserID, nil
		})
	}
}

// chanListener hands checked connections to go-smtp's Serve.
type chanListener struct{ s *Server }

func (l chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.s.conns:
		return c, nil
	case <-l.s.done:
		return nil, net.ErrClosed
	}
}
func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return l.s.ln.Addr() }

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	sc, ok := c.Conn().(*sessionConn)
	if !ok {
		return nil, errors.New("receiver: connection did not pass admission")
	}
	return &session{s: s, conn: sc, helo: c.Hostname}, nil
}

type session struct {
	s     *Server
	conn  *sessionConn
	helo  func() string
	from  string
	rcpts []string
	count int
}

var (
	errRelay = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied."}
	errUser  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown."}
)

func (ss *session) reject(err *smtp.SMTPError) error {
	ss.s.log.Add(events.Event{Kind: events.Rejected, Conn: ss.conn.id, Code: err.Code, Error: err.Message})
	return err
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from, ss.rcpts = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.conn.listedIn != "" {
		return ss.reject(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Blocked by " + ss.conn.listedIn + "."})
	}
	at := strings.LastIndexByte(to, '@')
	if at < 0 {
		return ss.reject(errUser)
	}
	local, domain := strings.ToLower(to[:at]), to[at+1:]
	isLocal := false
	for _, d := range ss.s.cfg.LocalDomains {
		isLocal = isLocal || scenario.DomainMatches(d, domain)
	}
	if !isLocal {
		return ss.reject(errRelay)
	}
	acct := strings.ToLower(ss.s.cfg.Account)
	if local != acct && !strings.HasPrefix(local, acct+"-") {
		return ss.reject(errUser)
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msgID := messageID(body)
	for _, rcpt := range ss.rcpts {
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "Delivered-To: %s\r\n", rcpt)
		ss.received(&buf)
		buf.Write(body)
		path, err := ss.s.dir.Deliver(buf.Bytes(), ss.s.cfg.Hostname)
		if err != nil {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local delivery failed, try again later."}
		}
		ss.s.log.Add(events.Event{Kind: events.Delivered, Conn: ss.conn.id, MessageID: msgID, From: ss.from, Rcpts: []string{rcpt}, Path: path})
	}
	ss.count++
	return nil
}

// received writes Courier's Received: header: PTR name (or "unknown"),
// HELO name, address, IDENT user.
func (ss *session) received(buf *bytes.Buffer) {
	c := ss.conn
	name := c.ptrName
	if name == "" || !c.confirmed {
		name = "unknown"
	}
	ip := c.RemoteAddr().(*net.TCPAddr).IP.String()
	fmt.Fprintf(buf, "Received: from %s (%s [%s])\r\n", ss.helo(), name, ip)
	if c.identUser != "" {
		fmt.Fprintf(buf, "  (ident=%s)\r\n", c.identUser)
	}
	fmt.Fprintf(buf, "  by %s with ESMTP; %s\r\n", ss.s.cfg.Hostname, time.Now().Format(time.RFC1123Z))
}

func (ss *session) Reset() { ss.from, ss.rcpts = "", nil }

func (ss *session) Logout() error {
	ss.s.log.Add(events.Event{Kind: events.ConnClose, Conn: ss.conn.id, Count: ss.count, Reason: "closed"})
	return nil
}

// messageID returns the Message-ID header of a message ("" if none).
func messageID(msg []byte) string {
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	return strings.TrimSpace(h.Get("Message-Id"))
}
