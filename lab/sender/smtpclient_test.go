package sender

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// TestPipelining: against a server offering PIPELINING the sender writes
// MAIL, every RCPT and DATA at once (the server reads them in one chunk);
// against one without it, one command at a time. Either way each
// recipient gets its own fate: a@ refused for good, b@ refused for now
// and delivered later, c@ delivered at once. A MAIL refused, or every
// recipient refused, leaves the session in step: the next message goes on
// the same connection.
func TestPipelining(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		name := map[bool]string{true: "offered", false: "not offered"}[pipelining]
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			f.set(func(f *fake) {
				f.noPipelining = !pipelining
				first := true
				f.rcptErr = func(_ int, to string) error {
					switch {
					case to == "a@h.test":
						return smtpErr(550)
					case to == "b@h.test" && first:
						first = false
						return smtpErr(451)
					}
					return nil
				}
			})
			cfg := testConfig(t, f.addr)
			cfg.Bounce = BounceRecord
			q := openQueue(t, cfg.QueueDir)
			put(t, q, "<p@pipe.test>", "from@src.test", "a@h.test", "b@h.test", "c@h.test")
			_, log := startSender(t, cfg)
			labtest.Until(t, "queue empty", func() bool {
				return len(queueIDs(t, q)) == 0 && countEvents(log, events.Sent, "") == 2
			})
			checkOnce(t, f, []string{"<p@pipe.test> b@h.test", "<p@pipe.test> c@h.test"})
			failed := eventsOf(log, events.Failed)
			if len(failed) != 1 || !slices.Equal(failed[0].Rcpts, []string{"a@h.test"}) || failed[0].Code != 550 {
				t.Errorf("Failed events %+v, want one for a@h.test with 550", failed)
			}
			group := "MAIL FROM:<from@src.test>\r\nRCPT TO:<a@h.test>\r\nRCPT TO:<b@h.test>\r\nRCPT TO:<c@h.test>\r\nDATA\r\n"
			var grouped, mixed int
			for _, r := range get(f, func(f *fake) []string { return f.reads }) {
				_, chunk, _ := strings.Cut(r, " ")
				if chunk == group {
					grouped++
				}
				if strings.Contains(chunk, "MAIL FROM") && strings.Contains(chunk, "RCPT TO") {
					mixed++
				}
			}
			if pipelining && grouped != 1 {
				t.Errorf("the server read MAIL, the RCPTs and DATA together %d times, want once", grouped)
			}
			if !pipelining && mixed != 0 {
				t.Errorf("without PIPELINING the server read MAIL and RCPT together %d times", mixed)
			}
		})
	}

	for _, tc := range []struct {
		name   string
		script func(f *fake)
		from   string
	}{
		{"mail refused", func(f *fake) { f.mailErr = func(_ int, from string) error { return refuseFrom(from) } }, "bounce@src.test"},
		{"every recipient refused", func(f *fake) { f.rcptErr = rejectRcpt("a@h.test", 550) }, "from@src.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.set(tc.script)
			cfg := testConfig(t, f.addr)
			cfg.MaxConnections, cfg.MaxPerHost = 1, 1
			cfg.Bounce = BounceRecord
			q := openQueue(t, cfg.QueueDir)
			put(t, q, "<refused@pipe.test>", tc.from, "a@h.test")
			put(t, q, "<next@pipe.test>", "from@src.test", "c@h.test")
			_, log := startSender(t, cfg)
			labtest.Until(t, "queue empty", func() bool {
				return len(queueIDs(t, q)) == 0 && countEvents(log, events.Sent, "") == 1 && countEvents(log, events.Failed, "") == 1
			})
			checkOnce(t, f, []string{"<next@pipe.test> c@h.test"})
			if n := countEvents(log, events.ConnOpen, ""); n != 1 {
				t.Errorf("%d connections, want 1: the session fell out of step", n)
			}
			if n := countEvents(log, events.Attempt, "temporary"); n != 0 {
				t.Errorf("%d temporary attempts: %+v", n, eventsOf(log, events.Attempt))
			}
		})
	}
}

func refuseFrom(from string) error {
	if from == "bounce@src.test" {
		return smtpErr(550)
	}
	return nil
}

