package receiver

// courieresmtpd's part of Courier R, on github.com/emersion/go-smtp. Where
// Courier decided a behaviour, the comment names the file it was read in
// (all in github.com/svarshavchik/courier unless said otherwise):
//
//   - courier/courier/module.esmtp/courieresmtpd.c: the session, its reply
//     texts, the timeouts it reads, the "dns; HELO (HOST [IP])" and
//     "IDENT: user" it hands to submit.
//   - courier/courier/module.esmtp/esmtpconfig.c: esmtptimeout (600 s) and
//     esmtptimeoutdata (300 s) defaults.
//   - courier/courier/submit.C: the Received: header, BOFHCHECKDNS
//     (checkdns), the BLOCK text refusing every RCPT.
//   - courier/courier/module.local/dotcourier.c and doc/dot-courier.sgml:
//     address extensions and the .courier-foo-default search.
//   - courier/courier/module.local/deliver.c: Delivered-To: and
//     Return-Path: written on top of each Maildir copy; dot-courier(5) exit
//     codes of a program.

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
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/resolver"
	"github.com/smtplab/smtplab/lab/scenario"
)

// Courier's defaults (courier/courier/module.esmtp/esmtpconfig.c):
// esmtptimeout, the wait for each command line, is 10 minutes;
// esmtptimeoutdata, the wait for each read inside DATA and for each write
// (courieresmtpd.c sets iovwrite_timeout=data_timeout), is 5 minutes.
const (
	DefaultCommandTimeout = 10 * time.Minute
	DefaultDataTimeout    = 5 * time.Minute
)

// SMTP is courieresmtpd's part: the session's limits, checks and filter.
type SMTP struct {
	// MaxMessage is the SIZE limit in bytes (EHLO advertises it; a larger
	// SIZE= or message is refused with 552). New makes 0 10 MiB, Courier's
	// sizelimit default.
	MaxMessage int64 `json:"max_message_bytes"`
	// CommandTimeout is the wait for each command line (Courier's
	// esmtptimeout, default 10 min); at its end the server answers 421 and
	// closes.
	CommandTimeout time.Duration `json:"command_timeout_ns,omitempty"`
	// DataTimeout is the wait for each read inside DATA and for each reply
	// written (Courier's esmtptimeoutdata, default 5 min). A client stalling
	// inside DATA gets 421 and the connection closed; nothing is delivered.
	DataTimeout time.Duration `json:"data_timeout_ns,omitempty"`
	// BOFHCheckDNS: the MAIL FROM domain must resolve (MX, else A), as
	// Courier's BOFHCHECKDNS=1. Off in the seed (the 1999 run).
	BOFHCheckDNS bool `json:"bofh_check_dns,omitempty"`
	// Filter is the content filter every accepted message passes before
	// delivery ("filtering enabled").
	Filter Filter `json:"filter"`
}

// Filter modes.
const (
	// FilterHook: filtering enabled with no filter installed (the seed):
	// the message passes the hook and nothing else.
	FilterHook = ""
	// FilterCommand runs Filter.Command with the message on stdin.
	FilterCommand = "command"
	// FilterDelay holds every message Filter.Delay, a stand-in for a filter
	// of known cost.
	FilterDelay = "delay"
)

// Filter is the spam-filter hook run on each message after its data is in
// and before delivery, as Courier runs courierfilter's filters from submit
// before it answers the end of DATA.
//
// A command's verdict: if the first line of its standard output is an
// SMTP reply ("550 ...", "451 ...") that reply is the answer, as a
// courierfilter(8) filter answers; otherwise its exit code decides with
// dot-courier(5)'s meaning (courier/courier/doc/dot-courier.sgml): 0 and
// 99 accept; 64, 65, 67, 68, 69, 70, 76, 77, 78, 100 and 112 are permanent
// (550 5.7.1); any other exit, a command that cannot start or one still
// running after Timeout is temporary (451 4.7.1), so the sender retries.
type Filter struct {
	Mode    string        `json:"mode,omitempty"`    // FilterHook, FilterCommand or FilterDelay
	Command []string      `json:"command,omitempty"` // argv, for FilterCommand
	Delay   time.Duration `json:"delay_ns,omitempty"`
	// Timeout bounds a command (default: DataTimeout).
	Timeout time.Duration `json:"timeout_ns,omitempty"`
}

