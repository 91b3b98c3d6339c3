package receiver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
)

// rawClient is a raw SMTP connection for what go-smtp's client will not send;
// its replies keep their text.
type rawClient struct {
	t *testing.T
	c net.Conn
	r *textproto.Reader
}

// dialWire connects and, if greet, reads the 220.
func (l *lab) dialWire(greet bool) *rawClient {
	l.t.Helper()
	c, err := net.Dial("tcp", l.addr)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	w := &rawClient{t: l.t, c: c, r: textproto.NewReader(bufio.NewReader(c))}
	if greet {
		if code, msg := w.reply(); code != 220 {
			l.t.Fatalf("greeting %d %q", code, msg)
		}
	}
	return w
}

// reply reads one reply, waiting at most a minute (a hung server is a bug).
func (w *rawClient) reply() (int, string) {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(time.Minute))
	code, msg, err := w.r.ReadResponse(0)
	if err != nil && code == 0 {
		w.t.Fatalf("reading reply: %v", err)
	}
	return code, msg
}

func (w *rawClient) send(s string) {
	w.t.Helper()
	w.c.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(w.c, s); err != nil {
		w.t.Fatal(err)
	}
}

// cmd sends one line and checks the reply's code; it returns the text.
func (w *rawClient) cmd(line string, want int) string {
	w.t.Helper()
	w.send(line + "\r\n")
	code, msg := w.reply()
	if code != want {
		w.t.Errorf("%.60q: %d %q, want %d", line, code, msg, want)
	}
	return msg
}

// closed asserts the server closes the connection: what is left to read
// ends in EOF (or a reset), never in a read timeout.
func (w *rawClient) closed() {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(time.Minute))
	_, err := io.ReadAll(w.c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		w.t.Fatal("the server did not close the connection")
	}
}

// mailTo opens a transaction for one recipient.
func (w *rawClient) mailTo(rcpt string) {
	w.t.Helper()
	w.cmd("MAIL FROM:<sender@example.com>", 250)
	w.cmd("RCPT TO:<"+rcpt+">", 250)
}

// maildirState checks that tmp/ and cur/ are empty and returns the files
// in new/ by Message-ID, each fully readable.
func maildirState(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	for _, sub := range []string{"tmp", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 0 {
			t.Errorf("%d files in %s/%s", len(ents), dir, sub)
		}
	}
	msgs, err := maildir.Dir(dir).List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, m := range msgs {
		data, err := os.ReadFile(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := out[m.MessageID]; dup {
			t.Errorf("%s delivered twice", m.MessageID)
		}
		out[m.MessageID] = data
	}
	return out
}

// bodyOf is what follows the header of a stored message.
func bodyOf(data []byte) string {
	_, body, _ := strings.Cut(string(data), "\n\n") // a Maildir file has LF line ends, as Courier's
	return body
}

func TestEHLOExtensions(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.MaxMessage = 123456 })
	w := l.dialWire(true)
	text := w.cmd("EHLO "+heloName, 250)
	lines := strings.Split(text, "\n")
	for _, want := range []string{"PIPELINING", "8BITMIME", "SIZE 123456", "ENHANCEDSTATUSCODES"} {
		if !slices.Contains(lines, want) {
			t.Errorf("EHLO lacks %q: %q", want, lines)
		}
	}
	if slices.ContainsFunc(lines, func(s string) bool { return strings.HasPrefix(s, "STARTTLS") || strings.HasPrefix(s, "SMTPUTF8") }) {
		t.Errorf("EHLO offers what the 1999 session did not: %q", lines)
	}
	// HELO gets one line and the session goes on.
	w.cmd("HELO "+heloName, 250)
	w.cmd("QUIT", 221)
}

