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
	"os"
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

// admit is couriertcpd: take a slot, accept, check, hand to SMTP.
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
		sc := &sessionConn{Conn: c, id: "r" + strconv.FormatInt(s.ids.Add(1), 10), s: s}
		s.mu.Lock()
		s.live[sc] = struct{}{}
		s.mu.Unlock()
		s.log.Add(events.Event{Kind: events.ConnOpen, Conn: sc.id, Host: c.RemoteAddr().String()})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.check(sc)
			select {
			case s.conns <- sc:
			case <-s.done:
				sc.Close()
			}
		}()
	}
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

	ptrName   string // "" when reverse DNS found nothing
	confirmed bool   // the PTR name's A records contain the client
	identUser string
	listedIn  string // the first DNSBL zone that lists the client
}

// Close may be called more than once and from several goroutines (go-smtp
// closes on QUIT, on server Close and when its handler ends); the first
// call logs and releases.
func (c *sessionConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.log.Add(events.Event{Kind: events.ConnClose, Conn: c.id, Count: int(c.count.Load()), Reason: "closed"})
		c.s.mu.Lock()
		delete(c.s.live, c)
		c.s.mu.Unlock()
		<-c.s.slots
	})
	return err
}

// check runs the pre-greeting checks in couriertcpd's order.
func (s *Server) check(c *sessionConn) {
	ctx := s.ctx
	raddr, _ := c.RemoteAddr().(*net.TCPAddr)
	if raddr == nil {
		return
	}
	ip := raddr.IP
	timed := func(check, name, qtype string, f func(ctx context.Context) (string, error)) {
		if ctx.Err() != nil {
			return // closing: the connection is dropped anyway
		}
		start := time.Now()
		tr := &resolver.Trace{}
		result, err := f(resolver.WithTrace(ctx, tr))
		if err != nil && result == "" {
			result = failure(err)
		}
		e := events.Event{Time: start, Kind: events.Check, Conn: c.id, Host: ip.String(), Check: check, Name: name, QType: qtype, Result: result, Duration: time.Since(start), Via: tr.Keys()}
		if err != nil {
			e.Error = err.Error()
		}
		s.log.Add(e)
	}
	if s.cfg.ReverseDNS {
		timed("reverse", reverseName(ip, "in-addr.arpa"), "PTR", func(ctx context.Context) (string, error) {
			names, err := s.res.PTR(ctx, ip)
			if len(names) > 0 {
				c.ptrName = names[0]
			}
			return strings.Join(names, ","), err
		})
		if c.ptrName != "" {
			timed("forward", c.ptrName, "A", func(ctx context.Context) (string, error) {
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
		timed("dnsbl", reverseName(ip, zone), "A", func(ctx context.Context) (string, error) {
			listed, code, err := s.res.DNSBL(ctx, ip, zone)
			if err != nil {
				return "", err // a failed lookup is not "not listed"
			}
			if listed && c.listedIn == "" {
				c.listedIn = zone
			}
			if !listed {
				return "not listed", nil
			}
			return "listed " + code, nil
		})
	}
	if s.cfg.Ident {
		laddr, _ := c.LocalAddr().(*net.TCPAddr)
		addr := net.JoinHostPort(ip.String(), strconv.Itoa(s.cfg.IdentPort))
		timed("ident", addr, "IDENT", func(ctx context.Context) (string, error) {
			rep, err := identd.Query(ctx, addr, raddr.Port, laddr.Port, s.cfg.IdentTimeout)
			if err != nil {
				return rep.Error, err
			}
			c.identUser = rep.UserID
			return rep.UserID, nil
		})
	}
}

// failure names a failed check for the log: the resolver's result
// ("NXDOMAIN", "TIMEOUT", ...) or, for ident, "TIMEOUT" or "ERROR".
func failure(err error) string {
	var le *resolver.LookupError
	if errors.As(err, &le) {
		return le.Result()
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "CANCELED"
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded):
		return "TIMEOUT"
	}
	return "ERROR"
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
	inTx  bool // MAIL accepted, transaction not yet ended
	from  string
	rcpts []string
}

var (
	errRelay  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied."}
	errUser   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown."}
	errSyntax = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax."}
	errNested = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Nested MAIL command."}
	errNoRcpt = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients."}
)

func (ss *session) reject(err *smtp.SMTPError) error {
	ss.s.log.Add(events.Event{Kind: events.Rejected, Conn: ss.conn.id, Code: err.Code, Error: err.Message})
	return err
}

// Mail starts a transaction. go-smtp lets a second MAIL through without
// RSET while keeping its own recipient list, so resetting ours here would
// make the next DATA answer 250 and deliver nothing: refuse it instead, as
// RFC 5321 (3.3) allows.
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.inTx {
		return ss.reject(errNested)
	}
	ss.inTx, ss.from, ss.rcpts = true, from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.conn.listedIn != "" {
		return ss.reject(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Blocked by " + ss.conn.listedIn + "."})
	}
	local, domain, ok := splitAddress(to)
	if !ok {
		return ss.reject(errSyntax)
	}
	local = strings.ToLower(local)
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
	for _, r := range ss.rcpts {
		if strings.EqualFold(r, to) {
			return nil // one copy per mailbox, however often it is named
		}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

// splitAddress splits a recipient as go-smtp passes it (a quoted local part
// already unquoted) into local part and domain. It refuses what cannot be
// read one way only or written into a header as is: no '@' or more than
// one, control characters, spaces or non-ASCII (SMTPUTF8 is off), and a
// domain that is not a host name or an address literal.
func splitAddress(to string) (local, domain string, ok bool) {
	at := strings.IndexByte(to, '@')
	if at <= 0 || at != strings.LastIndexByte(to, '@') {
		return "", "", false
	}
	for i := 0; i < len(to); i++ {
		if to[i] <= ' ' || to[i] >= 0x7f {
			return "", "", false
		}
	}
	local, domain = to[:at], to[at+1:]
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		return local, domain, true // never local, but not a syntax error
	}
	return local, domain, hostName(domain)
}

// hostName reports whether d is an RFC 1123 host name (one trailing dot
// allowed).
func hostName(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Data writes the message once per recipient. It is all or nothing: if one
// copy cannot be written the copies already in new/ are taken back and the
// client told to try again, so a retry does not duplicate them; Delivered is
// logged only once every copy is in new/.
func (ss *session) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(ss.rcpts) == 0 {
		return errNoRcpt
	}
	msgID := messageID(body)
	paths := make([]string, 0, len(ss.rcpts))
	for _, rcpt := range ss.rcpts {
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "Delivered-To: %s\r\n", rcpt)
		ss.received(&buf)
		buf.Write(body)
		path, err := ss.s.dir.Deliver(buf.Bytes(), ss.s.cfg.Hostname)
		if err != nil {
			for _, p := range paths {
				os.Remove(p)
			}
			return ss.reject(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local delivery failed, try again later."})
		}
		paths = append(paths, path)
	}
	for i, rcpt := range ss.rcpts {
		ss.s.log.Add(events.Event{Kind: events.Delivered, Conn: ss.conn.id, MessageID: msgID, From: ss.from, Rcpts: []string{rcpt}, Path: paths[i]})
	}
	ss.conn.count.Add(1)
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
	fmt.Fprintf(buf, "Received: from %s (%s [%s])\r\n", headerSafe(ss.helo()), name, ip)
	if c.identUser != "" {
		fmt.Fprintf(buf, "  (ident=%s)\r\n", c.identUser)
	}
	fmt.Fprintf(buf, "  by %s with ESMTP; %s\r\n", ss.s.cfg.Hostname, time.Now().Format(time.RFC1123Z))
}

// headerSafe keeps a client-given word (the HELO name) from breaking the
// header it is written into: anything but printable ASCII becomes '?'.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}

func (ss *session) Reset() { ss.inTx, ss.from, ss.rcpts = false, "", nil }

// Logout logs nothing: go-smtp calls it only for sessions that got as far as
// HELO, so ConnClose is logged by sessionConn.Close, which every connection
// reaches.
func (ss *session) Logout() error { return nil }

// messageID returns the Message-ID header of a message ("" if none).
func messageID(msg []byte) string {
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	return strings.TrimSpace(h.Get("Message-Id"))
}

// reverseName is the name a reverse or DNSBL lookup of ip asks for under
// zone ("4.0.18.172.bl1.example.net"): the check events name the query as
// the DNS server logs it, so the two can be matched.
func reverseName(ip net.IP, zone string) string {
	v4 := ip.To4()
	if v4 == nil {
		return ip.String() + "." + zone
	}
	return fmt.Sprintf("%d.%d.%d.%d.%s", v4[3], v4[2], v4[1], v4[0], strings.TrimSuffix(zone, "."))
}