// Delivery says what is local and where it goes.
type Delivery struct {
	// LocalDomains are scenario.DomainMatches patterns (".example.com" is
	// every subdomain, "example.com" the domain itself). A recipient in any
	// other domain is refused 550 5.7.1: never an open relay.
	LocalDomains []string `json:"local_domains"`
	// Account is the one local account; its address extensions are
	// Account-ext (courier/courier/module.local/dotcourier.c).
	Account string `json:"account"`
	// Maildir is the account's default mailbox: where a message goes when
	// its dot-courier file lists no Maildir (Courier's defaultdelivery).
	Maildir string `json:"maildir"`
	// Rules are the account's dot-courier files. Without rules the account
	// has a catch-all .courier-default delivering to Maildir, so every
	// Account-anything address is accepted (the seed's single Maildir).
	Rules []Rule `json:"rules,omitempty"`
	// NoFsync skips the fsyncs of Maildir delivery: for measuring what
	// they cost, never for a faithful run.
	NoFsync bool `json:"no_fsync,omitempty"`
}

// Rule is one dot-courier file of the account. File is its name after
// ".courier": "" for .courier (the bare account), "-foo-7", "-foo-default",
// "-default". An address Account-ext looks for .courier-EXT, then, taking
// off one "-part" at a time from the end, .courier-PREFIX-default, and
// last .courier-default; the first that exists decides, and with none the
// address does not exist (550 5.1.1). So recipient-foo-7 tries
// .courier-foo-7, .courier-foo-default, .courier-default, and
// .courier-foo-default does not cover recipient-foo itself. Periods in the
// extension are colons in the file name, and names are compared in lower
// case. The bare account always exists: without a "" rule it goes to
// Maildir (a missing $HOME/.courier is a zero-length one).
type Rule struct {
	File string `json:"file"`
	// Maildirs each get one copy. Empty: the default delivery, Maildir (a
	// zero-length file).
	Maildirs []string `json:"maildirs,omitempty"`
}

// local is Delivery made ready: every Maildir created, rules by name.
type local struct {
	def   maildir.Dir
	rules map[string][]maildir.Dir // ".courier..." -> where
}

// prepare checks d and creates every Maildir its rules name.
func (d Delivery) prepare() (*local, error) {
	l := &local{def: maildir.Dir(d.Maildir), rules: map[string][]maildir.Dir{}}
	rules := d.Rules
	if len(rules) == 0 {
		rules = []Rule{{File: "-default"}}
	}
	for _, r := range rules {
		name := ".courier" + strings.ToLower(r.File)
		if r.File != "" && !strings.HasPrefix(r.File, "-") || strings.ContainsAny(r.File, "/.") {
			return nil, fmt.Errorf("receiver: rule %q: want \"\" or \"-ext\" (periods written as colons)", r.File)
		}
		if _, dup := l.rules[name]; dup {
			return nil, fmt.Errorf("receiver: rule %q given twice", r.File)
		}
		dirs := []maildir.Dir{l.def}
		if len(r.Maildirs) > 0 {
			dirs = nil
			for _, m := range r.Maildirs {
				md := maildir.Dir(m)
				if err := md.Create(); err != nil {
					return nil, fmt.Errorf("receiver: rule %q: %w", r.File, err)
				}
				dirs = append(dirs, md)
			}
		}
		l.rules[name] = dirs
	}
	return l, nil
}

