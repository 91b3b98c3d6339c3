package sender

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smtplab/smtplab/lab/wire"
)

// The sender speaks SMTP through its own small client rather than
// go-smtp's: go-smtp's client neither pipelines (it waits for each reply
// before the next command) nor has a timeout per phase, and both are part
// of what Courier S does and of what the lab measures.

// Timeouts are the per-phase limits of one SMTP session, as Courier's
// courieresmtp has them. Courier's defaults (courier/module.esmtp/
// esmtpconfig.c in Courier's source, the config_time_esmtp* functions; how
// esmtpclient.c and libesmtp.c use them):
//   - esmtptimeoutconnect, 60 s: the TCP connect;
//   - esmtptimeouthelo, 5 min: the greeting, EHLO/HELO and RSET;
//   - esmtptimeout, 10 min: MAIL, RCPT and the reply to DATA (one timeout
//     for the whole pipelined group when the server pipelines);
//   - esmtptimeoutdata, 5 min: writing the message and the reply to its
//     end;
//   - esmtptimeoutquit, 10 s: QUIT.
type Timeouts struct {
	Connect, Greeting, Helo, Mail, Rcpt, Data, EndOfData, Quit time.Duration
}

// CourierTimeouts are Courier's defaults, listed above.
var CourierTimeouts = Timeouts{
	Connect:   60 * time.Second,
	Greeting:  5 * time.Minute,
	Helo:      5 * time.Minute,
	Mail:      10 * time.Minute,
	Rcpt:      10 * time.Minute,
	Data:      10 * time.Minute,
	EndOfData: 5 * time.Minute,
	Quit:      10 * time.Second,
}

// Reply is an SMTP reply that was not the one hoped for. Error gives it as
// it came ("550 5.1.1 no such user"), for logs and a DSN's Diagnostic-Code.
type Reply struct {
	Code int
	Text string // the lines' text after the code, joined by a space
}

func (r *Reply) Error() string {
	if r.Text == "" {
		return strconv.Itoa(r.Code)
	}
	return strconv.Itoa(r.Code) + " " + strings.ReplaceAll(r.Text, "\n", " ")
}

// Permanent reports a 5xx reply.
func (r *Reply) Permanent() bool { return r.Code >= 500 }

// Enhanced is the RFC 3463 status code the reply's text begins with, as
// RFC 2034 servers put it ("450 4.3.0 try later" gives "4.3.0"); "" when
// there is none, or when its class is not the reply code's first digit (a
// 450 cannot report a permanent 5.x.x).
func (r *Reply) Enhanced() string {
	f := strings.Fields(r.Text)
	if len(f) == 0 || !isEnhanced(f[0]) || f[0][0] != byte('0'+r.Code/100) {
		return ""
	}
	return f[0]
}

// isEnhanced reports whether s has the form of an RFC 3463 status code:
// three dot-separated numbers.
func isEnhanced(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// replyOf is the server's reply err carries, nil when no server answered.
func replyOf(err error) *Reply {
	var r *Reply
	if errors.As(err, &r) {
		return r
	}
	return nil
}

// smtpConn is one client session.
type smtpConn struct {
	nc         net.Conn
	br         *bufio.Reader
	bw         *bufio.Writer // writes to nc through deadlineWriter
	wd         time.Duration // the write deadline bw's next write gets, from then
	t          Timeouts
	pipelining bool // the server offered PIPELINING (RFC 2920)
}

// The buffers of closed sessions, for the next ones. A backlog turns a
// session over per message (as Courier's does), and its two buffers (12
// KiB) with a writer made for each message body (8 KiB) were 70% of the
// 24 KiB a message cost in allocations, and so of the garbage
// collector's work (docs/PERFORMANCE.md).
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8192) }}
)

// maxReplyLines bounds a multi-line reply: a server that never ends one is
// answering garbage.
const maxReplyLines = 100

