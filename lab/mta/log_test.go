package mta

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
)

// runTime is when the captured logs were written.
var runTime = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// The testdata logs were captured from real runs of the lab (Courier R and
// S through busybox syslogd, Postfix R's maillog_file).
func TestParseCapturedLogs(t *testing.T) {
	for _, tc := range []struct {
		file, role string
		opens      int
	}{
		{"courier-receiver.log", "receiver", 17},
		{"postfix-receiver.log", "receiver", 10},
		{"courier-sender.log", "sender", 0},
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

// Lines in the MTAs' formats the captured runs did not produce (no client
// was refused there); written from Postfix 3.7's smtpd and Courier's
// courieresmtpd/courieresmtp messages.
func TestParseLines(t *testing.T) {
	log := strings.Join([]string{
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
	}, "\n")
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
// corpus is every line of the captured logs (testdata/*.log) and the
// hand-written ones above; whatever the input, it must not panic, and
// every event must carry the role, a kind and a time no later than a day
// after the run's.
func FuzzParseLog(f *testing.F) {
	for _, name := range []string{"courier-receiver.log", "courier-sender.log", "postfix-receiver.log"} {
		file, err := os.Open("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			f.Add(sc.Text())
		}
		file.Close()
	}
	f.Add(`Nov 28 11:32:14 h mail.info courieresmtpd: error,relay=::ffff:1.2.3.4,port=1,msg="511 a,b",cmd: RCPT`)
	f.Add("Nov 28 11:37:24 r postfix/smtpd[205]: disconnect from x[1.2.3.4] data=2/3")
	f.Add("Nov 28 11:37:24 r postfix/smtpd[]: connect from [")
	f.Fuzz(func(t *testing.T, line string) {
		evs, err := ParseLog(strings.NewReader(line), "receiver", runTime)
		if err != nil {
			return // a line longer than the scanner takes
		}
		for _, e := range evs {
			if e.Role != "receiver" || e.Kind == "" || e.Time.After(runTime.Add(24*time.Hour)) || e.Time.Year() < 2025 {
				t.Fatalf("event %+v from %q", e, line)
			}
		}
	})
}
