package mta

import (
	"strconv"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/events"
)

// Exim's main log is its own format, not syslog's (Exim's spec, "Log
// files"): "2026-12-06 05:18:44.560 [33] 1xa4e4-00000X-1n <= ..." — a
// stamp with the year (milliseconds with +millisec; Exim writes local
// time, UTC in the images), the process ([pid], with +pid), the message's
// id when the line is about one, and the text. What the lab reads of it
// (log_selector in eximLogSelector):
//
//	SMTP connection from [ip]:port I=[ip]:25 (TCP/IP connection count = 1)   a session opens
//	Connection from [ip]:port I=[ip]:25 refused: too many connections ...     over smtp_accept_max(_per_host)
//	SMTP connection from NAME (HELO) [ip]:port I=[ip]:25 closed by QUIT       it closes (or "lost", a timeout, ...)
//	ID <= from H=NAME (HELO) [ip]:port I=... P=esmtp S=408 id=...             a message taken in a session
//	ID <= from U=root P=local S=390 id=...                                      one taken from sendmail (a sender)
//	H=NAME [ip]:port I=... F=<from> rejected RCPT <to>: reason                 a refused command (ID first after DATA)
//	ID == to F=<from> R=... T=... defer (-44) H=... : SMTP error from ...      a deferral
//	ID ** to F=<from> R=... T=... H=...: SMTP error from remote ...: 550 ...   a permanent failure
//
// Deliveries ("=>") are not read: the receiver's Maildir is their evidence.

// EximLine is one line of Exim's main log.
type EximLine struct {
	Time time.Time
	PID  string // "" without +pid
	ID   string // the message's id, "" when the line is about none
	Text string
}

// ParseEximLine splits an Exim main log line. The stamp must be in now's
// year or the one before and no more than a day after now: a line dated
// otherwise is not of this run.
func ParseEximLine(s string, now time.Time) (EximLine, bool) {
	var l EximLine
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != ' ' {
		return l, false
	}
	t, err := time.Parse("2006-01-02 15:04:05", s[:19])
	if err != nil {
		return l, false
	}
	frac, rest := fraction(s[19:])
	t = t.Add(frac)
	now = now.UTC()
	if t.After(now.Add(24*time.Hour)) || t.Year() < now.Year()-1 {
		return l, false
	}
	l.Time = t
	rest = strings.TrimLeft(rest, " ")
	if len(rest) > 5 && (rest[0] == '+' || rest[0] == '-') && isDigits(rest[1:5]) { // log_timezone's "+0000"
		rest = strings.TrimLeft(rest[5:], " ")
	}
	if strings.HasPrefix(rest, "[") {
		if end := strings.IndexByte(rest, ']'); end > 0 && isDigits(rest[1:end]) {
			l.PID, rest = rest[1:end], strings.TrimLeft(rest[end+1:], " ")
		}
	}
	if w := firstWord(rest); isEximID(w) {
		l.ID, rest = w, strings.TrimLeft(rest[len(w):], " ")
	}
	l.Text = strings.TrimSpace(rest)
	return l, l.Text != ""
}

