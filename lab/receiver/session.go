package receiver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/scenario"
)

// SMTP is courieresmtpd's part: the session's limits.
type SMTP struct {
	MaxMessage int64 `json:"max_message_bytes"`
}

// Delivery says what is local and where it goes.
type Delivery struct {
	LocalDomains []string `json:"local_domains"`
	Account      string   `json:"account"`
	Maildir      string   `json:"maildir"`
	// NoFsync skips the fsyncs of Maildir delivery: for measuring what
	// they cost, never for a faithful run.
	NoFsync bool `json:"no_fsync,omitempty"`
}

// newSMTPServer is courieresmtpd: go-smtp with the session's limits.
func (s *Server) newSMTPServer() *smtp.Server {
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = s.cfg.Hostname
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = 5 * time.Minute
	srv.MaxMessageBytes = s.cfg.MaxMessage
	srv.MaxRecipients = 100
	srv.EnableSMTPUTF8 = false
	return srv
}

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
	if ss.conn.block != "" {
		return ss.reject(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: ss.conn.block})
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
		path, err := ss.s.dir.Deliver(buf.Bytes(), ss.s.cfg.Hostname, !ss.s.cfg.NoFsync)
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