// The codes a client gets for what it got wrong. A command out of
// sequence is RFC 5321's 503 (4.3.2), where Courier says "502 ESMTP command
// error" (courieresmtpd.c): front.go has go-smtp's 502 say 503, and the
// session's own sequence error, a nested MAIL, is 503 as well.
func TestReplyCodes(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), nil)
	w := l.dialWire(true)
	w.cmd("MAIL FROM:<a@example.org>", 503) // before HELO
	w.cmd("HELO", 501)                      // no argument
	w.cmd("EHLO "+heloName, 250)
	w.cmd("FROB x", 500) // unknown command
	w.cmd("RCPT TO:<"+rcptFoo7+">", 503)
	w.cmd("DATA", 503)
	w.cmd("MAIL FROM:<a@example.org", 501) // unclosed
	w.cmd("MAIL FROM:<a@example.org> BOGUS=1", 500)
	w.cmd("MAIL FROM:<a@example.org>", 250)
	w.cmd("MAIL FROM:<b@example.org>", 503)
	w.cmd("RCPT TO:<"+rcptFoo7, 501)
	w.cmd("RCPT TO:<recipient@elsewhere.org>", 550)
	w.cmd("DATA", 503) // no recipient accepted
	w.cmd("RCPT TO:<"+rcptFoo7+">", 250)
	w.cmd("DATA x", 501)
	w.cmd("RSET", 250)
	w.cmd("NOOP", 250)
	w.cmd("QUIT", 221)
	w.closed()
	l.close()
	l.expectEmpty()
}

func TestRelayNeverOpen(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), nil)
	c, _ := l.client()
	if err := c.Mail("sender@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"someone@example.org", "recipient@example.com.evil.org", "recipient@[127.0.0.1]"} {
		code, ec, _ := smtpCode(c.Rcpt(r, nil))
		if code != 550 || ec != (smtp.EnhancedCode{5, 7, 1}) {
			t.Errorf("RCPT %s: %d %v, want 550 5.7.1", r, code, ec)
		}
	}
	c.Quit()
	l.close()
	l.expectEmpty()
}

func TestOverSize(t *testing.T) {
	const limit = 2048
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.MaxMessage = limit })
	w := l.dialWire(true)
	w.cmd("EHLO "+heloName, 250)
	if msg := w.cmd(fmt.Sprintf("MAIL FROM:<a@example.org> SIZE=%d", limit+1), 552); !strings.HasPrefix(msg, "5.3.4 ") {
		t.Errorf("SIZE over the limit: %q", msg)
	}
	// Declared small, sent big: refused at the end of data.
	w.cmd("MAIL FROM:<a@example.org> SIZE=100", 250)
	w.cmd("RCPT TO:<"+rcptFoo7+">", 250)
	w.cmd("DATA", 354)
	w.send(message("big@test") + strings.Repeat("x", 70) + "\r\n")
	for range limit / 70 {
		w.send(strings.Repeat("y", 70) + "\r\n")
	}
	w.cmd(".", 552)
	// The session goes on, and a message within the limit is taken.
	w.mailTo(rcptFoo7)
	w.cmd("DATA", 354)
	w.cmd(message("small@test")+".", 250)
	w.cmd("QUIT", 221)
	l.close()
	got := maildirState(t, string(l.dir))
	if len(got) != 1 || got["<small@test>"] == nil {
		t.Errorf("Maildir holds %d messages, want only <small@test>", len(got))
	}
}