// isEximID is whether w is an Exim message id: three base-62 parts,
// 6-6-2 (Exim 4.96, Debian bookworm's) or 6-11-4 (4.97 and later).
func isEximID(w string) bool {
	parts := strings.Split(w, "-")
	if len(parts) != 3 || len(parts[0]) != 6 {
		return false
	}
	if !(len(parts[1]) == 6 && len(parts[2]) == 2) && !(len(parts[1]) == 11 && len(parts[2]) == 4) {
		return false
	}
	for _, p := range parts {
		for _, c := range p {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// exim reads one line of Exim's main log (the package's ParseLog).
func (p *logParser) exim(s string) {
	l, ok := ParseEximLine(s, p.now)
	if !ok {
		return
	}
	text := l.Text
	switch {
	case l.ID != "" && strings.HasPrefix(text, "<= "):
		p.eximArrival(l)
	case l.ID != "" && (strings.HasPrefix(text, "== ") || strings.HasPrefix(text, "** ")):
		p.eximFailure(l)
	case strings.HasPrefix(text, "H=") && strings.Contains(text, " rejected "):
		p.eximRejected(l) // a command refused; after DATA, with the message's id
	case l.ID != "":
	case strings.HasPrefix(text, "SMTP connection from ") && strings.HasSuffix(text, ")") && strings.Contains(text, " (TCP/IP connection count = "):
		ip, port := eximClient(strings.TrimPrefix(text, "SMTP connection from "))
		if ip == "" {
			return
		}
		conn := ip + ":" + port
		if _, open := p.eximConns[conn]; open {
			return // named twice: only the first is this log's
		}
		p.eximConns[conn] = 0
		p.add(events.Event{Time: l.Time, Kind: events.ConnOpen, Conn: conn, Host: ip})
	case strings.HasPrefix(text, "Connection from ") && strings.Contains(text, " refused"):
		// Turned away by the daemon before it forks (smtp_accept_max,
		// smtp_accept_max_per_host: daemon.c's handle_smtp_call), with
		// a 421: a connection the server accepted, and its refusal.
		ip, port := eximClient(strings.TrimPrefix(text, "Connection from "))
		if ip == "" {
			return
		}
		p.refused++
		conn := ip + ":" + port + "#refused-" + strconv.Itoa(p.refused)
		_, why, _ := strings.Cut(text, " refused: ")
		reason := "refused"
		switch why {
		case "too many connections from that IP address":
			reason = "max_per_ip"
		case "too many connections":
			reason = "max_sessions"
		}
		p.add(events.Event{Time: l.Time, Kind: events.ConnOpen, Conn: conn, Host: ip})
		p.add(events.Event{Time: l.Time, Kind: events.Refused, Conn: conn, Host: ip, Code: 421, Reason: reason, Error: text})
	default:
		p.eximClose(l)
	}
}

// eximClose reads the lines that end a session: "SMTP connection from
// H closed by QUIT" (or "closed by DROP in ACL", "lost", "lost while
// reading message data"), "SMTP command timeout on connection from H",
// "SMTP data timeout (message abandoned) on connection from H",
// "unexpected disconnection while reading SMTP command from H".
func (p *logParser) eximClose(l EximLine) {
	text := l.Text
	var host, reason string
	switch {
	case strings.HasPrefix(text, "SMTP connection from "):
		host = strings.TrimPrefix(text, "SMTP connection from ")
		switch {
		case strings.Contains(host, " closed by QUIT"):
			reason = "quit"
		case strings.Contains(host, " closed by DROP"):
			reason = "drop"
		case strings.Contains(host, " lost"):
			reason = "lost"
		default:
			return
		}
	case strings.Contains(text, " timeout ") && strings.Contains(text, " on connection from "):
		_, host, _ = strings.Cut(text, " on connection from ")
		reason = "timeout"
	case strings.HasPrefix(text, "unexpected disconnection while reading SMTP command from "):
		host, reason = strings.TrimPrefix(text, "unexpected disconnection while reading SMTP command from "), "lost"
	default:
		return
	}
	ip, port := eximClient(host)
	conn := ip + ":" + port
	n, open := p.eximConns[conn]
	if ip == "" || !open {
		return // its opening is before the log's start
	}
	delete(p.eximConns, conn)
	p.add(events.Event{Time: l.Time, Kind: events.ConnClose, Conn: conn, Host: ip, Count: n, Reason: reason})
}

// eximArrival: a message taken in a session open in this log counts for
// it; one taken from sendmail gives its envelope sender, which the
// deferral and failure lines name only with +sender_on_delivery.
func (p *logParser) eximArrival(l EximLine) {
	rest := strings.TrimPrefix(l.Text, "<= ")
	from := firstWord(rest)
	if from == "<>" {
		from = ""
	}
	p.from[l.ID] = from
	if _, h, ok := strings.Cut(rest, " H="); ok {
		ip, port := eximClient(h)
		if n, open := p.eximConns[ip+":"+port]; open {
			p.eximConns[ip+":"+port] = n + 1
		}
	}
}

// eximRejected: "H=NAME (HELO) [ip]:port I=... U=ident F=<from> rejected
// RCPT <to>: reason" (or "rejected MAIL <from>", "rejected after DATA",
// "temporarily rejected ..."). The reason carries the reply's code when
// the ACL's message gave one; else Exim answered its default, 550 for a
// denial and 451 for a deferral (smtp_in.c, smtp_handle_acl_fail).
func (p *logParser) eximRejected(l EximLine) {
	text := l.Text
	head, tail, _ := strings.Cut(text, " rejected ")
	ip, port := "", ""
	if h, ok := strings.CutPrefix(head, "H="); ok {
		ip, port = eximClient(h)
	}
	e := events.Event{Time: l.Time, Kind: events.Rejected, Host: ip}
	if ip != "" {
		e.Conn = ip + ":" + port
	}
	if _, f, ok := strings.Cut(head, " F=<"); ok {
		e.From, _, _ = strings.Cut(f, ">")
	}
	what, reason, _ := strings.Cut(tail, ": ")
	if to, ok := strings.CutPrefix(what, "RCPT <"); ok {
		rcpt, _, _ := strings.Cut(to, ">")
		e.Rcpts = []string{rcpt}
	}
	e.Error = reason
	e.Code = replyCode(reason)
	if e.Code == 0 {
		e.Code = 550
		if strings.HasSuffix(head, " temporarily") {
			e.Code = 451
		}
	}
	p.add(e)
}

// eximFailure: a deferral ("==") or a permanent failure ("**") of one
// recipient, "ID ** to [<orig>] F=<from> R=router T=transport H=host
// [ip]:port I=[ip]:port: SMTP error from remote mail server after RCPT
// TO:<to>: 550 5.1.1 User unknown DT=0s". Exim's own deferral of a
// recipient whose retry time has not come ("retry time not reached") is no
// attempt and is skipped.
func (p *logParser) eximFailure(l EximLine) {
	kind, rest := l.Text[:2], l.Text[3:]
	rcpt := strings.TrimSuffix(firstWord(rest), ":") // "** to: Unrouteable address" has no fields
	if rcpt == "" || strings.Contains(rest, "retry time not reached") {
		return
	}
	why := ""
	if i := strings.Index(rest, ": "); i >= 0 {
		why = strings.TrimSpace(rest[i+2:])
	}
	if i := strings.LastIndex(why, " DT="); i >= 0 && !strings.Contains(why[i+1:], " ") {
		why = why[:i] // +deliver_time's field, after the message
	}
	head := rest
	if i := strings.Index(rest, ": "); i >= 0 {
		head = rest[:i]
	}
	from := p.from[l.ID]
	if _, f, ok := strings.Cut(head, " F=<"); ok { // +sender_on_delivery
		from, _, _ = strings.Cut(f, ">")
	}
	reply := why
	if _, after, ok := strings.Cut(why, "remote mail server after "); ok {
		reply = eximReply(after)
	}
	e := events.Event{Time: l.Time, QueueID: l.ID, From: from, Rcpts: []string{rcpt},
		Code: replyCode(reply), Enhanced: replyEnhanced(reply), Error: why}
	if kind == "==" {
		e.Kind, e.Result = events.Attempt, "temporary"
	} else {
		e.Kind = events.Failed
	}
	p.add(e)
}

// eximReply is the reply in "RCPT TO:<to>: 550 5.1.1 User unknown" (the
// command, then the first ": " followed by a reply code).
func eximReply(s string) string {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == ':' && s[i+1] == ' ' && replyCode(s[i+2:]) != 0 {
			return s[i+2:]
		}
	}
	return s
}

// eximClient is the client's address and port in an Exim host field,
// "NAME (HELO) [ip]:port I=...": the first word that is bracketed (a
// HELO name is in parentheses and has no spaces: Exim refuses one that
// has, smtp_in.c check_helo). The port is "" without +incoming_port.
func eximClient(s string) (ip, port string) {
	for _, w := range strings.Fields(s) {
		if !strings.HasPrefix(w, "[") {
			continue
		}
		end := strings.IndexByte(w, ']')
		if end < 2 {
			return "", ""
		}
		ip, port = w[1:end], strings.TrimSuffix(strings.TrimPrefix(w[end+1:], ":"), ":")
		if !isDigits(port) {
			port = ""
		}
		return ip, port
	}
	return "", ""
}
