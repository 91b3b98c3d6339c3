package receiver

// courieresmtpd's part of Courier R, on github.com/emersion/go-smtp: the
// Backend and the Session, from EHLO to the answer to the end of DATA.
// Where Courier decided a behaviour, the comment names the file it was read
// in (all in github.com/svarshavchik/courier):
//
//   - courier/courier/module.esmtp/courieresmtpd.c: the session, its reply
//     texts, the timeouts it reads.
//   - courier/courier/submit.C: how a recipient's address is taken
//     (udomainlower, ulocallower, stripdots) and the BLOCK check of each
//     RCPT (checkrcpt).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab/domain"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
)

// newSMTPServer is courieresmtpd: go-smtp with the session's limits,
// delivering to loc (New checked the configuration first).
func (s *Server) newSMTPServer(loc *local) *smtp.Server {
	s.cfg.SMTP = s.cfg.SMTP.withDefaults()
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return s.newSession(c, loc)
	}))
	srv.Domain = s.cfg.Hostname
	// go-smtp sets ReadTimeout before each command line and WriteTimeout
	// before each reply; inside DATA the session moves the read deadline
	// itself (dataReader), per read, as Courier's getmoredata does.
	srv.ReadTimeout = s.cfg.CommandTimeout.D()
	srv.WriteTimeout = s.cfg.DataTimeout.D()
	srv.MaxMessageBytes = s.cfg.MaxMessage
	srv.MaxRecipients = 100
	// No line limit in go-smtp: the front (front.go) bounds command lines
	// as courieresmtpd does, and a message line may be as long as the
	// message, as courieresmtpd's data() and submit take it (RFC 5321
	// 4.5.3.1 asks for no limit where one can be avoided); MaxMessageBytes
	// bounds the message.
	srv.MaxLineLength = 0
	srv.EnableSMTPUTF8 = false
	return srv
}

func (s *Server) newSession(c *smtp.Conn, loc *local) (smtp.Session, error) {
	f, ok := c.Conn().(*front)
	if !ok {
		return nil, errors.New("receiver: connection did not pass admission")
	}
	return &session{s: s, conn: f.sessionConn, helo: c.Hostname, loc: loc}, nil
}

type session struct {
	s     *Server
	conn  *sessionConn
	helo  func() string
	loc   *local
	inTx  bool // MAIL accepted, transaction not yet ended
	from  string
	rcpts []rcpt

	// Buffers kept from one message to the next, so that a message does
	// not allocate them again (the session is sequential): the message
	// as read, the Received: header, and each copy as written.
	body, file []byte
	head       bytes.Buffer
	date       dateCache // the Received: header's date
}

// keepBuffer is the largest buffer a session keeps for its next message:
// one large message does not pin its size for the rest of the session.
const keepBuffer = 64 << 10

// rcpt is one accepted recipient: its address as Courier writes it in
// Delivered-To (domain and, being local, local part in lower case, no
// trailing dot) and its Maildirs.
type rcpt struct {
	addr string
	dirs []maildir.Dir
}

var (
	errRelay  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied."}
	errUser   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown."}
	errSyntax = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax."}
	errNested = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Nested MAIL command."}
	errNoRcpt = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients."}
	// errDataTimeout: a client stalled inside DATA. Courier's getmoredata
	// (courieresmtpd.c) cancels the submission and exits; the lab also says
	// why before closing.
	errDataTimeout = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout reading message data, closing connection."}
	errDelivery    = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local delivery failed, try again later."}
)

func (ss *session) reject(err *smtp.SMTPError) error {
	ss.s.log.Add(events.Event{Kind: events.Rejected, Conn: ss.conn.id, Code: err.Code, Error: err.Message})
	return err
}

// command logs one events.Command for a command the session answered:
// the reply is err's (250 for nil, as go-smtp answers). The events in
// before (DATA's Delivered copies) are logged first, with it in one
// events.Log.AddAll.
func (ss *session) command(name string, start time.Time, err error, before ...events.Event) error {
	e := events.Event{Time: start, Kind: events.Command, Conn: ss.conn.id, Name: name, Code: 250, Duration: time.Since(start)}
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			e.Code = se.Code
		} else {
			e.Code = 554 // go-smtp's answer to a plain error
		}
		e.Error = err.Error()
	}
	if len(before) == 0 {
		ss.s.log.Add(e)
		return err
	}
	ss.s.log.AddAll(append(before, e)...)
	return err
}