func TestBOFHCheckDNS(t *testing.T) {
	zone := clientZone()
	zone.A["a-only.example.org"] = []string{"192.0.2.1"}
	zone.MX = map[string][]dnsstub.MX{"mx.example.org": {{Pref: 10, Host: clientName}}}
	noChecks := func(c *Config) { c.ReverseDNS, c.Ident, c.Blacklists = false, false, nil }
	t.Run("on", func(t *testing.T) {
		l := startLab(t, dnsConfig(zone, nil), func(c *Config) { noChecks(c); c.BOFHCheckDNS = true })
		w := l.dialWire(true)
		w.cmd("EHLO "+heloName, 250)
		msg := w.cmd("MAIL FROM:<a@nowhere.example.org>", 517)
		if want := "Domain does not exist: nowhere.example.org.\n5.1.8 Invalid domain, see <URL:https://www.ietf.org/rfc/rfc1035.txt>"; msg != want {
			t.Errorf("reply %q, want %q", msg, want)
		}
		for _, ok := range []string{"<a@mx.example.org>", "<a@a-only.example.org>", "<>"} {
			w.cmd("MAIL FROM:"+ok, 250)
			w.cmd("RSET", 250)
		}
		w.cmd("QUIT", 221)
		l.close()
		// nowhere: MX NXDOMAIN; mx: MX; a-only: MX NODATA then A.
		var got []string
		for _, e := range ofKind(l.log.Events(), events.Check) {
			got = append(got, e.Check+" "+e.Name+" "+e.QType+" "+e.Result)
		}
		want := []string{
			"mailfrom nowhere.example.org MX NXDOMAIN",
			"mailfrom mx.example.org MX " + clientName,
			"mailfrom a-only.example.org MX NODATA",
			"mailfrom a-only.example.org A 192.0.2.1",
		}
		if !slices.Equal(got, want) {
			t.Errorf("checks %q, want %q", got, want)
		}
		if n := len(l.dnsLog.Events()); n != 4 {
			t.Errorf("%d DNS queries, want 4", n)
		}
	})
	t.Run("off", func(t *testing.T) {
		l := startLab(t, dnsConfig(zone, nil), noChecks)
		w := l.dialWire(true)
		w.cmd("EHLO "+heloName, 250)
		w.cmd("MAIL FROM:<a@nowhere.example.org>", 250)
		w.cmd("QUIT", 221)
		l.close()
		if n := len(l.dnsLog.Events()); n != 0 {
			t.Errorf("%d DNS queries with the check off", n)
		}
	})
	t.Run("DNS down", func(t *testing.T) {
		dc := dnsConfig(zone, nil)
		dc.QueryDelay = time.Hour
		l := startLab(t, dc, func(c *Config) {
			noChecks(c)
			c.BOFHCheckDNS = true
			c.DNSTimeout = duration.Duration(10 * time.Millisecond)
		})
		w := l.dialWire(true)
		w.cmd("EHLO "+heloName, 250)
		if msg := w.cmd("MAIL FROM:<a@mx.example.org>", 417); !strings.Contains(msg, "DNS lookup failure: mx.example.org.") {
			t.Errorf("reply %q", msg)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.CommandTimeout = duration.Duration(100 * time.Millisecond) })
	w := l.dialWire(true)
	if code, msg := w.reply(); code != 421 {
		t.Errorf("idle client got %d %q, want 421", code, msg)
	}
	w.closed()
	l.close()
	if n := l.log.Counts()[events.ConnClose]; n != 1 {
		t.Errorf("%d ConnClose events, want 1", n)
	}
}

// A client stalling inside DATA is cut off after DataTimeout; what it sent
// is not delivered; a session running beside it is unharmed.
func TestDataStall(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.DataTimeout = duration.Duration(300 * time.Millisecond) })
	w := l.dialWire(true)
	w.cmd("EHLO "+heloName, 250)
	w.mailTo(rcptFoo7)
	w.cmd("DATA", 354)
	w.send(message("stalled@test") + "half a li")
	// Beside it, a whole session.
	l.send([]string{rcptFoo7}, message("beside@test"))
	code, msg := w.reply()
	if code != 421 || !strings.HasPrefix(msg, "4.4.2 ") {
		t.Errorf("stalled client got %d %q, want 421 4.4.2", code, msg)
	}
	w.closed()
	l.close()
	got := maildirState(t, string(l.dir))
	if len(got) != 1 || got["<beside@test>"] == nil {
		t.Errorf("Maildir holds %d messages, want only <beside@test>", len(got))
	}
	var codes []int
	for _, e := range ofKind(l.log.Events(), events.Command) {
		if e.Name == "DATA" {
			codes = append(codes, e.Code)
		}
	}
	slices.Sort(codes)
	if !slices.Equal(codes, []int{250, 421}) {
		t.Errorf("DATA answered %v, want 250 and 421", codes)
	}
}