// dialSMTP connects to addr, reads the greeting and says EHLO (HELO when
// EHLO is refused as unknown). A 5xx greeting or HELO is returned as a
// *Reply (permanent, as Courier takes it); any other failure is an error
// naming its phase.
func dialSMTP(ctx context.Context, addr, hostname string, t Timeouts, wrap func(net.Conn) net.Conn) (*smtpConn, error) {
	// No TCP keep-alive probes: each phase of a session has its own
	// timeout (Timeouts), which ends a dead one long before a probe
	// would, and Go's default would add four setsockopt calls to every
	// connection, of which a backlog turns over one per message.
	d := net.Dialer{Timeout: t.Connect, KeepAlive: -1}
	// (Not Dialer.DialTCP, which would skip the resolver for an address:
	// with no local address it binds the socket to port 0 before
	// connecting, one more system call, and a bound port cannot be one
	// that is still in TIME_WAIT, which a connect's own choice can be.)
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	if wrap != nil {
		nc = wrap(nc) // the modelled SMTP link (lab/line)
	} else {
		nc = wire.Wrap(nc) // raw reads and writes (lab/wire)
	}
	c := &smtpConn{nc: nc, t: t}
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(nc)
	c.bw = writers.Get().(*bufio.Writer)
	c.bw.Reset(deadlineWriter{c})
	// Closing the socket when ctx ends unblocks a greeting or EHLO still
	// awaited, so Close does not wait out a 5-minute phase for a session
	// that carries nothing yet. Once a session is open, Close lets its
	// transaction finish instead: cutting it between the receiver's 250
	// and the done record would send that message twice.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	// If ctx ended as the session opened, the socket is closed (or about to
	// be) under a session that would carry a transaction: give it up here,
	// before any message is sent on it.
	opened := func() error {
		if !stop() {
			nc.Close()
			return fmt.Errorf("connect %s: %w", addr, context.Cause(ctx))
		}
		return nil
	}
	r, err := c.readReply("greeting", t.Greeting)
	if err == nil && r.Code != 220 {
		err = fmt.Errorf("greeting: %w", r)
	}
	if err != nil {
		c.quitIfReply(err)
		return nil, err
	}
	r, err = c.command("EHLO", "EHLO "+hostname, t.Helo)
	if err == nil && r.Code/100 != 2 {
		if r.Code == 500 || r.Code == 502 || r.Code == 504 {
			// An RFC 821 server: EHLO is unknown to it, HELO is not.
			r, err = c.command("HELO", "HELO "+hostname, t.Helo)
			if err == nil && r.Code/100 != 2 {
				err = fmt.Errorf("HELO: %w", r)
			}
		} else {
			err = fmt.Errorf("EHLO: %w", r)
		}
	} else if err == nil {
		for _, ext := range strings.Split(r.Text, "\n")[1:] {
			if f := strings.Fields(ext); len(f) > 0 && strings.EqualFold(f[0], "PIPELINING") {
				c.pipelining = true
			}
		}
	}
	if err != nil {
		c.quitIfReply(err)
		return nil, err
	}
	if err := opened(); err != nil {
		return nil, err
	}
	return c, nil
}

// quitIfReply ends a session the server refused politely (a reply, not a
// broken connection) with QUIT, then closes it.
func (c *smtpConn) quitIfReply(err error) {
	var r *Reply
	if errors.As(err, &r) {
		c.quit()
		return
	}
	c.close()
}

