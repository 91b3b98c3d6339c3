package mta

import (
	"bytes"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/topology"
)

// runTime is when the captured logs were written: the last of them on
// the day it names (Exim's stamps carry their year, and a line dated more
// than a day after the run is not of it).
var runTime = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// The testdata logs were captured from real runs of the lab (Courier R and
// S through busybox syslogd, Postfix R's maillog_file).
func TestParseCapturedLogs(t *testing.T) {
	for _, tc := range []struct {
		file  string
		role  topology.Role
		opens int
	}{
		{"courier-receiver.log", "receiver", 17},
		{"postfix-receiver.log", "receiver", 10},
		{"courier-sender.log", "sender", 0},
		{"courier-receiver-rejects.log", "receiver", 6},
		{"courier-receiver-maxperip.log", "receiver", 1 + 43}, // each refusal an accepted connection
		{"courier-sender-failure.log", "sender", 0},
		{"exim-receiver.log", "receiver", 2 + 3}, // each refusal an accepted connection
		{"exim-receiver-rejects.log", "receiver", 4},
		{"exim-sender.log", "sender", 0},
		{"exim-sender-failure.log", "sender", 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			evs, err := ParseLog(f, tc.role, runTime)
			if err != nil {
				t.Fatal(err)
			}
			opens, conns := 0, map[string]bool{}
			for _, e := range evs {
				if e.Role != tc.role || e.Time.Year() != 2026 {
					t.Errorf("event %+v: role or year wrong", e)
				}
				if e.Kind == events.ConnOpen {
					opens++
					if conns[e.Conn] {
						t.Errorf("connection %s opened twice", e.Conn)
					}
					conns[e.Conn] = true
					if strings.Contains(e.Host, ":") || e.Host == "" {
						t.Errorf("client %q is not an IPv4 address", e.Host)
					}
				}
			}
			if opens != tc.opens {
				t.Errorf("%d connections, want %d", opens, tc.opens)
			}
		})
	}
}

// handLines are lines in the MTAs' formats the captured runs did not produce (no client
// was refused there); written from Postfix 3.7's smtpd and Courier's
// courieresmtpd/courieresmtp messages.
var handLines = []string{
	"Nov 28 11:37:22 receiver postfix/smtpd[205]: connect from sender.lab.example.net[192.168.208.4]",
	"Nov 28 11:37:23 receiver postfix/smtpd[205]: NOQUEUE: reject: RCPT from sender.lab.example.net[192.168.208.4]: 554 5.7.1 Service unavailable; Client host [192.168.208.4] blocked using bl1.example.net; from=<sender@example.com> to=<recipient-foo-1@1.foo.example.com> proto=ESMTP helo=<sender>",
	"Nov 28 11:37:24 receiver postfix/smtpd[205]: disconnect from sender.lab.example.net[192.168.208.4] ehlo=1 mail=3 rcpt=2/3 data=2 quit=1 commands=9/10",
	"Nov 28 11:37:25 receiver postfix/smtpd[205]: connect from unknown[192.168.208.9]",
	"Nov 28 11:37:25 receiver postfix/smtpd[205]: warning: Connection concurrency limit exceeded: 41 from unknown[192.168.208.9] for service smtp",
	"Nov 28 11:37:26 receiver postfix/smtpd[301]: disconnect from unknown[192.168.208.9] commands=0", // its connect is not in the log
	"Nov 28 11:32:14 79f41702a143 mail.info courieresmtpd: error,relay=::ffff:192.168.128.4,port=58466,msg=\"511 Blocked by bl1, see <x,y>\",cmd: RCPT TO:<recipient-foo-1@1.foo.example.com>",
	"Nov 28 11:33:10 0c85168e3d4a mail.info courieresmtp: id=00000000000E7092.000000006B0ABBF6.00000062,from=<sender@example.com>,addr=<recipient-foo-1@1.foo.example.com>,status: deferred",
	"Nov 28 11:33:11 0c85168e3d4a mail.info courieresmtp: id=00000000000E7093.000000006B0ABBF6.00000063,from=<sender@example.com>,addr=<nobody@1.foo.example.com>,status: failure",
	"garbage", "", "Nov 99 11:33:11 x y: z", "Nov 28 11:33:11 host",
}