// lookup finds where mail for extension ext ("" for the bare account)
// goes, as local_dotcourier does (courier/courier/module.local/
// dotcourier.c): .courier-EXT, then each .courier-PREFIX-default, then
// .courier-default.
func (l *local) lookup(ext string) (dirs []maildir.Dir, file string, ok bool) {
	if ext == "" {
		if d, ok := l.rules[".courier"]; ok {
			return d, ".courier", true
		}
		return []maildir.Dir{l.def}, "", true
	}
	name := ".courier-" + strings.ReplaceAll(strings.ToLower(ext), ".", ":")
	for first := true; ; first = false {
		if d, ok := l.rules[name]; ok {
			return d, name, true
		}
		name = name[:strings.LastIndexByte(name, '-')]
		if !first {
			i := strings.LastIndexByte(name, '-')
			if i < 0 {
				return nil, "", false
			}
			name = name[:i]
		}
		name += "-default"
	}
}

// withDefaults fills the zero timeouts with Courier's.
func (c SMTP) withDefaults() SMTP {
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = DefaultDataTimeout
	}
	if c.Filter.Timeout <= 0 {
		c.Filter.Timeout = c.DataTimeout
	}
	return c
}

func (f Filter) check() error {
	switch f.Mode {
	case FilterHook, FilterDelay:
	case FilterCommand:
		if len(f.Command) == 0 {
			return errors.New("receiver: filter mode \"command\" without a command")
		}
	default:
		return fmt.Errorf("receiver: unknown filter mode %q", f.Mode)
	}
	return nil
}

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
	srv.ReadTimeout = s.cfg.CommandTimeout
	srv.WriteTimeout = s.cfg.DataTimeout
	srv.MaxMessageBytes = s.cfg.MaxMessage
	srv.MaxRecipients = 100
	srv.EnableSMTPUTF8 = false
	return srv
}

func (s *Server) newSession(c *smtp.Conn, loc *local) (smtp.Session, error) {
	sc, ok := c.Conn().(*sessionConn)
	if !ok {
		return nil, errors.New("receiver: connection did not pass admission")
	}
	return &session{s: s, conn: sc, helo: c.Hostname, loc: loc}, nil
}

