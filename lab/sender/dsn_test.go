package sender

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"

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
// 450 at RCPT fails for good after max_attempts; the DSN's
// Diagnostic-Code is the peer's last reply, the 450 itself (RFC 3464
// 2.3.6: the diagnostic the remote MTA gave), not the lab's words.
func TestDSNAfterTemporaryFailures(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) { f.rcptErr = rejectRcpt("busy@h.test", 450) })
	cfg := testConfig(t, f.addr)
	cfg.MaxAttempts = 3
	q := openQueue(t, cfg.QueueDir)
	orig := put(t, q, "<busy@dsn.test>", "author@src.test", "busy@h.test")
	_, log := startSender(t, cfg)
	labtest.Until(t, "the DSN delivered and the queue empty", func() bool {
		return len(queueIDs(t, q)) == 0 && countEvents(log, events.Sent, "") == 1
	})
	var dsn *delivery
	for _, d := range get(f, func(f *fake) []delivery { return f.deliveries }) {
		if d.MessageID != orig.MessageID {
			dsn = &d
		}
	}
	if dsn == nil {
		t.Fatal("no DSN delivered")
	}
	body := string(bytes.ReplaceAll(dsn.Body, []byte("\r\n"), []byte("\n")))
	if !strings.Contains(body, "Diagnostic-Code: smtp; 450 ") || !strings.Contains(body, "fake says 450") {
		t.Errorf("the DSN does not carry the peer's 450:\n%s", body)
	}
	tries := 0
	for _, e := range eventsOf(log, events.Attempt) {
		if e.Result != "ok" {
			tries++
		}
	}
	if tries != 3 {
		t.Errorf("%d failed attempts, want max_attempts 3", tries)
	}
}