// TestParseLines reads handLines.
func TestParseLines(t *testing.T) {
	log := strings.Join(handLines, "\n")
	evs, err := ParseLog(strings.NewReader(log), "receiver", runTime)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, string(e.Kind)+" "+e.Conn+" "+e.Host)
	}
	want := []string{
		"conn_open smtpd[205]#1 192.168.208.4",
		"rejected smtpd[205]#1 192.168.208.4",
		"conn_close smtpd[205]#1 192.168.208.4",
		"conn_open smtpd[205]#2 192.168.208.9",
		"refused smtpd[205]#2 192.168.208.9",
		"rejected ::ffff:192.168.128.4:58466 192.168.128.4",
		"attempt  ",
		"failed  ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if evs[1].Code != 554 || evs[2].Count != 2 || evs[4].Reason != "max_per_ip" {
		t.Errorf("reject code %d, messages on the connection %d, refusal %q", evs[1].Code, evs[2].Count, evs[4].Reason)
	}
	if evs[5].Code != 511 || evs[5].Error != "511 Blocked by bl1, see <x,y>" {
		t.Errorf("courier rejection %d %q", evs[5].Code, evs[5].Error)
	}
	if evs[6].Result != "temporary" || evs[7].Rcpts[0] != "nobody@1.foo.example.com" {
		t.Errorf("sender lines: %+v %+v", evs[6], evs[7])
	}
}

// A stamp in late December read in a run of early January belongs to the
// year before; syslog stamps carry no year.
func TestParseLineYear(t *testing.T) {
	newYear := time.Date(2027, 1, 1, 0, 5, 0, 0, time.UTC)
	l, ok := ParseLine("Dec 31 23:59:59 h prog: x", newYear)
	if !ok || !l.Time.Equal(time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)) {
		t.Errorf("got %v %v", l.Time, ok)
	}
	l, ok = ParseLine("Jan  1 00:00:01.250000 h mail.info prog[12]: x y", newYear)
	if !ok || !l.Time.Equal(time.Date(2027, 1, 1, 0, 0, 1, 250e6, time.UTC)) || l.Program != "prog" || l.PID != "12" || l.Text != "x y" {
		t.Errorf("got %+v %v", l, ok)
	}
}