// TestPhaseTimeouts: each phase waits for its own timeout. The receiver
// stops answering (on the first connection only) at one reply; that
// phase's timeout is short and every other one an hour, so the attempt
// fails in that phase, or, if the wrong timeout applied, the test hangs
// into waitFor's deadline. The retry then gets the message through.
func TestPhaseTimeouts(t *testing.T) {
	const short = 30 * time.Millisecond
	for _, tc := range []struct {
		phase string // the attempt's error starts with this, after "no reply: "
		reply string // the reply line the receiver swallows
		set   func(c *Config)
	}{
		{"greeting:", "220 ", func(c *Config) { c.GreetingTimeout = duration.Duration(short) }},
		{"EHLO:", "250-Hello ", func(c *Config) { c.HeloTimeout = duration.Duration(short) }},
		{"MAIL:", "250 2.0.0 Roger", func(c *Config) { c.MailTimeout = duration.Duration(short) }},
		{"RCPT TO:<u@h.test>:", "250 2.0.0 I'll make sure", func(c *Config) { c.RcptTimeout = duration.Duration(short) }},
		{"DATA:", "354 ", func(c *Config) { c.DataTimeout = duration.Duration(short) }},
		{"end of data:", "250 2.0.0 OK", func(c *Config) { c.EndOfDataTimeout = duration.Duration(short) }},
	} {
		t.Run(strings.TrimSuffix(tc.phase, ":"), func(t *testing.T) {
			f := newFake(t)
			f.set(func(f *fake) {
				f.silence = func(conn int, line []byte) bool { return conn == 1 && bytes.HasPrefix(line, []byte(tc.reply)) }
			})
			cfg := testConfig(t, f.addr)
			cfg.CommandTimeout = 0
			cfg.GreetingTimeout, cfg.HeloTimeout, cfg.MailTimeout, cfg.RcptTimeout = duration.Duration(time.Hour), duration.Duration(time.Hour), duration.Duration(time.Hour), duration.Duration(time.Hour)
			cfg.DataTimeout, cfg.EndOfDataTimeout, cfg.QuitTimeout = duration.Duration(time.Hour), duration.Duration(time.Hour), duration.Duration(time.Hour)
			tc.set(&cfg)
			q := openQueue(t, cfg.QueueDir)
			put(t, q, "<slow@phase.test>", "from@src.test", "u@h.test")
			_, log := startSender(t, cfg)
			labtest.Until(t, "sent after a retry", func() bool { return countEvents(log, events.Sent, "") == 1 })
			tries := eventsOf(log, events.Attempt)
			if len(tries) < 2 || tries[0].Result != "temporary" || !strings.HasPrefix(tries[0].Error, "no reply: "+tc.phase) ||
				!strings.Contains(tries[0].Error, "i/o timeout") || tries[0].Code != 0 || tries[0].Enhanced != "" {
				t.Errorf("attempts %+v, want a timeout in %q first", tries, tc.phase)
			}
		})
	}
}

// TestSessionBuffersReused: a session's buffers go back to a pool when it
// closes and serve the next session; nothing the closed one left in them
// reaches the next. The first session, to a raw server, is closed with a
// reply the server sent early still unread and a command written but not
// flushed; the next, to the fake, must read the fake's greeting (not the
// stale 550) and the fake must read EHLO first (not the stale command).
// A second close is harmless: the buffers, maybe another session's by
// then, are given back once.
func TestSessionBuffersReused(t *testing.T) {
	raw := labtest.Serve(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		c.Write([]byte("220 raw.test\r\n"))
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
		// The EHLO reply, and a stale reply nobody asked for yet.
		c.Write([]byte("250 raw.test\r\n550 5.7.1 stale\r\n"))
		br.ReadString('\n') // until the client closes
	})
	f := newFake(t)
	ctx := context.Background()
	reused := false
	for try := 0; try < 10 && !reused; try++ {
		c, err := dialSMTP(ctx, raw, "sender.test", CourierTimeouts, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.br.Buffered() == 0 {
			t.Fatal("the stale reply is not in the first session's buffer: the test proves nothing")
		}
		c.bw.WriteString("RSET\r\n") // written, never flushed
		br, bw := c.br, c.bw
		c.close()
		c.close()
		next, err := dialSMTP(ctx, f.addr, "sender.test", CourierTimeouts, nil)
		if err != nil {
			t.Fatalf("the session after: %v", err)
		}
		reused = next.br == br || next.bw == bw
		if o := next.transaction("from@src.test", []string{"u@h.test"}, []byte("Subject: x\n\nbody\n")); !o.sent {
			t.Fatalf("the session after: not sent: %+v", o)
		}
		next.quit()
	}
	if !reused {
		t.Fatal("the pool never handed a closed session's buffers to the next in 10 tries")
	}
	labtest.Until(t, "the fake's reads", func() bool { return len(get(f, func(f *fake) []string { return f.reads })) > 0 })
	for _, r := range get(f, func(f *fake) []string { return f.reads }) {
		if _, chunk, _ := strings.Cut(r, " "); strings.HasPrefix(chunk, "RSET") {
			t.Errorf("the fake read %q: a closed session's unflushed command reached the next", chunk)
		}
	}
}
