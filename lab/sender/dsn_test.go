package sender

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// TestDSN: a recipient refused with 550 at RCPT gets the original sender
// a DSN through the queue: MAIL FROM:<> to the sender, an RFC 3464
// multipart/report naming the recipient with the server's reply as its
// Diagnostic-Code. The other recipient gets the message; the events tie
// the Failed original to the DSN's own Queued event.
func TestDSN(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) { f.rcptErr = rejectRcpt("bad@h.test", 550) })
	cfg := testConfig(t, f.addr)
	q := openQueue(t, cfg.QueueDir)
	orig := put(t, q, "<orig@dsn.test>", "author@src.test", "bad@h.test", "good@h.test")
	_, log := startSender(t, cfg)
	labtest.Until(t, "the DSN delivered and the queue empty", func() bool {
		return len(queueIDs(t, q)) == 0 && countEvents(log, events.Sent, "") == 2
	})

	var dsns []delivery
	for _, d := range get(f, func(f *fake) []delivery { return f.deliveries }) {
		if d.MessageID != orig.MessageID {
			dsns = append(dsns, d)
		}
	}
	if len(dsns) != 1 {
		t.Fatalf("%d DSNs delivered, want 1: %+v", len(dsns), dsns)
	}
	d := dsns[0]
	if d.From != "" || len(d.Rcpts) != 1 || d.Rcpts[0] != "author@src.test" {
		t.Errorf("DSN envelope MAIL FROM:<%s> RCPT %v, want <> to author@src.test", d.From, d.Rcpts)
	}
	checkOnce(t, f, []string{"<orig@dsn.test> good@h.test", d.MessageID + " author@src.test"})

	m, err := mail.ReadMessage(bytes.NewReader(d.Body))
	if err != nil {
		t.Fatalf("DSN does not parse: %v\n%s", err, d.Body)
	}
	if from := m.Header.Get("From"); !strings.Contains(from, "<MAILER-DAEMON@sender.test>") {
		t.Errorf("DSN From %q, want MAILER-DAEMON@sender.test", from)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type %q (%v), want multipart/report; report-type=delivery-status", m.Header.Get("Content-Type"), err)
	}
	parts := map[string]string{}
	var order []string
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("DSN part: %v\n%s", err, d.Body)
		}
		b, _ := io.ReadAll(p)
		b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) // as it came over SMTP
		ct := p.Header.Get("Content-Type")
		ct, _, _ = strings.Cut(ct, ";")
		parts[ct] = string(b)
		order = append(order, ct)
	}
	if strings.Join(order, ",") != "text/plain,message/delivery-status,text/rfc822-headers" {
		t.Errorf("DSN parts %v, want text/plain, message/delivery-status, text/rfc822-headers", order)
	}
	status := parts["message/delivery-status"]
	for _, want := range []string{
		"Reporting-MTA: dns; sender.test\n",
		"Final-Recipient: rfc822; bad@h.test\n",
		"Action: failed\n",
		"Remote-MTA: dns; 127.0.0.1\n",
		"Status: 5.0.0\n",
		"Diagnostic-Code: smtp; 550 5.0.0 fake says 550\n",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, status)
		}
	}
	if strings.Contains(status, "good@h.test") {
		t.Errorf("delivery-status names the delivered recipient:\n%s", status)
	}
	if !strings.Contains(parts["text/rfc822-headers"], "Message-ID: <orig@dsn.test>\n") {
		t.Errorf("DSN does not carry the original's header:\n%s", parts["text/rfc822-headers"])
	}

	failed := eventsOf(log, events.Failed)
	if len(failed) != 1 || failed[0].MessageID != orig.MessageID || !strings.Contains(failed[0].Error, "dsn queued") ||
		!strings.Contains(failed[0].Error, d.MessageID) {
		t.Errorf("Failed events %+v, want one for %s saying dsn queued %s", failed, orig.MessageID, d.MessageID)
	}
	var queuedDSN int
	for _, e := range eventsOf(log, events.Queued) {
		if e.MessageID == d.MessageID && e.From == "" {
			queuedDSN++
		}
	}
	if queuedDSN != 1 {
		t.Errorf("%d Queued events for the DSN %s, want 1", queuedDSN, d.MessageID)
	}
}