// FuzzParseLog feeds the parser mail-log text it has never seen. The seed
// corpus is every line of the captured logs (testdata/*.log), each whole
// log (so sessions open and close), handLines and eximHandLines. Whatever
// the input, it must not panic, and it must keep what ParseLog,
// ParseLine and ParseEximLine promise:
//   - a line gives at most one event, but for couriertcpd's and Exim's
//     refusals (a ConnOpen and its Refused); every event carries the
//     role, one of the kinds the parser writes and a stamp dated in the
//     run's year or the one before, never more than a day after the run;
//   - ConnOpen and ConnClose name their connection, and a ConnClose closes
//     one this log opened (a disconnect whose connect is before the log's
//     start is skipped); a connection carried no fewer than 0 messages;
//   - a Code is an SMTP reply code (200-599) or 0 when the line has none;
//   - Attempt and Failed name their recipient's slot;
//   - a line ParseLine takes has a host and a program, and its Text is the
//     words after the tag, trimmed; a line ParseEximLine takes is dated
//     as ParseLog's events are, and its Text is its end, trimmed, after
//     a process and a message id of their forms.
func FuzzParseLog(f *testing.F) {
	for _, name := range []string{"courier-receiver.log", "courier-sender.log", "postfix-receiver.log",
		"courier-receiver-rejects.log", "courier-receiver-maxperip.log", "courier-sender-failure.log", "postfix-sender.log",
		"exim-receiver.log", "exim-receiver-rejects.log", "exim-sender.log", "exim-sender-failure.log"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
		for l := range strings.Lines(string(b)) {
			f.Add(strings.TrimSuffix(l, "\n"))
		}
	}
	for _, l := range handLines {
		f.Add(l)
	}
	for _, l := range eximHandLines {
		f.Add(l)
	}
	f.Add(strings.Join(eximHandLines, "\n"))
	f.Add("Nov 28 11:37:24 r postfix/smtpd[205]: disconnect from x[1.2.3.4] data=2/3")
	f.Add("Nov 28 11:37:24 r postfix/smtpd[]: connect from [")
	// Numbers the log's text does not hold as the MTA writes them.
	f.Add("Nov 28 11:37:22 r postfix/smtpd[9]: connect from x[1.2.3.4]\nNov 28 11:37:24 r postfix/smtpd[9]: disconnect from x[1.2.3.4] data=-3")
	f.Add(`Nov 28 11:32:14 h mail.info courieresmtpd: error,relay=1.2.3.4,port=1,msg="99999 x",cmd: RCPT`)
	kinds := map[events.Kind]bool{events.ConnOpen: true, events.ConnClose: true, events.Rejected: true,
		events.Refused: true, events.Attempt: true, events.Failed: true}
	f.Fuzz(func(t *testing.T, log string) {
		evs, err := ParseLog(strings.NewReader(log), "receiver", runTime)
		if err != nil {
			return // a line longer than the scanner takes
		}
		// couriertcpd's refusal is the one line with two events: the
		// connection it accepted and its refusal.
		refusals := 0
		for i, e := range evs {
			if e.Kind == events.Refused && i > 0 && evs[i-1].Kind == events.ConnOpen && evs[i-1].Conn == e.Conn {
				refusals++
			}
		}
		if lines := strings.Count(log, "\n") + 1; len(evs)-refusals > lines {
			t.Fatalf("%d events (%d refusals) from %d lines", len(evs), refusals, lines)
		}
		open := map[string]bool{}
		for _, e := range evs {
			if e.Role != "receiver" || !kinds[e.Kind] {
				t.Fatalf("role or kind: %+v", e)
			}
			if e.Time.IsZero() || e.Time.Location() != time.UTC || e.Time.After(runTime.Add(24*time.Hour)) ||
				(e.Time.Year() != runTime.Year() && e.Time.Year() != runTime.Year()-1) {
				t.Fatalf("time %v: %+v", e.Time, e)
			}
			if e.Code != 0 && (e.Code < 200 || e.Code > 599) {
				t.Fatalf("code %d is no SMTP reply code: %+v", e.Code, e)
			}
			if e.Count < 0 {
				t.Fatalf("a connection carried %d messages: %+v", e.Count, e)
			}
			switch e.Kind {
			case events.ConnOpen:
				if e.Conn == "" {
					t.Fatalf("connection with no name: %+v", e)
				}
				open[e.Conn] = true
			case events.ConnClose:
				if e.Conn == "" || !open[e.Conn] {
					t.Fatalf("closes a connection the log did not open: %+v", e)
				}
			case events.Attempt, events.Failed:
				if len(e.Rcpts) != 1 {
					t.Fatalf("recipients %q: %+v", e.Rcpts, e)
				}
			}
		}
		for line := range strings.Lines(log) {
			line = strings.TrimSuffix(line, "\n")
			if l, ok := ParseEximLine(line, runTime); ok {
				if l.Time.Location() != time.UTC || l.Time.After(runTime.Add(24*time.Hour)) || l.Time.Year() < runTime.Year()-1 ||
					l.Text == "" || l.Text != strings.TrimSpace(l.Text) || !strings.HasSuffix(strings.TrimSpace(line), l.Text) ||
					(l.ID != "" && !isEximID(l.ID)) || (l.PID != "" && !isDigits(l.PID)) {
					t.Fatalf("ParseEximLine(%q) = %+v", line, l)
				}
			}
			l, ok := ParseLine(line, runTime)
			if !ok {
				continue
			}
			if l.Time.IsZero() || l.Host == "" || l.Program == "" || l.Text != strings.TrimSpace(l.Text) {
				t.Fatalf("ParseLine(%q) = %+v", line, l)
			}
			if !strings.HasSuffix(strings.TrimSpace(line), l.Text) {
				t.Fatalf("ParseLine(%q): text %q is not the line's end", line, l.Text)
			}
			// The text's words are the words after the tag: after the
			// stamp (and its fraction), the host and any facility.level.
			rest := line[15:]
			if r, ok := strings.CutPrefix(rest, "."); ok {
				n := 0
				for n < len(r) && n < 9 && r[n] >= '0' && r[n] <= '9' {
					n++
				}
				rest = r[n:]
			}
			words := strings.Fields(rest)
			tag := 1
			if len(words) > 2 && isFacilityLevel(words[1]) {
				tag = 2
			}
			if words[0] != l.Host || !slices.Equal(strings.Fields(l.Text), words[tag+1:]) {
				t.Fatalf("ParseLine(%q): host %q, text %q: not what follows the tag %q", line, l.Host, l.Text, words[tag])
			}
		}
	})
}

