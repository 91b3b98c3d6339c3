package receiver

// The wire-level front between the admitted connection (sessionConn) and
// go-smtp's Conn. go-smtp hard-codes in its conn.go what RFC 5321 and
// Courier's courieresmtpd answer otherwise, and has no option for it (none
// in v0.26.0 either); rather than a command loop of our own or a fork, the
// front answers the few commands go-smtp gets wrong, hands go-smtp every
// other command line one at a time, and rewrites the few replies of
// go-smtp's that it must. Read in github.com/svarshavchik/courier (the same
// command loop from 0.72 to 2.0.x):
//
//   - courier/courier/module.esmtp/courieresmtpd.c: the command loop (no
//     HELP, no BDAT: anything it does not know is "502 ESMTP command
//     error"; MAIL before HELO is "502 Polite people say HELO first"; RCPT
//     before MAIL and DATA before an accepted RCPT fall through to the
//     same "502 ESMTP command error"), the EHLO reply (ehlo(): never
//     CHUNKING), and data(), which takes a body line of any length.
//   - courier/courier/module.esmtp/esmtpiov.c: iovreadline, which reads a
//     command line into a 5120-byte buffer, answers what fits once and
//     skips the rest of the line.
//
// Where Courier's reply code and RFC 5321's differ the front gives the
// RFC's, as a client acts on the code (RFC 5321 4.2.1) and clients are
// written to the RFC: 500 for an unrecognised command (4.2.4; Courier
// 502), 503 for a bad sequence (4.3.2; Courier 502), 214 for HELP
// (4.1.1.8 says servers SHOULD support HELP; Courier has none), 500 for a
// command line too long (4.5.3.1.10). Where the RFC leaves a choice, the
// front does as Courier: a long command line costs one reply and the
// session goes on, and no count of errors closes the session (courieresmtpd
// slows an erring client down instead, tarpit()).
//
// It works because go-smtp is strictly sequential: it answers a command
// before it reads the next line, and the front gives it one line at a
// time, so when go-smtp asks for more every earlier reply is out and a
// reply of the front's own goes out in order, pipelining or not. Inside
// DATA (go-smtp answered 354) the front passes the bytes through and
// follows go-smtp's own end-of-data state machine (its data.go), so it
// stops exactly where go-smtp stops. The session's AUTH and STARTTLS are
// off, so go-smtp never reads a continuation line the front would take for
// a command.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// maxCommandLine is courieresmtpd's command buffer (inputbuf in
// esmtpiov.c), line end included.
const maxCommandLine = 5120

// The front's own replies.
const (
	// replyUnknown: RFC 5321 4.2.4's code for a command not recognised,
	// with courieresmtpd's text ("502 ESMTP command error").
	replyUnknown = "500 5.5.1 ESMTP command error"
	// replySyntax: a command go-smtp knows, in a form its parser does not
	// read (the verb not followed by a space, "MAIL " with nothing after):
	// RFC 5321 4.2.2's 501.
	replySyntax = "501 5.5.2 Syntax error"
	// replyTooLong: RFC 5321 4.5.3.1.10.
	replyTooLong = "500 5.5.2 Line too long"
	// replyHelp answers HELP, with or without an argument (RFC 5321
	// 4.1.1.8): the commands the receiver implements.
	replyHelp = "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"
)

// passed are the verbs go-smtp answers as RFC 5321 and the model want:
// the session's commands, and those RFC 821 named that go-smtp answers 502
// (recognised, not implemented: RFC 5321 4.2.4). BDAT is not among them:
// no Courier advertised CHUNKING (see notAdvertised), so it is an unknown
// command, and the chunk after it is read as command lines, as Courier
// would read it. Neither is LHLO (LMTP).
var passed = map[string]bool{
	"HELO": true, "EHLO": true, "MAIL": true, "RCPT": true, "DATA": true,
	"RSET": true, "NOOP": true, "QUIT": true, "VRFY": true, "EXPN": true,
	"SEND": true, "SOML": true, "SAML": true, "TURN": true,
	"AUTH": true, "STARTTLS": true,
}

// sequenced are the commands whose 502 from go-smtp is a bad sequence
// (MAIL before HELO; RCPT before MAIL; DATA before an accepted RCPT; any
// of them inside BDAT): RFC 5321 4.3.2 answers those 503.
var sequenced = map[string]bool{"MAIL": true, "RCPT": true, "DATA": true}

// notAdvertised are the EHLO keywords go-smtp lists that no Courier
// listed: courieresmtpd.c's ehlo() has no CHUNKING in 0.72, in 1.0.16
// (Debian's courier-mta, the courier-1.0.16 profile) or since, so both
// lookup profiles advertise the same list. (1.0.16 also lists SMTPUTF8,
// DSN and its own X- keywords; the model implements none of them, so none
// is added.)
var notAdvertised = map[string]bool{"CHUNKING": true}