// TestNoDSN: a permanent failure makes no DSN when the message came from
// the null sender (a bounce never bounces: no loops), when the DSN itself
// bounces, or when Bounce is "record".
func TestNoDSN(t *testing.T) {
	for _, tc := range []struct {
		name, from, bounce string
		queued             int // Queued events: the original, and the DSN if any
	}{
		{name: "null sender", from: "", queued: 1},
		{name: "record only", from: "author@src.test", bounce: BounceRecord, queued: 1},
		{name: "the DSN bounces too", from: "bad2@h.test", queued: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.set(func(f *fake) {
				f.rcptErr = func(_ int, to string) error {
					if strings.HasPrefix(to, "bad") {
						return smtpErr(550)
					}
					return nil
				}
			})
			cfg := testConfig(t, f.addr)
			cfg.Bounce = tc.bounce
			q := openQueue(t, cfg.QueueDir)
			put(t, q, "<nodsn@dsn.test>", tc.from, "bad@h.test")
			_, log := startSender(t, cfg)
			// A DSN is committed to the queue before the Failed event that
			// names it is logged, so once every Failed event is in and the
			// queue is empty, no DSN can still come.
			labtest.Until(t, "every failure logged and the queue empty", func() bool {
				return countEvents(log, events.Failed, "") == tc.queued && len(queueIDs(t, q)) == 0
			})
			if n := countEvents(log, events.Queued, ""); n != tc.queued {
				t.Errorf("%d Queued events, want %d: %+v", n, tc.queued, eventsOf(log, events.Queued))
			}
			if n := len(f.delivered()); n != 0 {
				t.Errorf("%d deliveries, want none", n)
			}
			for _, e := range eventsOf(log, events.Failed) {
				if strings.Contains(e.Error, "dsn queued") != (tc.queued == 2 && e.MessageID == "<nodsn@dsn.test>") {
					t.Errorf("Failed event %+v: dsn note wrong", e)
				}
			}
		})
	}
}

// TestDSNAfterTemporaryFailures: a recipient the peer keeps answering
// "450 4.3.0" at RCPT fails for good after max_attempts. The DSN reports
// the peer's last reply: Diagnostic-Code is the 450 as it came (RFC 3464
// 2.3.6), Status its enhanced code 4.3.0, kept beside Action: failed
// (failure.status says why), Remote-MTA the peer. Every try's Attempt
// event carries the reply: code, enhanced code and text.
func TestDSNAfterTemporaryFailures(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) {
		f.rcptErr = func(_ int, to string) error {
			if to == "busy@h.test" {
				return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "fake is busy"}
			}
			return nil
		}
	})
	cfg := testConfig(t, f.addr)
	cfg.MaxAttempts = 3
	q := openQueue(t, cfg.QueueDir)
	orig := put(t, q, "<busy@dsn.test>", "author@src.test", "busy@h.test")
	_, log := startSender(t, cfg)
	labtest.Until(t, "the DSN delivered and the queue empty", func() bool {
		return len(queueIDs(t, q)) == 0 && countEvents(log, events.Sent, "") == 1
	})
	status := dsnStatus(t, f, orig.MessageID)
	for _, want := range []string{
		"Final-Recipient: rfc822; busy@h.test\n",
		"Action: failed\n",
		"Status: 4.3.0\n",
		"Remote-MTA: dns; 127.0.0.1\n",
		"Diagnostic-Code: smtp; 450 4.3.0 fake is busy\n",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, status)
		}
	}
	tries := 0
	for _, e := range eventsOf(log, events.Attempt) {
		if e.QueueID != orig.ID {
			continue // the DSN's own
		}
		tries++
		if e.Result != "temporary" || e.Code != 450 || e.Enhanced != "4.3.0" || e.Error != "RCPT TO:<busy@h.test>: 450 4.3.0 fake is busy" {
			t.Errorf("attempt %+v, want temporary, 450, 4.3.0 and the reply after its command", e)
		}
	}
	if tries != 3 {
		t.Errorf("%d attempts, want max_attempts 3", tries)
	}
}