type session struct {
	s     *Server
	conn  *sessionConn
	helo  func() string
	loc   *local
	inTx  bool // MAIL accepted, transaction not yet ended
	from  string
	rcpts []rcpt
}

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
// the reply is err's (250 for nil, as go-smtp answers).
func (ss *session) command(name string, start time.Time, err error) error {
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
	ss.s.log.Add(e)
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

// checkDNS is submit's checkdns (courier/courier/submit.C) with
// BOFHCHECKDNS=1: the sender's domain must have MX records, or without
// them an address (RFC1035_MX_AFALLBACK); an MX naming an IP address
// violates RFC 1035 3.3.9. The null sender and a connection already
// blocked (refused at RCPT anyway) are not checked. The replies are
// Courier's, codes included (517 and 417 are Courier's own 5xx and 4xx).
// Each lookup is logged as an events.Check "mailfrom". (Courier also looks
// up each exchanger's addresses; the lab does not.)
func (ss *session) checkDNS(from string) *smtp.SMTPError {
	at := strings.LastIndexByte(from, '@')
	if at < 0 || ss.conn.block != "" {
		return nil
	}
	domain := strings.TrimSuffix(from[at+1:], ".")
	hard := func(why string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 517, EnhancedCode: smtp.EnhancedCode{5, 1, 8},
			Message: why + "\nInvalid domain, see <URL:https://www.ietf.org/rfc/rfc1035.txt>"}
	}
	soft := &smtp.SMTPError{Code: 417, EnhancedCode: smtp.EnhancedCode{4, 4, 3},
		Message: "DNS lookup failure: " + domain + ".  Try again later."}
	if strings.HasPrefix(domain, "[") || !hostName(domain) {
		return hard("Domain does not exist: " + domain + ".")
	}
	lookup := func(qtype uint16, f func(ctx context.Context) (string, error)) (string, error) {
		start := time.Now()
		tr := &resolver.Trace{}
		result, err := f(resolver.WithTrace(ss.s.ctx, tr))
		e := events.Event{Time: start, Kind: events.Check, Conn: ss.conn.id, Check: "mailfrom", Name: strings.ToLower(domain),
			QType: dns.TypeToString[qtype], Result: result, Duration: time.Since(start), Via: tr.Keys()}
		if err != nil {
			e.Result, e.Error = resolver.Result(err), err.Error()
		}
		ss.s.log.Add(e)
		return result, err
	}
	var mxs []string
	_, err := lookup(dns.TypeMX, func(ctx context.Context) (string, error) {
		m, err := ss.s.res.Exchange(ctx, domain, dns.TypeMX)
		if err != nil {
			return "", err
		}
		if m.Rcode != dns.RcodeSuccess {
			return "", &resolver.LookupError{Name: domain, QType: dns.TypeMX, Rcode: m.Rcode, NotFound: m.Rcode == dns.RcodeNameError}
		}
		for _, rr := range m.Answer {
			if mx, ok := rr.(*dns.MX); ok {
				mxs = append(mxs, strings.TrimSuffix(mx.Mx, "."))
			}
		}
		if len(mxs) == 0 {
			return "NODATA", nil
		}
		return strings.Join(mxs, ","), nil
	})
	var le *resolver.LookupError
	switch {
	case errors.As(err, &le) && le.NotFound:
		return hard("Domain does not exist: " + domain + ".")
	case err != nil:
		return soft
	}
	for _, mx := range mxs {
		if net.ParseIP(strings.Trim(mx, "[]")) != nil {
			return hard("MX records for " + domain + " violate section 3.3.9 of RFC 1035.")
		}
	}
	if len(mxs) > 0 {
		return nil
	}
	_, err = lookup(dns.TypeA, func(ctx context.Context) (string, error) {
		ips, err := ss.s.res.A(ctx, domain)
		var got []string
		for _, ip := range ips {
			got = append(got, ip.String())
		}
		return strings.Join(got, ","), err
	})
	switch {
	case errors.As(err, &le) && le.NotFound:
		return hard("Domain does not exist: " + domain + ".")
	case err != nil:
		return soft
	}
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
	local, domain, ok := splitAddress(to)
	if !ok {
		return ss.reject(errSyntax)
	}
	// Courier lower-cases the domain, and the local part of a local
	// address (submit.C, udomainlower and ulocallower), and strips
	// trailing dots (stripdots).
	local = strings.ToLower(local)
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	isLocal := false
	for _, d := range ss.s.cfg.LocalDomains {
		isLocal = isLocal || scenario.DomainMatches(d, domain)
	}
	if !isLocal {
		return ss.reject(errRelay)
	}
	acct := strings.ToLower(ss.s.cfg.Account)
	ext, isAcct := strings.CutPrefix(local, acct)
	if isAcct && ext != "" {
		ext, isAcct = strings.CutPrefix(ext, "-")
		isAcct = isAcct && ext != ""
	}
	if !isAcct {
		return ss.reject(errUser)
	}
	dirs, _, ok := ss.loc.lookup(ext)
	if !ok {
		return ss.reject(errUser)
	}
	addr := local + "@" + domain
	for _, r := range ss.rcpts {
		if r.addr == addr {
			return nil // one copy per mailbox, however often it is named
		}
	}
	ss.rcpts = append(ss.rcpts, rcpt{addr: addr, dirs: dirs})
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
	return ss.command("DATA", start, ss.data(r))
}

var queueSeq atomic.Uint64

