package mta

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// ParseLog reads a real MTA's mail log (Courier's through busybox
// syslogd, Postfix's maillog_file, Exim's main log: exim_log.go) into the
// lab's events for role: the receiver's connections (ConnOpen; ConnClose
// with the messages it carried, where the MTA logs it: Postfix, Exim),
// connections turned away over a limit (Refused: Exim's "refused: too
// many connections"; Postfix's concurrency warning; couriertcpd's
// "Maximum connection limit reached for IP" over MAXPERIP, logged for a
// connection it accepted and closed without starting courieresmtpd, so
// the line gives a ConnOpen and its Refused, as the Go receiver logs a
// refusal; over MAXPERC couriertcpd closes without a word, over
// MAXDAEMONS it stops accepting) and refused commands (Rejected, with the
// reply's code and text, whether courieresmtpd or submit refused); the
// sender's deferrals (Attempt, temporary) and permanent failures (Failed),
// each with the peer's reply the MTA logged. Courier S logs no
// Message-ID: its events carry the queue id, envelope sender and
// recipient, and TieInjected ties them to the injected messages. Syslog stamps
// carry no year nor zone (the images run in UTC): a stamp is taken in
// now's year, or the year before when that would put it more than a day
// after now; an Exim line dated outside those is skipped. Lines it does not know are skipped; it fails only when the
// log cannot be read.
//
// The log is the MTA's own free-form text, outside input: every field is
// taken with bounds checks, never trusted (FuzzParseLog).
func ParseLog(r io.Reader, role topology.Role, now time.Time) ([]events.Event, error) {
	p := &logParser{role: role, now: now, session: map[string]int{}, reply: map[string]string{}, from: map[string]string{},
		eximConns: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.line(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return p.out, fmt.Errorf("read %s mail log: %w", role, err)
	}
	return p.out, nil
}

type logParser struct {
	role    topology.Role
	now     time.Time
	out     []events.Event
	session map[string]int    // postfix/smtpd[pid] -> sessions it has opened, to name them
	refused int               // couriertcpd's refusals so far, to name them
	reply   map[string]string // Courier S: queue id and recipient -> the last reply logged for them
	from    map[string]string // Postfix S (qmgr's line), Exim (its arrival line): queue id -> envelope sender
	// Exim R: the sessions open in this log (client ip:port) -> the
	// messages each has carried so far.
	eximConns map[string]int
}

// Line is one parsed syslog line.
type Line struct {
	Time    time.Time
	Host    string
	Program string // "courieresmtpd", "postfix/smtpd", ...
	PID     string // "" when the line has none
	Text    string
}

// ParseLine splits "Nov 28 12:00:01[.123456] host [facility.level]
// prog[pid]: text", dating the stamp as ParseLog does.
func ParseLine(s string, now time.Time) (Line, bool) {
	var l Line
	if len(s) < 16 {
		return l, false
	}
	stamp, rest := s[:15], s[15:]
	t, err := time.Parse("Jan _2 15:04:05", stamp)
	if err != nil {
		return l, false
	}
	frac, rest := fraction(rest) // RFC 3339-less high precision: ".123456"
	t = t.Add(frac)
	now = now.UTC()
	t = time.Date(now.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	if t.After(now.Add(24 * time.Hour)) {
		t = time.Date(now.Year()-1, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	}
	l.Time = t
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return l, false
	}
	l.Host = fields[0]
	i := 1
	if len(fields) > 2 && isFacilityLevel(fields[1]) {
		i = 2
	}
	tag, ok := strings.CutSuffix(fields[i], ":")
	if !ok || tag == "" {
		return l, false
	}
	if open := strings.IndexByte(tag, '['); open > 0 && strings.HasSuffix(tag, "]") {
		l.PID = tag[open+1 : len(tag)-1]
		tag = tag[:open]
	}
	l.Program = tag
	// The text is what follows the tag, spacing kept: the tag's word may
	// also be in the host's, so the words are skipped, not searched for.
	l.Text = strings.TrimSpace(afterWords(rest, i+1))
	return l, true
}

// afterWords is s after its first n words, words as strings.Fields
// splits them.
func afterWords(s string, n int) string {
	for range n {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		end := strings.IndexFunc(s, unicode.IsSpace)
		if end < 0 {
			return ""
		}
		s = s[end:]
	}
	return s
}

// isFacilityLevel is busybox syslogd's "mail.info" between host and tag.
func isFacilityLevel(f string) bool {
	a, b, ok := strings.Cut(f, ".")
	return ok && a != "" && b != "" && !strings.ContainsAny(f, ":[]")
}

func (p *logParser) add(e events.Event) {
	e.Role = p.role
	p.out = append(p.out, e)
}

func (p *logParser) line(s string) {
	if len(s) > 10 && s[4] == '-' && s[7] == '-' { // Exim's "2026-12-06 05:18:44.560 ...", not syslog's
		p.exim(s)
		return
	}
	l, ok := ParseLine(s, p.now)
	if !ok {
		return
	}
	switch l.Program {
	case "courieresmtpd":
		p.courierSession(l)
	case "courieresmtp":
		p.courierClient(l)
	case "postfix/smtpd":
		p.postfixSMTPD(l)
	case "postfix/qmgr":
		p.postfixQmgr(l)
	case "postfix/smtp":
		p.postfixClient(l)
	}
}

// postfixQmgr: "QID: from=<a@b>, size=312, nrcpt=1 (queue active)"
// gives a queue file's envelope sender, which its delivery lines lack.
func (p *logParser) postfixQmgr(l Line) {
	qid, rest, ok := strings.Cut(l.Text, ": from=<")
	if !ok || strings.Contains(qid, " ") {
		return
	}
	if from, _, ok := strings.Cut(rest, ">"); ok {
		p.from[qid] = from
	}
}

// postfixClient: Postfix S's delivery lines, "QID: to=<r@h>, relay=...,
// delay=..., dsn=4.3.0, status=deferred (host h[ip] said: 450 4.3.0 busy
// (in reply to RCPT TO command))", status=bounced for a failure for good;
// status=sent is a delivery, whose evidence is the receiver's Maildir.
func (p *logParser) postfixClient(l Line) {
	qid, rest, ok := strings.Cut(l.Text, ": to=<")
	if !ok || strings.Contains(qid, " ") {
		return
	}
	rcpt, rest, ok := strings.Cut(rest, ">")
	if !ok {
		return
	}
	_, status, ok := strings.Cut(rest, ", status=")
	if !ok {
		return
	}
	word, why, _ := strings.Cut(status, " ")
	why = strings.TrimSuffix(strings.TrimPrefix(why, "("), ")")
	reply := why
	if _, said, ok := strings.Cut(why, " said: "); ok {
		reply = said
		if i := strings.LastIndex(reply, " (in reply to "); i >= 0 {
			reply = reply[:i]
		}
	}
	e := events.Event{Time: l.Time, QueueID: qid, From: p.from[qid], Rcpts: []string{rcpt},
		Code: replyCode(reply), Enhanced: replyEnhanced(reply), Error: why}
	switch word {
	case "deferred":
		e.Kind, e.Result = events.Attempt, "temporary"
	case "bounced":
		e.Kind = events.Failed
	default:
		return
	}
	p.add(e)
}

// courierSession: "started,ip=[::ffff:172.18.0.4],port=[39428]" opens a
// session. A refused command is either courieresmtpd's own,
// "error,relay=::ffff:172.18.0.4,port=39428[,ident="x"],msg="502 ...",cmd: DATA",
// or submit's refusal of a recipient (user unknown, relaying, a -block
// blacklist), "error,relay=::ffff:172.18.0.4,port=39428[,ident=x],from=<a>,to=<b>: 550 ...".
// couriertcpd over MAXPERIP: "Maximum connection limit reached for ::ffff:172.18.0.4"
// (its "ALERT: " taken off by courierlogger).
func (p *logParser) courierSession(l Line) {
	switch {
	case strings.HasPrefix(l.Text, "started,"):
		kv := courierFields(l.Text)
		ip, port := unbracket(kv["ip"]), unbracket(kv["port"])
		if ip == "" {
			return
		}
		p.add(events.Event{Time: l.Time, Kind: events.ConnOpen, Conn: ip + ":" + port, Host: unmapped(ip)})
	case strings.HasPrefix(l.Text, "error,"):
		p.courierRejected(l)
	case strings.HasPrefix(l.Text, courierLimit):
		ip := firstWord(strings.TrimPrefix(l.Text, courierLimit))
		if ip == "" {
			return
		}
		// couriertcpd logs no port: the refusal is named by its count.
		p.refused++
		conn := fmt.Sprintf("%s#refused-%d", ip, p.refused)
		p.add(events.Event{Time: l.Time, Kind: events.ConnOpen, Conn: conn, Host: unmapped(ip)})
		p.add(events.Event{Time: l.Time, Kind: events.Refused, Conn: conn, Host: unmapped(ip), Reason: "max_per_ip", Error: l.Text})
	}
}

// courierLimit starts couriertcpd's line for a connection over MAXPERIP.
const courierLimit = "Maximum connection limit reached for "

// courierRejected reads a refused command (see courierSession). The
// reply of a submit refusal follows the recipient's ">: "; the envelope's
// addresses are kept apart so that an address's text is never taken for
// the reply.
func (p *logParser) courierRejected(l Line) {
	text, reply := l.Text, ""
	if i := strings.LastIndex(text, ",to=<"); i >= 0 && !strings.Contains(text[:i], ",msg=") {
		if end := strings.Index(text[i:], ">: "); end >= 0 {
			text, reply = text[:i+end+1], strings.TrimSpace(text[i+end+3:])
		}
	}
	kv := courierFields(text)
	if msg, ok := kv["msg"]; ok {
		reply = msg
	}
	relay := unbracket(kv["relay"])
	e := events.Event{Time: l.Time, Kind: events.Rejected, Conn: relay + ":" + unbracket(kv["port"]), Host: unmapped(relay),
		Code: replyCode(reply), Error: reply}
	if to, ok := kv["to"]; ok {
		e.From, e.Rcpts = strings.Trim(kv["from"], "<>"), []string{strings.Trim(to, "<>")}
	}
	p.add(e)
}

// courierClient: Courier S's delivery lines,
// "id=...,from=<a>,addr=<b>: 550 5.1.1 User unknown." (the reply) then
// "id=...,from=<a>,addr=<b>,status: failure" (or "deferred", "success").
// A failure from the null sender (from=<>, or <#@[]> for a bounce's own
// bounce to postmaster) is a bounce that could not be delivered either.
func (p *logParser) courierClient(l Line) {
	head, status, ok := strings.Cut(l.Text, ",status: ")
	if !ok {
		// The addresses are bracketed: the reply follows the recipient's ">: ".
		if h, reply, ok := strings.Cut(l.Text, ">: "); ok {
			kv := courierFields(h + ">")
			p.reply[kv["id"]+"\x00"+kv["addr"]] = strings.TrimSpace(reply)
		}
		return
	}
	kv := courierFields(head)
	key := kv["id"] + "\x00" + kv["addr"]
	reply, replied := p.reply[key]
	delete(p.reply, key)
	rcpt := strings.Trim(kv["addr"], "<>")
	from := strings.Trim(kv["from"], "<>")
	if from == "#@[]" { // Courier's sender of a bounce of a bounce (to postmaster): null too
		from = ""
	}
	e := events.Event{Time: l.Time, QueueID: kv["id"], From: from, Rcpts: []string{rcpt},
		Code: replyCode(reply), Enhanced: replyEnhanced(reply), Error: reply}
	switch strings.TrimSpace(status) {
	case "deferred":
		e.Kind, e.Result = events.Attempt, "temporary"
	case "failure":
		e.Kind = events.Failed
		if !replied {
			e.Error = "permanent failure (Courier's log)"
		}
	default:
		return
	}
	p.add(e)
}

// TieInjected gives a real sender's Failed events (Courier's log has no
// Message-ID) the Message-ID of the injected message they belong to, read
// from the injection's Queued events: the one message injected with that
// envelope sender and recipient. Where several were (the same recipient in
// more than one round), the log cannot tell which one failed and the event
// is left as it is; so is a bounce's (null sender). A Queued event given
// twice (the loop's answer and its file both hold it) counts once. It
// changes evs in place.
func TieInjected(evs, queued []events.Event) {
	type envelope struct{ from, rcpt string }
	ids := map[envelope][]string{}
	for _, q := range queued {
		if q.Kind != events.Queued || q.MessageID == "" {
			continue
		}
		for _, r := range q.Rcpts {
			k := envelope{q.From, r}
			if !slices.Contains(ids[k], q.MessageID) {
				ids[k] = append(ids[k], q.MessageID)
			}
		}
	}
	for i, e := range evs {
		if e.Kind != events.Failed || e.MessageID != "" || e.From == "" || len(e.Rcpts) != 1 {
			continue
		}
		if m := ids[envelope{e.From, e.Rcpts[0]}]; len(m) == 1 {
			evs[i].MessageID = m[0]
		}
	}
}

// postfixSMTPD: "connect from name[ip]", "disconnect from name[ip] ehlo=1
// mail=5 rcpt=5 data=5 quit=1 commands=17", "NOQUEUE: reject: RCPT from
// name[ip]: 554 5.7.1 ...", "warning: Connection concurrency limit
// exceeded: 51 from name[ip] for service smtp". One smtpd process serves
// sessions one after another: a session is named by pid and count.
func (p *logParser) postfixSMTPD(l Line) {
	key := "smtpd[" + l.PID + "]"
	conn := func() string { return fmt.Sprintf("%s#%d", key, p.session[key]) }
	switch {
	case strings.HasPrefix(l.Text, "connect from "):
		p.session[key]++
		p.add(events.Event{Time: l.Time, Kind: events.ConnOpen, Conn: conn(), Host: postfixClientIP(l.Text)})
	case strings.HasPrefix(l.Text, "disconnect from "):
		if p.session[key] == 0 {
			return // its connect is before the log's start
		}
		p.add(events.Event{Time: l.Time, Kind: events.ConnClose, Conn: conn(), Host: postfixClientIP(l.Text),
			Count: postfixCount(l.Text, "data"), Reason: "quit"})
	case strings.HasPrefix(l.Text, "NOQUEUE: reject: "):
		_, after, _ := strings.Cut(l.Text, "]: ")
		p.add(events.Event{Time: l.Time, Kind: events.Rejected, Conn: conn(), Host: postfixClientIP(l.Text), Code: replyCode(after), Error: after})
	case strings.Contains(l.Text, "concurrency limit exceeded"):
		p.add(events.Event{Time: l.Time, Kind: events.Refused, Conn: conn(), Host: postfixClientIP(l.Text), Reason: "max_per_ip", Error: l.Text})
	}
}

// courierFields splits Courier's "k=v,k=v" (values may be bracketed or
// quoted and hold commas) into a map; a later key does not replace an
// earlier one.
func courierFields(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			return out
		}
		if i := strings.LastIndexByte(k, ','); i >= 0 { // "started,ip=...": a word with no value first
			k = k[i+1:]
		}
		k = strings.TrimSpace(k)
		var v string
		switch {
		case strings.HasPrefix(rest, "["):
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				end = len(rest) - 1
			}
			v, rest = rest[:end+1], rest[end+1:]
		case strings.HasPrefix(rest, `"`):
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				v, rest = rest[1:], ""
			} else {
				v, rest = rest[1:end+1], rest[end+2:]
			}
		default:
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			v, rest = rest[:end], rest[end:]
		}
		if _, seen := out[k]; !seen {
			out[k] = v
		}
		rest = strings.TrimPrefix(rest, ",")
		if len(rest) >= len(s) {
			return out // no progress: malformed
		}
		s = rest
	}
	return out
}