var receivedRE = regexp.MustCompile(`^Received: from ` + regexp.QuoteMeta(heloName) + ` \(` + regexp.QuoteMeta(clientName) + ` \[127\.0\.0\.1\]\)\n` +
	`  \(IDENT: ` + identUser + `\)\n` +
	`  by ` + regexp.QuoteMeta(hostname) + ` with ESMTP\n` +
	`  id [0-9A-F]{16}\.[0-9A-F]{16}\.[0-9A-F]{8}; (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}\n$`)

// The top of each stored message, as Courier writes it: courierlocal's
// Delivered-To and Return-Path, then submit's Received.
func TestReceivedHeader(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), nil)
	l.send([]string{"Recipient-Foo-7@7.FOO.example.com."}, message("rcvd@test"))
	l.close()
	got := maildirState(t, string(l.dir))
	data := string(got["<rcvd@test>"])
	head, rest, ok := strings.Cut(data, "Received: ")
	if !ok {
		t.Fatalf("no Received: header in %q", data)
	}
	if want := "Delivered-To: " + rcptFoo7 + "\nReturn-Path: <sender@example.com>\n"; head != want {
		t.Errorf("first lines %q, want %q", head, want)
	}
	rcv, _, _ := strings.Cut("Received: "+rest, "Message-ID:")
	if !receivedRE.MatchString(rcv) {
		t.Errorf("Received: header\n%s\nnot in Courier's format", rcv)
	}

	t.Run("no PTR, no ident, odd HELO", func(t *testing.T) {
		l := startLab(t, dnsConfig(dnsstub.Zone{}, nil), func(c *Config) { c.Ident = false })
		w := l.dialWire(true)
		w.cmd("HELO odd\x01name\x7f", 250)
		w.mailTo(rcptFoo7)
		w.cmd("DATA", 354)
		w.cmd(message("bare@test")+".", 250)
		w.cmd("QUIT", 221)
		l.close()
		data := string(maildirState(t, string(l.dir))["<bare@test>"])
		if !strings.Contains(data, "\nReceived: from odd_name_ ([127.0.0.1])\n  by "+hostname+" with ESMTP\n  id ") {
			t.Errorf("Received: without PTR and IDENT wrong:\n%s", data)
		}
	})
}

// The 1999 benchmark's spam filter is "enabled, no filter": the hook
// alone. The two other modes: a fixed delay, and a command whose verdict
// decides.
func TestFilter(t *testing.T) {
	t.Run("delay", func(t *testing.T) {
		const delay = 50 * time.Millisecond
		l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.Filter = Filter{Mode: FilterDelay, Delay: duration.Duration(delay)} })
		l.send([]string{rcptFoo7}, message("delay@test"))
		l.close()
		if len(maildirState(t, string(l.dir))) != 1 {
			t.Error("message not delivered")
		}
		for _, e := range ofKind(l.log.Events(), events.Command) {
			if e.Name == "DATA" && e.Duration < delay {
				t.Errorf("DATA took %v, less than the filter's delay %v", e.Duration, delay)
			}
		}
	})
	t.Run("command", func(t *testing.T) {
		dir := t.TempDir()
		script := filepath.Join(dir, "filter.sh")
		err := os.WriteFile(script, []byte(`#!/bin/sh
cat > "$0.seen"
grep -q REPLY550 "$0.seen" && { echo "554 5.7.1 Spam detected here"; exit 0; }
grep -q EXIT75 "$0.seen" && exit 75
grep -q EXIT77 "$0.seen" && exit 77
grep -q EXIT99 "$0.seen" && exit 99
exit 0
`), 0o755)
		if err != nil {
			t.Fatal(err)
		}
		l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.Filter = Filter{Mode: FilterCommand, Command: []string{script}} })
		w := l.dialWire(true)
		w.cmd("EHLO "+heloName, 250)
		for _, tc := range []struct {
			id, word string
			code     int
			text     string
		}{
			{"ok@test", "clean", 250, ""},
			{"reply@test", "REPLY550", 554, "5.7.1 Spam detected here"},
			{"temp@test", "EXIT75", 451, "4.7.1 "},
			{"perm@test", "EXIT77", 550, "5.7.1 "},
			{"ninetynine@test", "EXIT99", 250, ""},
		} {
			w.mailTo(rcptFoo7)
			w.cmd("DATA", 354)
			if msg := w.cmd(message(tc.id)+tc.word+"\r\n.", tc.code); !strings.HasPrefix(msg, tc.text) {
				t.Errorf("%s: %q, want %q", tc.id, msg, tc.text)
			}
		}
		w.cmd("QUIT", 221)
		l.close()
		got := maildirState(t, string(l.dir))
		if len(got) != 2 || got["<ok@test>"] == nil || got["<ninetynine@test>"] == nil {
			t.Errorf("delivered %d messages, want <ok@test> and <ninetynine@test>", len(got))
		}
		seen, err := os.ReadFile(script + ".seen")
		if err != nil || !strings.HasPrefix(string(seen), "Received: from ") {
			t.Errorf("the filter saw %q (%v), want the message with its Received: header", seen, err)
		}
	})
}