func (ss *session) data(r io.Reader) error {
	body, err := io.ReadAll(dataReader{r: r, conn: ss.conn, timeout: ss.s.cfg.DataTimeout})
	if err != nil {
		var ne net.Error
		var se *smtp.SMTPError
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			// go-smtp would read on for the rest of the message and wait
			// for the next command: say why and close instead. go-smtp is
			// blocked in this call, so nothing else writes.
			ss.conn.SetWriteDeadline(time.Now().Add(ss.s.cfg.DataTimeout))
			fmt.Fprintf(ss.conn, "%d %d.%d.%d %s\r\n", errDataTimeout.Code, errDataTimeout.EnhancedCode[0], errDataTimeout.EnhancedCode[1], errDataTimeout.EnhancedCode[2], errDataTimeout.Message)
			ss.conn.Close()
			return ss.reject(errDataTimeout)
		case errors.As(err, &se):
			return ss.reject(se) // over the size limit: 552
		}
		return err // the client went away: there is no one to answer
	}
	if len(ss.rcpts) == 0 {
		return errNoRcpt
	}
	msgID := messageID(body)
	addrs := make([]string, len(ss.rcpts))
	for i, rc := range ss.rcpts {
		addrs[i] = rc.addr
	}
	ss.s.log.Add(events.Event{Kind: events.Received, Conn: ss.conn.id, MessageID: msgID, From: ss.from, Rcpts: addrs, SizeIn: len(body)})

	var head bytes.Buffer
	ss.received(&head)
	if err := ss.filter(head.Bytes(), body); err != nil {
		return ss.reject(err)
	}

	type copyOf struct {
		rcpt string
		path string
		took time.Duration // write, fsync, rename: the disk's share
	}
	var done []copyOf
	for _, rc := range ss.rcpts {
		for _, dir := range rc.dirs {
			var buf bytes.Buffer
			buf.Grow(len(body) + head.Len() + 128)
			// courierlocal's deliver.c writes these two on top of each
			// copy (mkdelheaders).
			fmt.Fprintf(&buf, "Delivered-To: %s\r\nReturn-Path: <%s>\r\n", rc.addr, headerSafe(ss.from))
			buf.Write(head.Bytes())
			buf.Write(body)
			t0 := time.Now()
			path, err := dir.Deliver(buf.Bytes(), ss.s.cfg.Hostname, !ss.s.cfg.NoFsync)
			if err != nil {
				for _, d := range done {
					os.Remove(d.path)
				}
				return ss.reject(errDelivery)
			}
			done = append(done, copyOf{rc.addr, path, time.Since(t0)})
		}
	}
	for _, d := range done {
		ss.s.log.Add(events.Event{Kind: events.Delivered, Conn: ss.conn.id, MessageID: msgID, From: ss.from, Rcpts: []string{d.rcpt}, Path: d.path, Duration: d.took})
	}
	ss.conn.count.Add(1)
	return nil
}

// filter is the spam-filter hook. In the seed (FilterHook) it costs this
// call and nothing else.
func (ss *session) filter(head, body []byte) *smtp.SMTPError {
	f := ss.s.cfg.Filter
	switch f.Mode {
	case FilterDelay:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ss.s.ctx.Done():
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down."}
		}
	case FilterCommand:
		return ss.runFilter(f, head, body)
	}
	return nil
}

// permanentExit are the exit codes dot-courier(5) reads as a permanent
// failure of a delivery program (courier/courier/doc/dot-courier.sgml).
var permanentExit = map[int]bool{64: true, 65: true, 67: true, 68: true, 69: true, 70: true, 76: true, 77: true, 78: true, 100: true, 112: true}

func (ss *session) runFilter(f Filter, head, body []byte) *smtp.SMTPError {
	ctx, cancel := context.WithTimeout(ss.s.ctx, f.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Command[0], f.Command[1:]...)
	cmd.Stdin = io.MultiReader(bytes.NewReader(head), bytes.NewReader(body))
	cmd.Env = append(os.Environ(), "SENDER="+ss.from, "TCPREMOTEIP="+remoteIP(ss.conn))
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	if reply, ok := smtpReply(out.String()); ok && (err == nil || ctx.Err() == nil) {
		if reply.Code/100 == 2 {
			return nil
		}
		return reply
	}
	temp := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Message filter failed, try again later."}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return temp
	case errors.As(err, &ee) && ee.ExitCode() == 99:
		return nil
	case errors.As(err, &ee) && permanentExit[ee.ExitCode()]:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected by filter."}
	}
	return temp
}