func unbracket(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]") }

// unmapped writes an IPv4-mapped IPv6 address (Courier listens on an IPv6
// socket) as the IPv4 address.
func unmapped(ip string) string { return strings.TrimPrefix(strings.ToLower(ip), "::ffff:") }

func firstWord(s string) string {
	f, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	return f
}

// replyCode is the SMTP reply code (RFC 5321: 2xx to 5xx) that starts s,
// or 0 when s starts with none: the log's text is not trusted to hold one.
func replyCode(s string) int {
	w := firstWord(s)
	if len(w) != 3 || w[0] < '2' || w[0] > '5' {
		return 0
	}
	code, err := strconv.Atoi(w)
	if err != nil {
		return 0
	}
	return code
}

// replyEnhanced is the RFC 3463 code that opens a reply's text ("550
// 5.1.1 User unknown." gives "5.1.1"), when its class is the reply's; "".
func replyEnhanced(s string) string {
	code, text, _ := strings.Cut(s, " ")
	if replyCode(code) == 0 {
		return ""
	}
	return (&sender.Reply{Code: replyCode(code), Text: text}).Enhanced()
}

// postfixClientIP is the ip of the first "name[ip]" in s.
func postfixClientIP(s string) string {
	open := strings.IndexByte(s, '[')
	if open < 0 {
		return ""
	}
	end := strings.IndexByte(s[open:], ']')
	if end < 0 {
		return ""
	}
	return s[open+1 : open+end]
}

// postfixCount is n of "name=n" or "name=n/m" in a disconnect line.
func postfixCount(s, name string) int {
	for _, f := range strings.Fields(s) {
		v, ok := strings.CutPrefix(f, name+"=")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, "/")
		n, err := strconv.Atoi(v)
		if err == nil && n >= 0 {
			return n
		}
	}
	return 0
}

// fraction reads the fraction of a second that may follow a log line's
// whole seconds (".123456", at most nine digits) and returns it and what
// follows it.
func fraction(rest string) (time.Duration, string) {
	frac, ok := strings.CutPrefix(rest, ".")
	if !ok {
		return 0, rest
	}
	i := 0
	for i < len(frac) && i < 9 && frac[i] >= '0' && frac[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, frac
	}
	ns, _ := strconv.Atoi((frac[:i] + "000000000")[:9])
	return time.Duration(ns), frac[i:]
}
