package receiver

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
)

// The protocol details front.go and the session answer: one test per
// point, each with a real client on a real socket against a running
// receiver. The wire client (session_test.go) sends what a library client
// will not and keeps the replies' text.

// quit sends QUIT, expects 221 as the next reply and then nothing at all
// before the server closes: a reply too many to anything sent before
// shows up here.
func (w *rawClient) quit() {
	w.t.Helper()
	w.cmd("QUIT", 221)
	w.c.SetReadDeadline(time.Now().Add(time.Minute))
	rest, err := io.ReadAll(w.c)
	if err != nil && len(rest) == 0 && !isReset(err) {
		w.t.Errorf("after QUIT: %v", err)
	}
	if len(rest) != 0 {
		w.t.Errorf("replies after 221: %q", rest)
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "reset") }

// pipeline sends lines in one write and checks that each draws exactly one
// reply, in order, with the code wanted.
func (w *rawClient) pipeline(lines []string, want []int) {
	w.t.Helper()
	w.send(strings.Join(lines, "\r\n") + "\r\n")
	for i, line := range lines {
		if code, msg := w.reply(); code != want[i] {
			w.t.Errorf("%.60q: %d %q, want %d", line, code, msg, want[i])
		}
	}
}

// An unrecognised command is 500 (RFC 5321 4.2.4), whatever its shape:
// a verb of other than four letters, an empty line, bytes that are no
// word, a verb the model does not take (LMTP's LHLO). Each draws one reply
// and, as with Courier, no number of them ends the session (go-smtp closes
// after three). A known verb in a form that is no command is 501.
func TestProtocolUnknownCommand(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), nil)
	w := l.dialWire(true)
	unknown := []string{"FROB x", "XYZZY", "AB", "", "HELLO there", "\x00\x00\x00", "MAILX FROM:<a@b>", "STARTTLSX", "LHLO x", "frob"}
	lines := append(append([]string{}, unknown...), "MAIL ", "NOOP")
	want := make([]int, len(unknown), len(lines))
	for i := range want {
		want[i] = 500
	}
	want = append(want, 501, 250)
	w.pipeline(lines, want)
	w.cmd("EHLO "+heloName, 250)
	w.cmd("FROB", 500)
	w.quit()
	l.close()
	l.expectEmpty()
}

// A command out of sequence is 503 (RFC 5321 4.3.2), where go-smtp says
// 502 and Courier "502 ESMTP command error": MAIL before HELO, RCPT
// before MAIL, DATA before MAIL and before an accepted RCPT.
func TestProtocolBadSequence(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), nil)
	w := l.dialWire(true)
	w.cmd("MAIL FROM:<a@example.org>", 503)
	w.cmd("EHLO "+heloName, 250)
	w.cmd("RCPT TO:<"+rcptFoo7+">", 503)
	w.cmd("DATA", 503)
	w.cmd("MAIL FROM:<a@example.org>", 250)
	w.cmd("DATA", 503)
	w.cmd("RCPT TO:<recipient@elsewhere.org>", 550)
	w.cmd("DATA", 503)
	w.cmd("MAIL FROM:<b@example.org>", 503) // nested: the session's own
	w.cmd("RSET", 250)
	w.cmd("RCPT TO:<"+rcptFoo7+">", 503) // RSET ended the transaction
	w.quit()
	l.close()
	l.expectEmpty()
}

// HELP is answered 214 (RFC 5321 4.1.1.8), in any state, with or without
// an argument, where Courier has no HELP at all.
func TestProtocolHELP(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), nil)
	w := l.dialWire(true)
	text := w.cmd("HELP", 214)
	for _, verb := range []string{"EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"} {
		if !strings.Contains(text, verb) {
			t.Errorf("HELP does not name %s: %q", verb, text)
		}
	}
	w.cmd("EHLO "+heloName, 250)
	w.cmd("help", 214)
	w.mailTo(rcptFoo7)
	w.cmd("HELP DATA", 214)
	w.cmd("DATA", 354) // HELP left the transaction as it was
	w.cmd("Message-ID: <help@test>\r\n\r\nhelp\r\n.", 250)
	w.quit()
	l.close()
	if n := len(l.files("new")); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// Postmaster is accepted in any case at every local domain and alone
// (RFC 5321 4.5.1; go-smtp reads the bare form since v0.26.0), with a
// library client, and goes where the bare account's mail goes; at a
// domain the receiver does not serve it is relaying.
func TestProtocolPostmaster(t *testing.T) {
	other := filepath.Join(t.TempDir(), "Other")
	cases := []struct {
		name  string
		rules []Rule
		dir   func(l *lab) string // where postmaster's mail goes
	}{
		{"default delivery", nil, func(l *lab) string { return string(l.dir) }},
		{"the account's .courier", []Rule{{File: "", Maildirs: []string{other}}, {File: "-default"}}, func(*lab) string { return other }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.Rules = tc.rules })
			c, _ := l.client()
			if err := c.Mail("sender@example.org", nil); err != nil {
				t.Fatal(err)
			}
			for _, r := range []string{"postmaster@7.foo.example.com", "Postmaster@X.Example.COM.", "postmaster@x.example.com", "POSTMASTER"} {
				if err := c.Rcpt(r, nil); err != nil {
					t.Errorf("RCPT %s: %v", r, err)
				}
			}
			if code, _, _ := smtpCode(c.Rcpt("postmaster@elsewhere.org", nil)); code != 550 {
				t.Errorf("RCPT postmaster@elsewhere.org: %d, want 550", code)
			}
			wc, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(wc, message("pm@test"))
			if err := wc.Close(); err != nil {
				t.Fatalf("end of data: %v", err)
			}
			c.Quit()
			l.close()

			msgs, err := maildir.Dir(tc.dir(l)).List()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, m := range msgs {
				data, err := os.ReadFile(m.Path)
				if err != nil {
					t.Fatal(err)
				}
				first, _, _ := strings.Cut(string(data), "\n")
				got[first] = true
			}
			want := []string{"Delivered-To: postmaster@7.foo.example.com", "Delivered-To: postmaster@x.example.com", "Delivered-To: postmaster@" + hostname}
			if len(msgs) != len(want) {
				t.Errorf("%d copies, want %d: %v", len(msgs), len(want), got)
			}
			for _, w := range want {
				if !got[w] {
					t.Errorf("no copy with %q: %v", w, got)
				}
			}
			if tc.rules != nil {
				l.expectEmptyMaildirOnly()
			}
		})
	}
}