// front is a sessionConn as go-smtp sees it.
type front struct {
	*sessionConn
	r              *bufio.Reader // the client's bytes
	commandTimeout time.Duration // the wait for each command line
	writeTimeout   time.Duration // the wait for each reply written

	pending []byte // the rest of the line go-smtp is reading
	verb    string // the command go-smtp is answering
	inData  bool   // go-smtp answered 354 and reads the message
	dot     dotState
	out     []byte // go-smtp's reply so far (a multi-line one is held whole)
}

func newFront(c *sessionConn, commandTimeout, writeTimeout time.Duration) *front {
	return &front{sessionConn: c, r: bufio.NewReader(c), commandTimeout: commandTimeout, writeTimeout: writeTimeout}
}

// Read gives go-smtp one command line at a time (answering those the
// front answers itself), or inside DATA the message up to its end.
func (f *front) Read(p []byte) (int, error) {
	if f.inData {
		return f.readData(p)
	}
	for answered := false; len(f.pending) == 0; answered = true {
		if answered && f.commandTimeout > 0 {
			// go-smtp set the deadline before it asked for this line; a
			// line the front answered itself must not shorten the wait
			// for the next one.
			f.SetReadDeadline(time.Now().Add(f.commandTimeout))
		}
		line, tooLong, err := f.readLine()
		if err != nil {
			return 0, err
		}
		verb, reply := classify(line, tooLong)
		if reply == "" {
			f.pending, f.verb = line, verb
			break
		}
		f.SetWriteDeadline(time.Now().Add(f.writeTimeout))
		if _, err := fmt.Fprintf(f.sessionConn, "%s\r\n", reply); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// readLine reads one command line, line end included, as go-smtp's
// textproto reads it (up to LF). A line longer than maxCommandLine is
// read to its end and reported too long, without its bytes.
func (f *front) readLine() (line []byte, tooLong bool, err error) {
	for first := true; ; first = false {
		chunk, err := f.r.ReadSlice('\n')
		if first && err == nil && len(chunk) <= maxCommandLine {
			// The whole line in the reader's buffer (almost every line):
			// go-smtp takes it (Read) before the front reads again, so it
			// need not be copied.
			return chunk, false, nil
		}
		if !tooLong && len(line)+len(chunk) > maxCommandLine {
			tooLong, line = true, nil
		}
		if !tooLong {
			line = append(line, chunk...)
		}
		switch {
		case err == nil:
			return line, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		}
		// The client went away or stalled: a part line is dropped, as
		// courieresmtpd's iovreadline drops it.
		return nil, false, err
	}
}

// classify decides who answers a command line: "" for go-smtp (with the
// verb it will see), else the front's reply.
func classify(line []byte, tooLong bool) (verb, reply string) {
	if tooLong {
		return "", replyTooLong
	}
	cmd := bytes.TrimRight(line, "\r\n") // as go-smtp's parseCmd
	word, _, hasArg := bytes.Cut(cmd, []byte(" "))
	verb = upperVerb(word)
	switch {
	case verb == "HELP":
		return "", replyHelp
	case !passed[verb]:
		return "", replyUnknown
	case verb == "STARTTLS":
		return verb, ""
	case hasArg && len(cmd) == len("MAIL "):
		// go-smtp reads "MAIL " as a mangled command (501) and counts it
		// towards its error limit: answer it here.
		return "", replySyntax
	}
	return verb, ""
}

// upperVerb is strings.ToUpper(word) when that is a verb of passed or
// HELP, else "": for an ASCII word (every command a client sends) without
// a copy, as the verb's own string.
func upperVerb(word []byte) string {
	var up [len("STARTTLS")]byte // the longest verb
	for i, c := range word {
		if c >= 0x80 {
			// strings.ToUpper maps some 8-bit runes onto ASCII ("ſ" to
			// "S"): do as it does.
			if v := strings.ToUpper(string(word)); v == "HELP" || passed[v] {
				return v
			}
			return ""
		}
		if i == len(up) {
			return ""
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	return verbs[string(up[:len(word)])]
}

// verbs are the verbs the front looks up, each by itself.
var verbs = func() map[string]string {
	m := map[string]string{"HELP": "HELP"}
	for v := range passed {
		m[v] = v
	}
	return m
}()

// readData passes the message through, up to and including the end of
// data, and not one byte further. It takes what the client's bytes
// already buffered hold, in one pass (dotState.scan), not a byte at a
// time.
func (f *front) readData(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if _, err := f.r.Peek(1); err != nil {
		return 0, err
	}
	buf, _ := f.r.Peek(min(len(p), f.r.Buffered()))
	n, end := f.dot.scan(buf)
	copy(p, buf[:n])
	f.r.Discard(n)
	if end {
		f.inData, f.dot = false, dotBeginLine
	}
	return n, nil
}

// dotState is go-smtp's end-of-data state machine (data.go, dataReader;
// net/textproto's dotReader without its bare-LF line ends): the message
// ends at CR LF "." CR LF, the first CR LF being the one before DATA's
// first line.
type dotState int

const (
	dotBeginLine dotState = iota // at the start of a line; the initial state
	dotDot                       // "." at the start of a line
	dotDotCR                     // "." CR at the start of a line
	dotCR                        // CR, maybe the end of a line
	dotData                      // inside a line
)

// scan moves the machine over b, up to the end of the message if b holds
// it: n is the bytes taken (all of b, or up to and including the LF that
// ended the message), end whether the message ended. Inside a line it
// skips to the next CR with bytes.IndexByte; everywhere else it steps.
func (s *dotState) scan(b []byte) (n int, end bool) {
	for i := 0; i < len(b); i++ {
		if *s == dotData {
			j := bytes.IndexByte(b[i:], '\r')
			if j < 0 {
				return len(b), false
			}
			i += j // b[i] is the CR: step would take dotData to dotCR
			*s = dotCR
			continue
		}
		if s.step(b[i]) {
			return i + 1, true
		}
	}
	return len(b), false
}

// step moves the machine over c and reports whether c ended the message.
func (s *dotState) step(c byte) (end bool) {
	switch *s {
	case dotBeginLine:
		switch c {
		case '.':
			*s = dotDot
		case '\r':
			*s = dotCR
		default:
			*s = dotData
		}
	case dotDot:
		if c == '\r' {
			*s = dotDotCR
		} else {
			*s = dotData
		}
	case dotDotCR:
		if c == '\n' {
			return true
		}
		*s = dotData
	case dotCR:
		if c == '\n' {
			*s = dotBeginLine
		} else {
			*s = dotData
		}
	case dotData:
		if c == '\r' {
			*s = dotCR
		}
	}
	return false
}

// Write takes go-smtp's replies, holds each until its last line, and
// sends it rewritten.
func (f *front) Write(p []byte) (int, error) {
	f.out = append(f.out, p...)
	for {
		end := lastLineEnd(f.out)
		if end < 0 {
			return len(p), nil
		}
		reply := f.rewrite(f.out[:end])
		_, err := f.sessionConn.Write(reply)
		// Keep the buffer's start: sliced forward, each reply's append
		// would allocate it again.
		f.out = f.out[:copy(f.out, f.out[end:])]
		if err != nil {
			return 0, err
		}
	}
}

// lastLineEnd is the length of the first whole reply in b (up to the CR
// LF of a line "NNN text" or "NNN"), or -1 when b holds none yet.
func lastLineEnd(b []byte) int {
	start := 0
	for {
		i := bytes.Index(b[start:], []byte("\r\n"))
		if i < 0 {
			return -1
		}
		line := b[start : start+i]
		start += i + 2
		if len(line) < 4 || line[3] != '-' {
			return start
		}
	}
}

// rewrite is one whole reply of go-smtp's (CRLF-ended lines) as the
// client gets it: DATA's 354 starts the message, a sequence error is 503,
// and EHLO's list loses what no Courier advertised.
func (f *front) rewrite(reply []byte) []byte {
	if len(reply) < 3 {
		return reply
	}
	code := string(reply[:3])
	switch {
	case code == "354" && f.verb == "DATA":
		f.inData, f.dot = true, dotBeginLine
	case code == "502" && sequenced[f.verb]:
		return bytes.ReplaceAll(append([]byte("\r\n"), reply...), []byte("\r\n502"), []byte("\r\n503"))[2:]
	case code == "250" && f.verb == "EHLO":
		return ehloReply(reply)
	}
	return reply
}

// ehloReply drops the notAdvertised keywords from go-smtp's EHLO reply
// (the first line is the greeting, the others one keyword each).
func ehloReply(reply []byte) []byte {
	lines := strings.SplitAfter(string(reply), "\r\n")
	var keep []string
	for i, l := range lines {
		if l == "" {
			continue
		}
		keyword, _, _ := strings.Cut(strings.TrimSuffix(l[min(4, len(l)):], "\r\n"), " ")
		if i > 0 && notAdvertised[strings.ToUpper(keyword)] {
			continue
		}
		keep = append(keep, l)
	}
	var out bytes.Buffer
	for i, l := range keep {
		sep := "-"
		if i == len(keep)-1 {
			sep = " "
		}
		out.WriteString(l[:3] + sep + l[min(4, len(l)):])
	}
	return out.Bytes()
}