// readReply reads one reply, waiting up to d. Lines of a multi-line reply
// are joined by "\n" in Text (EHLO's extensions are read from there).
// Anything that is not a well-formed reply is an error naming phase, and
// the connection is not to be used again.
func (c *smtpConn) readReply(phase string, d time.Duration) (*Reply, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	var r Reply
	var lines []string
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, fmt.Errorf("%s: reply line longer than %d bytes", phase, c.br.Size())
			}
			return nil, fmt.Errorf("%s: %w", phase, err)
		}
		s := strings.TrimRight(string(line), "\r\n")
		code, err := strconv.Atoi(s[:min(3, len(s))])
		if len(s) < 3 || err != nil || code < 200 || code > 599 || (len(s) > 3 && s[3] != ' ' && s[3] != '-') {
			return nil, fmt.Errorf("%s: malformed reply %q", phase, s)
		}
		if r.Code != 0 && code != r.Code {
			return nil, fmt.Errorf("%s: reply changes code from %d to %d", phase, r.Code, code)
		}
		r.Code = code
		text := ""
		if len(s) > 4 {
			text = s[4:]
		}
		last := len(s) == 3 || s[3] == ' '
		if last && lines == nil { // a one-line reply, nearly all of them
			r.Text = text
			return &r, nil
		}
		lines = append(lines, text)
		if last {
			r.Text = strings.Join(lines, "\n")
			return &r, nil
		}
		if len(lines) >= maxReplyLines {
			return nil, fmt.Errorf("%s: reply of more than %d lines", phase, maxReplyLines)
		}
	}
}

// write sends b at once, waiting up to d for the socket.
func (c *smtpConn) write(phase string, d time.Duration, b string) error {
	c.wd = d
	c.bw.WriteString(b)
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", phase, err)
	}
	return nil
}

// command sends one line and reads its reply.
func (c *smtpConn) command(phase, line string, d time.Duration) (*Reply, error) {
	if err := c.write(phase, d, line+"\r\n"); err != nil {
		return nil, err
	}
	return c.readReply(phase, d)
}

// reset sends RSET (with Courier's helo timeout, as Courier does) so the
// next transaction starts clean; an error means the session is unusable.
func (c *smtpConn) reset() error {
	r, err := c.command("RSET", "RSET", c.t.Helo)
	if err == nil && r.Code/100 != 2 {
		err = fmt.Errorf("RSET: %w", r)
	}
	return err
}

// quit says QUIT, waits briefly for the answer and closes.
func (c *smtpConn) quit() {
	c.command("QUIT", "QUIT", c.t.Quit)
	c.close()
}

// close closes the connection and gives its buffers back, once; c is
// not to be used after.
func (c *smtpConn) close() {
	c.nc.Close()
	if c.br == nil {
		return // closed before: its buffers may be another session's now
	}
	c.br.Reset(nil)
	readers.Put(c.br)
	c.bw.Reset(nil)
	writers.Put(c.bw)
	c.br, c.bw = nil, nil
}

// remoteHost is the server's address, without the port.
func (c *smtpConn) remoteHost() string {
	h, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		return c.nc.RemoteAddr().String()
	}
	return h
}

// outcome is what one transaction came to. Every recipient has one of: a
// refusal in rcpt, acceptance (nil in rcpt, i < answered), or no answer
// (i >= answered, only when broken is set).
type outcome struct {
	mail     error   // MAIL refused: applies to every recipient
	rcpt     []error // per recipient: its RCPT refusal, or nil
	answered int     // how many RCPT replies were read
	data     error   // DATA or the end of data refused, for the accepted ones
	sent     bool    // the end of data was answered 2xx
	done     *Reply  // that 2xx, when sent
	broken   error   // I/O error, timeout or garbage: the session is unusable
}