// TestAttemptReplies: each Attempt event carries the peer's reply that
// decided it: a 5xx refusal (permanent), a 4xx (temporary) and the 2xx to
// the end of data (ok), each with its code, enhanced code and text.
func TestAttemptReplies(t *testing.T) {
	f := newFake(t)
	var busy atomic.Int32
	f.set(func(f *fake) {
		f.rcptErr = func(_ int, to string) error {
			switch {
			case to == "bad@h.test":
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			case to == "busy@h.test" && busy.Add(1) == 1:
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
			}
			return nil
		}
	})
	cfg := testConfig(t, f.addr)
	q := openQueue(t, cfg.QueueDir)
	// From the null sender: the refused recipient makes no DSN.
	orig := put(t, q, "<replies@dsn.test>", "", "bad@h.test", "busy@h.test", "good@h.test")
	_, log := startSender(t, cfg)
	labtest.Until(t, "the queue empty", queueEmpty(t, q))

	var got []string
	for _, e := range eventsOf(log, events.Attempt) {
		if e.QueueID != orig.ID {
			t.Errorf("attempt for %s, want only %s's: %+v", e.QueueID, orig.ID, e)
		}
		got = append(got, fmt.Sprintf("%s %d %q %q %q", e.Result, e.Code, e.Enhanced, e.Error, e.Reason))
	}
	// In the order deliver logs them: the refusal as the replies are
	// sorted, the delivery, then the deferral as busy@h.test is handed
	// to retry; then busy@h.test's second try.
	const ok = `ok 250 "2.0.0" "" "250 2.0.0 OK: queued"`
	want := []string{
		`permanent 550 "5.1.1" "RCPT TO:<bad@h.test>: 550 5.1.1 no such user" ""`,
		ok,
		`temporary 451 "4.3.0" "RCPT TO:<busy@h.test>: 451 4.3.0 try later" ""`,
		ok,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("attempts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAttemptNoReply: a try that no server answered, because the
// connection was refused or the server never greeted, has an Attempt
// event with no code that says there was no reply; the DSN after the last
// try has Status 5.0.0 and the lab's own words as its Diagnostic-Code,
// never an smtp one.
func TestAttemptNoReply(t *testing.T) {
	for _, tc := range []struct {
		name      string
		relay     func(t *testing.T) string
		error     string // how the attempts' Error starts
		remoteMTA bool   // a server was reached: the DSN names it
	}{
		{name: "refused", relay: closedPort, error: "no reply: connect 127.0.0.1:"},
		{name: "never greets", relay: func(t *testing.T) string {
			f := newFake(t)
			f.set(func(f *fake) { f.mute = true })
			return f.addr
		}, error: "no reply: greeting: ", remoteMTA: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			author := newFake(t) // the DSN's destination
			cfg := testConfig(t, tc.relay(t))
			cfg.Routes = append([]Route{{Domain: "src.test", Relay: author.addr}}, cfg.Routes...)
			cfg.GreetingTimeout = duration.Duration(30 * time.Millisecond)
			cfg.MaxAttempts = 2
			q := openQueue(t, cfg.QueueDir)
			orig := put(t, q, "<silent@dsn.test>", "author@src.test", "u@h.test")
			_, log := startSender(t, cfg)
			labtest.Until(t, "the DSN delivered and the queue empty", func() bool {
				return len(queueIDs(t, q)) == 0 && countEvents(log, events.Sent, "") == 1
			})
			tries := 0
			for _, e := range eventsOf(log, events.Attempt) {
				if e.QueueID != orig.ID {
					continue
				}
				tries++
				if e.Result != "temporary" || e.Code != 0 || e.Enhanced != "" || !strings.HasPrefix(e.Error, tc.error) {
					t.Errorf("attempt %+v, want temporary, no code, and an error starting %q", e, tc.error)
				}
			}
			if tries != 2 {
				t.Errorf("%d attempts, want max_attempts 2", tries)
			}
			status := dsnStatus(t, author, orig.MessageID)
			if !strings.Contains(status, "Status: 5.0.0\n") || !strings.Contains(status, "Diagnostic-Code: X-Smtplab; gave up after 2 attempts: ") ||
				strings.Contains(status, "smtp;") || strings.Contains(status, "Remote-MTA:") != tc.remoteMTA {
				t.Errorf("delivery-status (Remote-MTA wanted: %v):\n%s", tc.remoteMTA, status)
			}
		})
	}
}

// TestDSNKeepsLastPeerReply: a peer answers "450 4.3.0", then its port is
// closed and every later try is refused. The DSN reports the 450, the
// last word of a server the sender reached, not the refusals that came
// after it, as Courier's find_delivery_info (courier/module.dsn/dsn.C)
// chooses; the Failed event names both.
func TestDSNKeepsLastPeerReply(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) {
		f.rcptErr = func(_ int, to string) error {
			if to == "u@h.test" {
				return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "fake is busy"}
			}
			return nil
		}
	})
	cfg := testConfig(t, oneConnection(t, f.addr))
	cfg.Routes = append([]Route{{Domain: "src.test", Relay: f.addr}}, cfg.Routes...)
	cfg.MaxAttempts = 3
	cfg.MaxPerConnection = 1 // each try on a connection of its own
	q := openQueue(t, cfg.QueueDir)
	orig := put(t, q, "<flaky@dsn.test>", "author@src.test", "u@h.test")
	_, log := startSender(t, cfg)
	labtest.Until(t, "the DSN delivered and the queue empty", func() bool {
		return len(queueIDs(t, q)) == 0 && countEvents(log, events.Sent, "") == 1
	})
	var tries []events.Event
	for _, e := range eventsOf(log, events.Attempt) {
		if e.QueueID == orig.ID {
			tries = append(tries, e)
		}
	}
	want := []struct {
		code  int
		error string // its start
	}{{450, "RCPT TO:<u@h.test>: 450 4.3.0 fake is busy"}, {0, "no reply: connect "}, {0, "no reply: connect "}}
	if len(tries) != len(want) {
		t.Fatalf("%d attempts, want %d: %+v", len(tries), len(want), tries)
	}
	for i, w := range want {
		if tries[i].Code != w.code || !strings.HasPrefix(tries[i].Error, w.error) {
			t.Errorf("attempt %d: code %d, error %q; want %d, %q...", i+1, tries[i].Code, tries[i].Error, w.code, w.error)
		}
	}
	status := dsnStatus(t, f, orig.MessageID)
	for _, want := range []string{"Status: 4.3.0\n", "Remote-MTA: dns; 127.0.0.1\n", "Diagnostic-Code: smtp; 450 4.3.0 fake is busy\n"} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, status)
		}
	}
	failed := eventsOf(log, events.Failed)
	if len(failed) != 1 || failed[0].Code != 450 || !strings.Contains(failed[0].Error, "connect 127.0.0.1:") ||
		!strings.Contains(failed[0].Error, "450 4.3.0 fake is busy") {
		t.Errorf("Failed events %+v, want one with code 450 naming the refusal and the 450", failed)
	}
}