// TestParseCapturedCourierLines reads lines captured from live runs of the
// lab (lab run with receiver.impl or sender.impl courier): submit's refusal
// of a recipient and courieresmtpd's own refusal of DATA (Go S to Courier
// R, recipients unknown), couriertcpd over MAXPERIP (max_per_ip: 1), and
// Courier S's reply and permanent failure (Courier S to the Go receiver,
// recipients unknown).
func TestParseCapturedCourierLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		role topology.Role
		line string
		want []events.Event // Time and Role not compared
	}{
		{"submit refuses a recipient", "receiver",
			"Nov 28 12:39:57 b0c7e546e08e mail.err courieresmtpd: error,relay=::ffff:172.23.0.4,port=48310,ident=courier,from=<sender@example.com>,to=<nobody-2@2.foo.example.com>: 550 User <nobody-2> unknown",
			[]events.Event{{Kind: events.Rejected, Conn: "::ffff:172.23.0.4:48310", Host: "172.23.0.4", Code: 550, Error: "550 User <nobody-2> unknown",
				From: "sender@example.com", Rcpts: []string{"nobody-2@2.foo.example.com"}}}},
		{"submit refuses a bounce's recipient", "receiver",
			"Nov 28 12:40:05 b0c7e546e08e mail.err courieresmtpd: error,relay=::ffff:172.23.0.4,port=38442,ident=courier,from=<>,to=<sender@example.com>: 550 User <sender> unknown",
			[]events.Event{{Kind: events.Rejected, Conn: "::ffff:172.23.0.4:38442", Host: "172.23.0.4", Code: 550, Error: "550 User <sender> unknown",
				Rcpts: []string{"sender@example.com"}}}},
		{"courieresmtpd refuses DATA", "receiver",
			`Nov 28 12:39:57 b0c7e546e08e mail.info courieresmtpd: error,relay=::ffff:172.23.0.4,port=48310,ident="courier",msg="502 ESMTP command error",cmd: DATA`,
			[]events.Event{{Kind: events.Rejected, Conn: "::ffff:172.23.0.4:48310", Host: "172.23.0.4", Code: 502, Error: "502 ESMTP command error"}}},
		{"couriertcpd over MAXPERIP", "receiver",
			"Nov 28 12:39:53 092b713478e7 mail.alert courieresmtpd: Maximum connection limit reached for ::ffff:172.25.0.4",
			[]events.Event{{Kind: events.ConnOpen, Conn: "::ffff:172.25.0.4#refused-1", Host: "172.25.0.4"},
				{Kind: events.Refused, Conn: "::ffff:172.25.0.4#refused-1", Host: "172.25.0.4", Reason: "max_per_ip",
					Error: "Maximum connection limit reached for ::ffff:172.25.0.4"}}},
		{"Courier S: a reply, then the failure", "sender",
			"Nov 28 12:39:51 287e47364bb9 mail.info courieresmtp: id=0000000000123B35.000000006B0ACB97.00000062,from=<sender@example.com>,addr=<nobody-1@1.foo.example.com>: 550 5.1.1 User unknown.\n" +
				"Nov 28 12:39:51 287e47364bb9 mail.info courieresmtp: id=0000000000123B35.000000006B0ACB97.00000062,from=<sender@example.com>,addr=<nobody-1@1.foo.example.com>,status: failure",
			[]events.Event{{Kind: events.Failed, QueueID: "0000000000123B35.000000006B0ACB97.00000062", From: "sender@example.com",
				Rcpts: []string{"nobody-1@1.foo.example.com"}, Code: 550, Enhanced: "5.1.1", Error: "550 5.1.1 User unknown."}}},
		{"Courier S: a bounce that failed too", "sender",
			"Nov 28 12:39:52 287e47364bb9 mail.info courieresmtp: id=0000000000123B51.000000006B0ACB98.0000006B,from=<>,addr=<sender@example.com>: 550 5.1.1 User unknown.\n" +
				"Nov 28 12:39:52 287e47364bb9 mail.info courieresmtp: id=0000000000123B51.000000006B0ACB98.0000006B,from=<>,addr=<sender@example.com>,status: failure",
			[]events.Event{{Kind: events.Failed, QueueID: "0000000000123B51.000000006B0ACB98.0000006B",
				Rcpts: []string{"sender@example.com"}, Code: 550, Enhanced: "5.1.1", Error: "550 5.1.1 User unknown."}}},
		{"Courier S: a deferral with no enhanced code", "sender",
			"Nov 28 12:39:53 287e47364bb9 mail.info courieresmtp: id=0000000000123B52.000000006B0ACB98.0000006C,from=<sender@example.com>,addr=<a@1.foo.example.com>: 451 Try later.\n" +
				"Nov 28 12:39:53 287e47364bb9 mail.info courieresmtp: id=0000000000123B52.000000006B0ACB98.0000006C,from=<sender@example.com>,addr=<a@1.foo.example.com>,status: deferred",
			[]events.Event{{Kind: events.Attempt, Result: "temporary", QueueID: "0000000000123B52.000000006B0ACB98.0000006C", From: "sender@example.com",
				Rcpts: []string{"a@1.foo.example.com"}, Code: 451, Error: "451 Try later."}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := ParseLog(strings.NewReader(tc.line), tc.role, runTime)
			if err != nil {
				t.Fatal(err)
			}
			for i := range evs {
				if evs[i].Role != tc.role {
					t.Errorf("role %q", evs[i].Role)
				}
				evs[i].Time, evs[i].Role = time.Time{}, ""
			}
			if !reflect.DeepEqual(evs, tc.want) {
				t.Errorf("events\n%+v\nwant\n%+v", evs, tc.want)
			}
		})
	}
}