// expectEmptyMaildirOnly checks that the default Maildir got nothing (mail
// went elsewhere by a rule).
func (l *lab) expectEmptyMaildirOnly() {
	l.t.Helper()
	for _, sub := range []string{"tmp", "new", "cur"} {
		if f := l.files(sub); len(f) != 0 {
			l.t.Errorf("%d files in %s/ of the default Maildir: %v", len(f), sub, f)
		}
	}
}

// One reply per error, and a message line may be as long as the message,
// as Courier's data() and submit take it: a 3000-byte body line (over
// go-smtp's 2000 and RFC 5321's 1000) is stored whole with one 250; a
// command line over courieresmtpd's 5120 bytes gets one 500 and the
// session goes on; a message over the size limit gets one 552 and the
// session goes on.
func TestProtocolLongLines(t *testing.T) {
	l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.MaxMessage = 20000 })
	w := l.dialWire(true)
	w.cmd("EHLO "+heloName, 250)

	long := strings.Repeat("x", 3000)
	w.mailTo(rcptFoo7)
	w.cmd("DATA", 354)
	w.send("Message-ID: <long@test>\r\n\r\n" + long + "\r\nshort\r\n.\r\nNOOP\r\n")
	for _, want := range []int{250, 250} {
		if code, msg := w.reply(); code != want {
			t.Errorf("message with a 3000-byte line: %d %q, want %d", code, msg, want)
		}
	}

	w.pipeline([]string{"NOOP " + strings.Repeat("y", maxCommandLine), "NOOP " + strings.Repeat("z", maxCommandLine-len("NOOP \r\n"))}, []int{500, 250})

	w.mailTo(rcptFoo7)
	w.cmd("DATA", 354)
	w.send("Message-ID: <big@test>\r\n\r\n" + strings.Repeat(long+"\r\n", 8) + ".\r\nNOOP\r\n")
	for _, want := range []int{552, 250} {
		if code, msg := w.reply(); code != want {
			t.Errorf("message over the size limit: %d %q, want %d", code, msg, want)
		}
	}
	w.quit()
	l.close()

	got := maildirState(t, string(l.dir))
	if len(got) != 1 {
		t.Errorf("%d messages, want 1", len(got))
	}
	if b := bodyOf(got["<long@test>"]); b != long+"\nshort\n" {
		t.Errorf("stored body: %d bytes, want the 3000-byte line and \"short\"", len(b))
	}
}

// EHLO lists no CHUNKING in either lookup profile: courieresmtpd.c's
// ehlo() never had it, in 0.72 or in 1.0.16 (Debian's courier-mta). BDAT
// is then an unknown command (500) and its chunk is read as command lines,
// as that Courier reads them: here the chunk is a NOOP.
func TestProtocolExtensionsPerProfile(t *testing.T) {
	for _, profile := range []string{ProfileCourier1999, ProfileCourier1016} {
		t.Run(profile, func(t *testing.T) {
			l := startLab(t, dnsConfig(clientZone(), nil), func(c *Config) { c.Profile = profile })
			c, _ := l.client()
			for _, ext := range []string{"PIPELINING", "8BITMIME", "SIZE", "ENHANCEDSTATUSCODES"} {
				if ok, _ := c.Extension(ext); !ok {
					t.Errorf("EHLO lacks %s", ext)
				}
			}
			if ok, _ := c.Extension("CHUNKING"); ok {
				t.Error("EHLO offers CHUNKING")
			}
			c.Quit()

			w := l.dialWire(true)
			text := w.cmd("EHLO "+heloName, 250)
			if strings.Contains(text, "CHUNKING") {
				t.Errorf("EHLO: %q", text)
			}
			w.mailTo(rcptFoo7)
			w.pipeline([]string{"BDAT 6 LAST", "NOOP", "BDAT 0 LAST"}, []int{500, 250, 500})
			w.cmd("DATA", 354) // the transaction is as it was
			w.cmd("Message-ID: <chunk@test>\r\n\r\nafter BDAT\r\n.", 250)
			w.quit()
			l.close()
			if n := len(l.files("new")); n != 1 {
				t.Errorf("%d messages, want 1", n)
			}
			if n := len(ofKind(l.log.Events(), events.Delivered)); n != 1 {
				t.Errorf("%d Delivered events, want 1", n)
			}
		})
	}
}