// smtpReply reads the first line of a filter's output as an SMTP reply
// ("550 5.7.1 Spam", "451 later"): a 2xx, 4xx or 5xx code and text.
func smtpReply(out string) (*smtp.SMTPError, bool) {
	line, _, _ := strings.Cut(out, "\n")
	line = strings.TrimRight(line, "\r")
	if len(line) < 4 || line[3] != ' ' || line[0] < '2' || line[0] > '5' || line[0] == '3' ||
		line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' {
		return nil, false
	}
	code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	text := strings.Map(func(r rune) rune {
		if r < ' ' || r >= 0x7f {
			return '?'
		}
		return r
	}, strings.TrimSpace(line[4:]))
	ec := smtp.EnhancedCode{code / 100, 0, 0}
	var a, b, c int
	if n, _ := fmt.Sscanf(text, "%d.%d.%d ", &a, &b, &c); n == 3 && a == code/100 {
		ec = smtp.EnhancedCode{a, b, c}
		text = strings.TrimSpace(text[strings.IndexByte(text, ' ')+1:])
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: text}, true
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// received writes Courier's Received: header as submit writes it
// (courier/courier/submit.C, from the "dns; HELO (HOST [IP])" and
// "IDENT: user" courieresmtpd.c passes):
//
//	Received: from HELO (PTR [IP])
//	  (IDENT: user)
//	  by HOSTNAME with ESMTP
//	  id QUEUEID; DATE
//
// PTR is left out ("HELO ([IP])") when reverse DNS found no name or the
// name's A records do not contain the client (couriertcpd sets
// TCPREMOTEHOST only then); the IDENT line only when identd answered. The
// HELO name is written as courieresmtpd keeps it: spaces and control
// characters become '_' (and, here, 8-bit bytes too, so the header stays
// ASCII). go-smtp does not say whether the client said EHLO or HELO, so
// the protocol is always ESMTP (Courier writes SMTP after HELO).
func (ss *session) received(buf *bytes.Buffer) {
	c := ss.conn
	fmt.Fprintf(buf, "Received: from %s (", heloWord(ss.helo()))
	if c.ptrName != "" && c.confirmed {
		fmt.Fprintf(buf, "%s ", headerSafe(c.ptrName))
	}
	fmt.Fprintf(buf, "[%s])\r\n", remoteIP(c))
	if c.identUser != "" {
		fmt.Fprintf(buf, "  (IDENT: %s)\r\n", headerSafe(c.identUser))
	}
	now := time.Now()
	fmt.Fprintf(buf, "  by %s with ESMTP\r\n  id %s; %s\r\n", ss.s.cfg.Hostname, queueID(now), now.Format(time.RFC1123Z))
}

// queueID is a unique id in the form of Courier's queue ids (three hex
// fields: a sequence number, the time, the process).
func queueID(now time.Time) string {
	return fmt.Sprintf("%016X.%016X.%08X", queueSeq.Add(1), now.Unix(), os.Getpid())
}

// heloWord is the HELO name as courieresmtpd's ehlo() keeps it: every
// space or control character becomes '_' (8-bit bytes too, here).
func heloWord(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c >= 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}

// headerSafe keeps a word from a client, the DNS or identd from breaking
// the header it is written into: anything but printable ASCII becomes '?'.
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

// blockReply is the answer to every RCPT of a blocked connection, as
// Courier's submit (checkrcpt, comerrmsg) gives it: 511 and the block
// text, with no enhanced code, unless the text starts with a code of its
// own between 400 and 599.
func blockReply(text string) *smtp.SMTPError {
	code := 511
	if len(text) > 4 && text[3] == ' ' {
		if n, err := strconv.Atoi(text[:3]); err == nil && n >= 400 && n <= 599 {
			code, text = n, text[4:]
		}
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode, Message: text}
}