// transaction sends one message to rcpts. With PIPELINING (RFC 2920) MAIL,
// every RCPT and DATA leave in one write and the replies are read in
// order, as Courier's do_pipeline_rcpt does; without it each command waits
// for its reply and DATA is not sent when no recipient was accepted.
func (c *smtpConn) transaction(from string, rcpts []string, text []byte) (o outcome) {
	o.rcpt = make([]error, len(rcpts))
	mailLine := "MAIL FROM:<" + from + ">"
	var nAccepted int
	readRcpt := func(i int) bool {
		r, err := c.readReply("RCPT TO:<"+rcpts[i]+">", c.t.Rcpt)
		if err != nil {
			o.broken = err
			return false
		}
		o.answered++
		if r.Code/100 != 2 {
			o.rcpt[i] = fmt.Errorf("RCPT TO:<%s>: %w", rcpts[i], r)
		} else {
			nAccepted++
		}
		return true
	}
	if c.pipelining {
		var b strings.Builder
		b.WriteString(mailLine + "\r\n")
		for _, r := range rcpts {
			b.WriteString("RCPT TO:<" + r + ">\r\n")
		}
		b.WriteString("DATA\r\n")
		if err := c.write("MAIL", c.t.Mail, b.String()); err != nil {
			o.broken = err
			return o
		}
		r, err := c.readReply("MAIL", c.t.Mail)
		if err != nil {
			o.broken = err
			return o
		}
		if r.Code/100 != 2 {
			o.mail = fmt.Errorf("%s: %w", mailLine, r)
		}
		// Every reply is read, even after MAIL was refused (the server then
		// refuses each RCPT and DATA too), to keep the session in step.
		for i := range rcpts {
			if !readRcpt(i) {
				return o
			}
		}
		r, err = c.readReply("DATA", c.t.Data)
		if err != nil {
			o.broken = err
			return o
		}
		if r.Code != 354 {
			if o.mail == nil && nAccepted > 0 {
				o.data = fmt.Errorf("DATA: %w", r)
			}
			return o
		}
		if o.mail != nil || nAccepted == 0 {
			// The server wants a message nobody is left to receive: an empty
			// one ends the DATA (Courier does the same), its reply ignored.
			if err := c.write("end of data", c.t.EndOfData, ".\r\n"); err != nil {
				o.broken = err
				return o
			}
			if _, err := c.readReply("end of data", c.t.EndOfData); err != nil {
				o.broken = err
			}
			return o
		}
	} else {
		r, err := c.command("MAIL", mailLine, c.t.Mail)
		if err != nil {
			o.broken = err
			return o
		}
		if r.Code/100 != 2 {
			o.mail = fmt.Errorf("%s: %w", mailLine, r)
			return o
		}
		for i, rc := range rcpts {
			if err := c.write("RCPT TO:<"+rc+">", c.t.Rcpt, "RCPT TO:<"+rc+">\r\n"); err != nil {
				o.broken = err
				return o
			}
			if !readRcpt(i) {
				return o
			}
		}
		if nAccepted == 0 {
			return o
		}
		r, err = c.command("DATA", "DATA", c.t.Data)
		if err != nil {
			o.broken = err
			return o
		}
		if r.Code != 354 {
			o.data = fmt.Errorf("DATA: %w", r)
			return o
		}
	}
	if err := c.writeBody(text); err != nil {
		o.broken = err
		return o
	}
	r, err := c.readReply("end of data", c.t.EndOfData)
	if err != nil {
		o.broken = err
		return o
	}
	if r.Code/100 != 2 {
		o.data = fmt.Errorf("end of data: %w", r)
		return o
	}
	o.sent, o.done = true, r
	return o
}

// writeBody sends text as SMTP data: CRLF line ends, a leading dot doubled
// (RFC 5321 4.5.2), then the final ".". The write deadline is renewed per
// buffer written, as Courier renews esmtptimeoutdata every BUFSIZ bytes.
func (c *smtpConn) writeBody(text []byte) error {
	c.wd = c.t.EndOfData
	bw := c.bw
	for len(text) > 0 {
		i := bytes.IndexByte(text, '\n')
		var line []byte
		if i < 0 {
			line, text = text, nil
		} else {
			line, text = text[:i], text[i+1:]
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > 0 && line[0] == '.' {
			bw.WriteByte('.')
		}
		bw.Write(line)
		bw.WriteString("\r\n")
	}
	bw.WriteString(".\r\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("message data: %w", err)
	}
	return nil
}

// deadlineWriter is what a session's bw writes to: the connection, with
// a write deadline of c.wd from the moment of each write.
type deadlineWriter struct{ c *smtpConn }

func (w deadlineWriter) Write(b []byte) (int, error) {
	w.c.nc.SetWriteDeadline(time.Now().Add(w.c.wd))
	return w.c.nc.Write(b)
}