func TestDotCourierLookup(t *testing.T) {
	loc, err := Delivery{Maildir: "/def", Rules: []Rule{
		{File: "-foo-7", Maildirs: nil},
		{File: "-foo-default"},
		{File: "-a:b"},
		{File: "-default"},
	}}.prepare()
	if err != nil {
		t.Fatal(err)
	}
	for ext, want := range map[string]string{
		"":        "",
		"foo-7":   ".courier-foo-7",
		"foo-8":   ".courier-foo-default",
		"foo-7-x": ".courier-foo-default",
		"foo":     ".courier-default",
		"bar":     ".courier-default",
		"A.B":     ".courier-a:b",
		"x-y-z":   ".courier-default",
	} {
		if _, file, ok := loc.lookup(ext); !ok || file != want {
			t.Errorf("extension %q: %q (found %v), want %q", ext, file, ok, want)
		}
	}
	loc, err = Delivery{Maildir: "/def", Rules: []Rule{{File: "-foo-default"}}}.prepare()
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"foo", "bar", "foo:x"} {
		if _, file, ok := loc.lookup(ext); ok {
			t.Errorf("extension %q found %q without a .courier-default", ext, file)
		}
	}
	for _, bad := range [][]Rule{{{File: "foo"}}, {{File: "-a.b"}}, {{File: "-x/y"}}, {{File: "-d"}, {File: "-D"}}} {
		if _, err := (Delivery{Rules: bad}).prepare(); err == nil {
			t.Errorf("rules %+v accepted", bad)
		}
	}
}