// Mail starts a transaction. go-smtp lets a second MAIL through without
// RSET while keeping its own recipient list, so resetting ours here would
// make the next DATA answer 250 and deliver nothing: refuse it instead, as
// RFC 5321 (3.3) allows.
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	start := time.Now()
	return ss.command("MAIL", start, ss.mail(from))
}

func (ss *session) mail(from string) error {
	if ss.inTx {
		return ss.reject(errNested)
	}
	if ss.s.cfg.BOFHCheckDNS {
		if err := ss.checkDNS(from); err != nil {
			return ss.reject(err)
		}
	}
	ss.inTx, ss.from, ss.rcpts = true, from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	start := time.Now()
	return ss.command("RCPT", start, ss.rcpt(to))
}

func (ss *session) rcpt(to string) error {
	if ss.conn.block != "" {
		// submit's checkrcpt (courier/courier/submit.C) answers every
		// recipient with the BLOCK text.
		return ss.reject(blockReply(ss.conn.block))
	}
	var local, host string
	if strings.EqualFold(to, postmaster) {
		// RCPT TO:<Postmaster>, which RFC 5321 (4.1.1.3, 4.5.1) makes
		// every server take without a domain: Courier qualifies an
		// address without one with its default domain, which is "me"
		// unless set (courier/courier/libs/cdefaultdomain.c).
		local, host = postmaster, ss.s.cfg.Hostname
	} else {
		var ok bool
		if local, host, ok = splitAddress(to); !ok {
			return ss.reject(errSyntax)
		}
	}
	// Courier lower-cases the domain, and the local part of a local
	// address (submit.C, udomainlower and ulocallower), and strips
	// trailing dots (stripdots).
	local = strings.ToLower(local)
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	isLocal := strings.EqualFold(to, postmaster)
	for _, d := range ss.s.cfg.LocalDomains {
		isLocal = isLocal || domain.Matches(d, host)
	}
	if !isLocal {
		// RFC 5321 4.5.1 asks for postmaster at the domains the server
		// serves, not at every domain: elsewhere it is relaying.
		return ss.reject(errRelay)
	}
	ext, known := ss.accountExtension(local)
	if !known {
		return ss.reject(errUser)
	}
	dirs, _, ok := ss.loc.lookup(ext)
	if !ok {
		return ss.reject(errUser)
	}
	addr := local + "@" + host
	if host == "" {
		addr = local // a bare <postmaster> and no hostname configured
	}
	for _, r := range ss.rcpts {
		if r.addr == addr {
			return nil // one copy per mailbox, however often it is named
		}
	}
	ss.rcpts = append(ss.rcpts, rcpt{addr: addr, dirs: dirs})
	return nil
}

// postmaster is the mailbox RFC 5321 4.5.1 makes every server accept, in
// any case, at each of its domains and alone.
const postmaster = "postmaster"