// TestReplyStatus: the enhanced code read from a reply, and the DSN
// Status of a failure that came to it.
func TestReplyStatus(t *testing.T) {
	for _, tc := range []struct {
		err      error
		enhanced string
		status   string
	}{
		{&Reply{Code: 450, Text: "4.3.0 busy"}, "4.3.0", "4.3.0"},
		{fmt.Errorf("gave up after 3 attempts: %w", fmt.Errorf("RCPT TO:<a@b.test>: %w", &Reply{Code: 450, Text: "4.3.0 busy"})), "4.3.0", "4.3.0"},
		{&Reply{Code: 550, Text: "5.1.1 no such user"}, "5.1.1", "5.1.1"},
		{&Reply{Code: 451, Text: "4.7.1 greylisted\n4.7.1 come back later"}, "4.7.1", "4.7.1"},
		{&Reply{Code: 452, Text: "too many recipients"}, "", "4.0.0"},
		{&Reply{Code: 554}, "", "5.0.0"},
		{&Reply{Code: 450, Text: "5.1.1 a class the code denies"}, "", "4.0.0"},
		{&Reply{Code: 550, Text: "5.1 too short"}, "", "5.0.0"},
		{&Reply{Code: 250, Text: "2.0.0 OK: queued"}, "2.0.0", "5.0.0"},
		{errors.New("connect 127.0.0.1:25: connection refused"), "", "5.0.0"},
	} {
		var enhanced string
		if r := replyOf(tc.err); r != nil {
			enhanced = r.Enhanced()
		}
		if status := (failure{err: tc.err}).status(); enhanced != tc.enhanced || status != tc.status {
			t.Errorf("%q: enhanced %q, status %q; want %q, %q", tc.err, enhanced, status, tc.enhanced, tc.status)
		}
	}
}

// dsnStatus is the message/delivery-status part of the one DSN f received
// for the message origID.
func dsnStatus(t *testing.T, f *fake, origID string) string {
	t.Helper()
	var dsns []delivery
	for _, d := range get(f, func(f *fake) []delivery { return f.deliveries }) {
		if d.MessageID != origID && d.From == "" {
			dsns = append(dsns, d)
		}
	}
	if len(dsns) != 1 {
		t.Fatalf("%d DSNs delivered, want 1", len(dsns))
	}
	m, err := mail.ReadMessage(bytes.NewReader(dsns[0].Body))
	if err != nil {
		t.Fatalf("DSN does not parse: %v", err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("DSN Content-Type: %v", err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("DSN without a message/delivery-status part: %v\n%s", err, dsns[0].Body)
		}
		if ct, _, _ := strings.Cut(p.Header.Get("Content-Type"), ";"); ct == "message/delivery-status" {
			b, _ := io.ReadAll(p)
			return string(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
		}
	}
}

// closedPort is an address on 127.0.0.1 where nothing listens: a
// connection to it is refused.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// oneConnection is an address that carries its first connection through
// to target and then closes: every later connection is refused.
func oneConnection(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		go func() { io.Copy(up, c); up.Close() }()
		io.Copy(c, up)
	}()
	return ln.Addr().String()
}