// Extension rules over the wire: several dot-courier files, several
// Maildirs, one copy per Maildir a file lists.
func TestExtensionRules(t *testing.T) {
	base := t.TempDir()
	md := func(n string) string { return filepath.Join(base, n) }
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) {
		c.Maildir = md("default")
		c.Rules = []Rule{
			{File: "-foo-default", Maildirs: []string{md("foo")}},
			{File: "-both", Maildirs: []string{md("foo"), md("other")}},
		}
	})
	c, _ := l.client()
	if err := c.Mail("sender@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for rcpt, code := range map[string]int{
		"recipient-foo-7@7.foo.example.com": 250,
		"recipient-both@x.example.com":      250,
		"recipient@x.example.com":           250,
		"recipient-foo@x.example.com":       550, // .courier-foo-default does not cover -foo
		"recipient-bar@x.example.com":       550, // no .courier-default
		"recipient-both-1@x.example.com":    550,
	} {
		if got, _, _ := smtpCode(c.Rcpt(rcpt, nil)); got != code && !(code == 250 && got == 0) {
			t.Errorf("RCPT %s: %d, want %d", rcpt, got, code)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, message("rules@test"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	l.close()
	deliveredTo := func(dir string) []string {
		if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
			t.Errorf("%d files in %s/tmp", len(tmp), dir)
		}
		msgs, err := maildir.Dir(dir).List()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range msgs {
			data, err := os.ReadFile(m.Path)
			if err != nil {
				t.Fatal(err)
			}
			dt, _, _ := strings.Cut(string(data), "\n")
			out = append(out, strings.TrimPrefix(dt, "Delivered-To: "))
		}
		slices.Sort(out)
		return out
	}
	for dir, want := range map[string][]string{
		md("foo"):     {"recipient-both@x.example.com", "recipient-foo-7@7.foo.example.com"},
		md("other"):   {"recipient-both@x.example.com"},
		md("default"): {"recipient@x.example.com"},
	} {
		if got := deliveredTo(dir); !slices.Equal(got, want) {
			t.Errorf("%s holds copies for %q, want %q", filepath.Base(dir), got, want)
		}
	}
	if n := l.log.Counts()[events.Delivered]; n != 4 {
		t.Errorf("%d Delivered events, want 4 (one per file)", n)
	}
}

// Events of one session: a Command per MAIL, RCPT and DATA with its code,
// Received when the data is in, then Delivered per file.
func TestSessionEvents(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), nil)
	w := l.dialWire(true)
	w.cmd("EHLO "+heloName, 250)
	w.cmd("MAIL FROM:<sender@example.com>", 250)
	w.cmd("RCPT TO:<someone@example.org>", 550)
	w.cmd("RCPT TO:<"+rcptFoo7+">", 250)
	w.cmd("DATA", 354)
	w.cmd(message("ev@test")+".", 250)
	w.cmd("QUIT", 221)
	w.closed()
	l.close()
	var got []string
	for _, e := range l.log.Events() {
		switch e.Kind {
		case events.Command:
			got = append(got, fmt.Sprintf("command %s %d", e.Name, e.Code))
		case events.Received:
			got = append(got, fmt.Sprintf("received %s %s %v %d", e.MessageID, e.From, e.Rcpts, e.SizeIn))
		case events.Delivered:
			got = append(got, fmt.Sprintf("delivered %s %v", e.MessageID, e.Rcpts))
		case events.Rejected:
			got = append(got, fmt.Sprintf("rejected %d", e.Code))
		}
	}
	want := []string{
		"command MAIL 250",
		"rejected 550",
		"command RCPT 550",
		"command RCPT 250",
		fmt.Sprintf("received <ev@test> sender@example.com [%s] %d", rcptFoo7, len(message("ev@test"))),
		"delivered <ev@test> [" + rcptFoo7 + "]",
		"command DATA 250",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
}