// accountExtension reads a local part (in lower case) as the account's:
// "" for the account itself, "foo-7" for account-foo-7. Postmaster is the
// account itself: Courier delivers postmaster's mail where the aliases
// file's "postmaster:" line sends it, which courier/courier/aliases.config
// asks the administrator to point at a non-root account; the model's one
// account is that account, so postmaster's mail goes where mail for the
// bare account goes (its .courier rule, else Maildir), and each copy's
// Delivered-To names postmaster at the domain it was sent to.
func (ss *session) accountExtension(local string) (ext string, ok bool) {
	if local == postmaster {
		return "", true
	}
	acct := strings.ToLower(ss.s.cfg.Account)
	ext, ok = strings.CutPrefix(local, acct)
	if ok && ext != "" {
		ext, ok = strings.CutPrefix(ext, "-")
		ok = ok && ext != ""
	}
	return ext, ok
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

// dataReader moves the connection's read deadline DataTimeout ahead of
// each read, as Courier's getmoredata waits esmtptimeoutdata for each
// read (courieresmtpd.c): a slow but moving client is never cut off, a
// stalled one is.
type dataReader struct {
	r       io.Reader
	conn    net.Conn
	timeout time.Duration
}

func (d dataReader) Read(p []byte) (int, error) {
	d.conn.SetReadDeadline(time.Now().Add(d.timeout))
	return d.r.Read(p)
}

// Data takes the message, runs the filter hook, and writes one copy per
// recipient and Maildir. It is all or nothing: if one copy cannot be
// written the copies already in new/ are taken back and the client told to
// try again, so a retry does not duplicate them; Delivered is logged only
// once every copy is in new/.
func (ss *session) Data(r io.Reader) error {
	start := time.Now()
	delivered, err := ss.data(r)
	return ss.command("DATA", start, err, delivered...)
}

// data reads, filters and delivers the message, and returns the
// Delivered event of each copy for Data to log with its Command.
func (ss *session) data(r io.Reader) ([]events.Event, error) {
	body, err := readAll(ss.body[:0], dataReader{r: r, conn: ss.conn, timeout: ss.s.cfg.DataTimeout.D()})
	if cap(body) <= keepBuffer {
		ss.body = body[:0] // nothing holds body after data returns
	}
	if err != nil {
		var ne net.Error
		var se *smtp.SMTPError
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			// go-smtp would read on for the rest of the message and wait
			// for the next command: say why and close instead. go-smtp is
			// blocked in this call, so nothing else writes.
			ss.conn.SetWriteDeadline(time.Now().Add(ss.s.cfg.DataTimeout.D()))
			fmt.Fprintf(ss.conn, "%d %d.%d.%d %s\r\n", errDataTimeout.Code, errDataTimeout.EnhancedCode[0], errDataTimeout.EnhancedCode[1], errDataTimeout.EnhancedCode[2], errDataTimeout.Message)
			ss.conn.Close()
			return nil, ss.reject(errDataTimeout)
		case errors.As(err, &se):
			return nil, ss.reject(se) // over the size limit: 552
		}
		return nil, err // the client went away: there is no one to answer
	}
	if len(ss.rcpts) == 0 {
		return nil, errNoRcpt
	}
	msgID := messageID(body)
	addrs := make([]string, len(ss.rcpts))
	for i, rc := range ss.rcpts {
		addrs[i] = rc.addr
	}
	ss.s.log.Add(events.Event{Kind: events.Received, Conn: ss.conn.id, MessageID: msgID, From: ss.from, Rcpts: addrs, SizeIn: len(body)})

	head := &ss.head
	head.Reset()
	ss.received(head)
	if err := ss.filter(head.Bytes(), body); err != nil {
		return nil, ss.reject(err)
	}

	delivered, derr := ss.deliver(head.Bytes(), body, msgID)
	if derr != nil {
		return nil, ss.reject(derr)
	}
	ss.conn.count.Add(1)
	return delivered, nil
}

// readAll is io.ReadAll into b, so that a session's buffer serves every
// message it reads.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // room to grow, as io.ReadAll makes it
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// remoteIP is the client's address as text, as couriertcpd sets
// TCPREMOTEIP ("" for a connection that is not TCP).
func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

func (ss *session) Reset() { ss.inTx, ss.from, ss.rcpts = false, "", nil }

// Logout logs nothing: go-smtp calls it only for sessions that got as far as
// HELO, so ConnClose is logged by sessionConn.Close, which every connection
// reaches.
func (ss *session) Logout() error { return nil }

// messageID returns the Message-ID header of a message ("" if none), as
// net/textproto reads the header. Reading the whole header into a map
// for one field cost about 4% of the receiver's time per message, so a
// plain header (lines "Name: value", names of letters, digits and '-',
// values of printable ASCII) is scanned for it; anything else, folded
// lines included, is left to textproto (messageIDTextproto).
func messageID(msg []byte) string {
	rest := msg
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return messageIDTextproto(msg) // a line with no end
		}
		line := bytes.TrimSuffix(rest[:i], []byte("\r"))
		rest = rest[i+1:]
		if len(line) == 0 {
			return "" // the end of the header
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !plainName(name) || !plainValue(value) {
			return messageIDTextproto(msg)
		}
		if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			return messageIDTextproto(msg) // a folded line
		}
		if bytes.EqualFold(name, []byte("Message-ID")) {
			return strings.TrimSpace(string(value))
		}
	}
	return ""
}

// plainName: a header name of letters, digits and '-' only.
func plainName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// plainValue: printable ASCII, spaces and tabs only.
func plainValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// messageIDTextproto is messageID by net/textproto's ReadMIMEHeader.
func messageIDTextproto(msg []byte) string {
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	return strings.TrimSpace(h.Get("Message-Id"))
}