// TestTieInjected ties Courier S's failures (testdata/courier-sender-failure.log)
// to the three messages the run injected, one per recipient; the bounces'
// failures (null sender) stay untied, and a recipient injected twice is
// not guessed.
func TestTieInjected(t *testing.T) {
	f, err := os.Open("testdata/courier-sender-failure.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := ParseLog(f, "sender", runTime)
	if err != nil {
		t.Fatal(err)
	}
	queued := []events.Event{
		{Kind: events.Queued, MessageID: "<a@inject.smtplab>", From: "sender@example.com", Rcpts: []string{"nobody-1@1.foo.example.com"}},
		{Kind: events.Queued, MessageID: "<b@inject.smtplab>", From: "sender@example.com", Rcpts: []string{"nobody-2@2.foo.example.com"}},
		{Kind: events.Queued, MessageID: "<c@inject.smtplab>", From: "sender@example.com", Rcpts: []string{"nobody-3@3.foo.example.com"}},
		{Kind: events.Queued, MessageID: "<d@inject.smtplab>", From: "sender@example.com", Rcpts: []string{"nobody-3@3.foo.example.com"}},
	}
	TieInjected(evs, append(queued, queued...)) // each twice: the loop's answer and its file both hold it
	tied := map[string]string{}
	failed := 0
	for _, e := range evs {
		if e.Kind != events.Failed {
			continue
		}
		failed++
		if e.MessageID != "" {
			tied[e.Rcpts[0]] = e.MessageID
		} else if e.From != "" && e.Rcpts[0] != "nobody-3@3.foo.example.com" {
			t.Errorf("failure of %s from %q not tied", e.Rcpts[0], e.From)
		}
	}
	want := map[string]string{"nobody-1@1.foo.example.com": "<a@inject.smtplab>", "nobody-2@2.foo.example.com": "<b@inject.smtplab>"}
	if failed != 9 || !reflect.DeepEqual(tied, want) {
		t.Errorf("%d failures, tied %v; want 9, %v", failed, tied, want)
	}
}

// Postfix S's delivery lines: a deferral and a bounce with the peer's
// reply, the envelope sender from qmgr's line; a delivery sent is no event
// (the Maildir is its evidence).
func TestPostfixSenderLog(t *testing.T) {
	log, err := os.ReadFile("testdata/postfix-sender.log")
	if err != nil {
		t.Fatal(err)
	}
	evs, err := ParseLog(bytes.NewReader(log), "sender", runTime)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		evs[i].Time, evs[i].Role = time.Time{}, ""
	}
	want := []events.Event{
		{Kind: events.Attempt, Result: "temporary", QueueID: "4F2A1C", From: "sender@example.com", Rcpts: []string{"a@1.foo.example.com"},
			Code: 450, Enhanced: "4.3.0", Error: "host 172.18.0.3[172.18.0.3] said: 450 4.3.0 busy (in reply to RCPT TO command)"},
		{Kind: events.Failed, QueueID: "4F2A1C", From: "sender@example.com", Rcpts: []string{"a@1.foo.example.com"},
			Code: 550, Enhanced: "5.1.1", Error: "host 172.18.0.3[172.18.0.3] said: 550 5.1.1 User unknown (in reply to RCPT TO command)"},
		{Kind: events.Attempt, Result: "temporary", QueueID: "6C", Rcpts: []string{"c@3.foo.example.com"},
			Error: "connect to 172.18.0.3[172.18.0.3]:25: Connection refused"},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Errorf("events\n%+v\nwant\n%+v", evs, want)
	}
}