// Bad input, each in its own session while a well-behaved client keeps
// sending beside it: each gets a proper answer or is closed, the other
// session is unharmed, and nothing partial reaches the Maildir.
func TestBadInput(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.MaxSessions = 8 })
	good, _ := l.client()
	var mu sync.Mutex
	sent := 0
	goodSend := func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		sent++
		if err := sendOn(good, []string{rcptFoo7}, message(fmt.Sprintf("good%d@test", sent))); err != nil {
			t.Fatalf("the well-behaved session was harmed: %v", err)
		}
	}
	bodies := map[string]string{} // Message-ID -> body the receiver must store

	t.Run("malformed commands", func(t *testing.T) {
		w := l.dialWire(true)
		w.cmd("EHLO "+heloName, 250)
		w.cmd("MAIL FROM:<<a@b>>", 501)
		w.cmd("RCPT", 503)
		w.cmd("MAIL FROM:<a@b> SIZE=abc", 501)
		w.cmd("EHLO "+heloName+"\x00x", 250)
		w.cmd("NOOP", 250)
		goodSend()
		w.cmd("\x00\x00\x00", 500)
		w.cmd("BDAT", 500)
		w.cmd("MAIL FROM:<a@b>", 250)
		w.cmd("RCPT TO:<recipient-\x00@x.example.com>", 553)
		w.cmd("QUIT", 221)
		w.closed()
	})
	t.Run("over-long line", func(t *testing.T) {
		// One reply, and the session goes on, as courieresmtpd's
		// iovreadline (esmtpiov.c) answers what fits and skips the rest.
		w := l.dialWire(true)
		w.cmd("EHLO "+heloName, 250)
		w.send("NOOP " + strings.Repeat("x", maxCommandLine) + "\r\n")
		if code, msg := w.reply(); code != 500 || !strings.Contains(msg, "Line too long") {
			t.Errorf("%d-byte line: %d %q", maxCommandLine+7, code, msg)
		}
		w.cmd("NOOP", 250)
		w.cmd("QUIT", 221)
		w.closed()
		goodSend()
	})
	t.Run("talking before the greeting", func(t *testing.T) {
		w := l.dialWire(false)
		w.send("EHLO " + heloName + "\r\nMAIL FROM:<a@b>\r\n")
		for _, want := range []int{220, 250, 250} {
			if code, msg := w.reply(); code != want {
				t.Errorf("early talker: %d %q, want %d", code, msg, want)
			}
		}
		w.cmd("QUIT", 221)
		goodSend()
	})
	t.Run("bare LF and NUL in DATA", func(t *testing.T) {
		w := l.dialWire(true)
		w.cmd("EHLO "+heloName, 250)
		w.mailTo(rcptFoo7)
		w.cmd("DATA", 354)
		// "\n.\n" does not end the message (no smuggling), a NUL is kept.
		body := "bare\nline\n.\nstill in\x00side\r\n"
		w.cmd("Message-ID: <lf@test>\r\n\r\n"+body+".", 250)
		bodies["<lf@test>"] = strings.ReplaceAll(body, "\r\n", "\n")
		w.cmd("QUIT", 221)
		goodSend()
	})
	t.Run("dot-stuffing", func(t *testing.T) {
		w := l.dialWire(true)
		w.cmd("EHLO "+heloName, 250)
		w.mailTo(rcptFoo7)
		w.cmd("DATA", 354)
		// Any leading dot is taken off (RFC 5321 4.5.2, and Courier's
		// data() in courieresmtpd.c): ".." is a line ".", "...x" is
		// "..x", ". " is " "; a "." after text, not after CRLF, ends
		// nothing.
		w.send("Message-ID: <dots@test>\r\n\r\n..\r\n...x\r\n. \r\nend.")
		w.send("\r\n.\r\n")
		if code, msg := w.reply(); code != 250 {
			t.Errorf("end of data: %d %q", code, msg)
		}
		bodies["<dots@test>"] = ".\n..x\n \nend.\n"
		// A message of no lines at all.
		w.mailTo(rcptFoo7)
		w.cmd("DATA", 354)
		w.cmd(".", 250)
		w.cmd("QUIT", 221)
		goodSend()
	})
	t.Run("closed inside DATA", func(t *testing.T) {
		w := l.dialWire(true)
		w.cmd("EHLO "+heloName, 250)
		w.mailTo(rcptFoo7)
		w.cmd("DATA", 354)
		w.send("Message-ID: <cut@test>\r\n\r\nhalf")
		w.c.Close()
		goodSend()
	})
	if err := good.Quit(); err != nil {
		t.Errorf("QUIT of the well-behaved session: %v", err)
	}
	l.close()
	got := maildirState(t, string(l.dir))
	for i := 1; i <= sent; i++ {
		if got[fmt.Sprintf("<good%d@test>", i)] == nil {
			t.Errorf("<good%d@test> not delivered", i)
		}
	}
	for id, body := range bodies {
		if b := bodyOf(got[id]); b != body {
			t.Errorf("%s stored body %q, want %q", id, b, body)
		}
	}
	if got["<cut@test>"] != nil {
		t.Error("a message cut off inside DATA was delivered")
	}
	// good messages, the two bodies and the empty message.
	if want := sent + len(bodies) + 1; len(got) != want {
		t.Errorf("%d messages in the Maildir, want %d", len(got), want)
	}
}
