package sender

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// TestTemporaryFailures: the receiver answers 451 to the first few
// commands of one kind, then 250. Every message arrives exactly once,
// each refusal is one temporary Attempt, nothing fails and the queue
// ends empty.
func TestTemporaryFailures(t *testing.T) {
	const failures = 5
	refuse := func(n int) error {
		if n <= failures {
			return smtpErr(451)
		}
		return nil
	}
	for _, tc := range []struct {
		name   string
		script func(f *fake)
	}{
		{"mail", func(f *fake) { f.mailErr = func(n int, _ string) error { return refuse(n) } }},
		{"rcpt", func(f *fake) { f.rcptErr = func(n int, _ string) error { return refuse(n) } }},
		{"data", func(f *fake) { f.dataErr = func(n int, _ []string) error { return refuse(n) } }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.set(tc.script)
			cfg := testConfig(t, f.addr)
			q := openQueue(t, cfg.QueueDir)
			var want []string
			for i := 0; i < 20; i++ {
				id := fmt.Sprintf("<t%d@temp.test>", i)
				rcpt := fmt.Sprintf("u%d@h%d.test", i, i%2)
				put(t, q, id, "from@src.test", rcpt)
				want = append(want, id+" "+rcpt)
			}
			_, log := startSender(t, cfg)
			labtest.Until(t, "every message sent", func() bool { return countEvents(log, events.Sent, "") == len(want) })
			checkOnce(t, f, want)
			if n := countEvents(log, events.Attempt, "temporary"); n != failures {
				t.Errorf("%d temporary attempts, want %d", n, failures)
			}
			if n := countEvents(log, events.Attempt, "ok"); n != len(want) {
				t.Errorf("%d ok attempts, want %d", n, len(want))
			}
			if n := countEvents(log, events.Failed, ""); n != 0 {
				t.Errorf("%d Failed events: %v", n, eventsOf(log, events.Failed))
			}
			if ids := queueIDs(t, q); len(ids) != 0 {
				t.Errorf("queue not empty: %v", ids)
			}
		})
	}
}

// TestTemporaryRecipient: one recipient of two at the same host is
// refused for now; the other gets the message at once, the refused one
// later, each exactly once.
func TestTemporaryRecipient(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) {
		first := true
		f.rcptErr = func(_ int, to string) error {
			if to == "b@h.test" && first {
				first = false
				return smtpErr(452)
			}
			return nil
		}
	})
	cfg := testConfig(t, f.addr)
	q := openQueue(t, cfg.QueueDir)
	put(t, q, "<two@temp.test>", "from@src.test", "a@h.test", "b@h.test")
	_, log := startSender(t, cfg)
	labtest.Until(t, "both sent", func() bool { return countEvents(log, events.Sent, "") == 2 })
	if ids := queueIDs(t, q); len(ids) != 0 {
		t.Errorf("queue not empty: %v", ids)
	}
	checkOnce(t, f, []string{"<two@temp.test> a@h.test", "<two@temp.test> b@h.test"})
	if n := len(get(f, func(f *fake) []delivery { return f.deliveries })); n != 2 {
		t.Errorf("%d transactions, want 2", n)
	}
	if n := countEvents(log, events.Attempt, "temporary"); n != 1 {
		t.Errorf("%d temporary attempts, want 1", n)
	}
	if n := countEvents(log, events.Failed, ""); n != 0 {
		t.Errorf("Failed events: %v", eventsOf(log, events.Failed))
	}
}

// TestPermanentFailures: a 5xx answer fails the recipients it concerns:
// a Failed event names them, they leave the queue, the message is not
// delivered to them, and other recipients are not affected.
func TestPermanentFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		script     func(f *fake)
		from       string
		rcpts      []string
		delivered  []string // recipients that get the message
		failed     []string // recipients of the Failed events, sorted
		failedCode int
	}{
		{
			name:   "rcpt 550",
			script: func(f *fake) { f.rcptErr = rejectRcpt("bad@h.test", 550) },
			from:   "from@src.test", rcpts: []string{"bad@h.test"},
			failed: []string{"bad@h.test"}, failedCode: 550,
		},
		{
			name:   "rcpt 550 for one of two",
			script: func(f *fake) { f.rcptErr = rejectRcpt("bad@h.test", 550) },
			from:   "from@src.test", rcpts: []string{"bad@h.test", "good@h.test"},
			delivered: []string{"good@h.test"}, failed: []string{"bad@h.test"}, failedCode: 550,
		},
		{
			name: "mail 550",
			script: func(f *fake) {
				f.mailErr = func(_ int, from string) error {
					if from == "bounce@src.test" {
						return smtpErr(550)
					}
					return nil
				}
			},
			from: "bounce@src.test", rcpts: []string{"a@h.test", "b@h.test"},
			failed: []string{"a@h.test", "b@h.test"}, failedCode: 550,
		},
		{
			name:   "data 554",
			script: func(f *fake) { f.dataErr = func(int, []string) error { return smtpErr(554) } },
			from:   "from@src.test", rcpts: []string{"a@h.test"},
			failed: []string{"a@h.test"}, failedCode: 554,
		},
		{
			// b is refused for now at RCPT, then the data is refused for
			// good for a: b must still be retried and get the message.
			name: "data 554 with a recipient deferred",
			script: func(f *fake) {
				first := true
				f.rcptErr = func(_ int, to string) error {
					if to == "b@h.test" && first {
						first = false
						return smtpErr(451)
					}
					return nil
				}
				f.dataErr = func(_ int, rcpts []string) error {
					if slices.Contains(rcpts, "a@h.test") {
						return smtpErr(554)
					}
					return nil
				}
			},
			from: "from@src.test", rcpts: []string{"a@h.test", "b@h.test"},
			delivered: []string{"b@h.test"}, failed: []string{"a@h.test"}, failedCode: 554,
		},
		{
			name: "no route", from: "from@src.test", rcpts: []string{"x@nowhere.example"},
			failed: []string{"x@nowhere.example"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			if tc.script != nil {
				f.set(tc.script)
			}
			cfg := testConfig(t, f.addr)
			cfg.Bounce = BounceRecord // TestDSN covers the DSNs
			q := openQueue(t, cfg.QueueDir)
			env := put(t, q, "<perm@perm.test>", tc.from, tc.rcpts...)
			_, log := startSender(t, cfg)
			// Sent and Failed are logged once the queue is updated.
			labtest.Until(t, "queue empty and every outcome logged", func() bool {
				return len(queueIDs(t, q)) == 0 &&
					countEvents(log, events.Failed, "") > 0 &&
					countEvents(log, events.Sent, "") >= len(tc.delivered)
			})
			var want []string
			for _, r := range tc.delivered {
				want = append(want, "<perm@perm.test> "+r)
			}
			checkOnce(t, f, want)
			var failed []string
			for _, e := range eventsOf(log, events.Failed) {
				failed = append(failed, e.Rcpts...)
				if e.QueueID != env.ID || e.MessageID != env.MessageID {
					t.Errorf("Failed event for %s %s, want %s %s", e.QueueID, e.MessageID, env.ID, env.MessageID)
				}
				if e.Code != tc.failedCode {
					t.Errorf("Failed event with code %d, want %d", e.Code, tc.failedCode)
				}
			}
			slices.Sort(failed)
			if !slices.Equal(failed, tc.failed) {
				t.Errorf("failed recipients %v, want %v", failed, tc.failed)
			}
			if n := countEvents(log, events.Sent, ""); n != len(tc.delivered) {
				t.Errorf("%d Sent events, want %d", n, len(tc.delivered))
			}
		})
	}
}

func rejectRcpt(addr string, code int) func(int, string) error {
	return func(_ int, to string) error {
		if to == addr {
			return smtpErr(code)
		}
		return nil
	}
}

// TestReceiverBroken: while the receiver drops connections in the middle
// of DATA, or never greets, the message stays queued; once it recovers,
// the message is delivered exactly once.
func TestReceiverBroken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		break_  func(f *fake)
		broken  func(f *fake) int // how many times it failed the sender so far
		recover func(f *fake)
	}{
		{
			name:    "drop mid-DATA",
			break_:  func(f *fake) { f.drop = func(int) bool { return true } },
			broken:  func(f *fake) int { return f.drops },
			recover: func(f *fake) { f.drop = nil },
		},
		{
			name:    "no greeting",
			break_:  func(f *fake) { f.mute = true },
			broken:  func(f *fake) int { return len(f.mutedConns) },
			recover: func(f *fake) { f.mute = false },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.set(tc.break_)
			cfg := testConfig(t, f.addr)
			cfg.CommandTimeout = duration.Duration(50 * time.Millisecond)
			q := openQueue(t, cfg.QueueDir)
			env := put(t, q, "<broken@broken.test>", "from@src.test", "u@h.test")
			_, log := startSender(t, cfg)
			labtest.Until(t, "three failed tries", func() bool { return get(f, tc.broken) >= 3 })
			if ids := queueIDs(t, q); !slices.Equal(ids, []string{env.ID}) {
				t.Errorf("while the receiver is broken, queue holds %v, want [%s]", ids, env.ID)
			}
			if n := len(f.delivered()); n != 0 {
				t.Errorf("%d deliveries by a broken receiver", n)
			}
			f.set(tc.recover)
			labtest.Until(t, "queue empty", queueEmpty(t, q))
			checkOnce(t, f, []string{"<broken@broken.test> u@h.test"})
			if n := countEvents(log, events.Attempt, "temporary"); n < 3 {
				t.Errorf("%d temporary attempts, want at least 3", n)
			}
			if n := countEvents(log, events.Failed, ""); n != 0 {
				t.Errorf("Failed events: %v", eventsOf(log, events.Failed))
			}
		})
	}
}

// TestGiveUp: a receiver that never greets fails every attempt; after
// MaxAttempts the message is failed and leaves the queue.
func TestGiveUp(t *testing.T) {
	const maxAttempts = 3
	f := newFake(t)
	f.set(func(f *fake) { f.mute = true })
	cfg := testConfig(t, f.addr)
	cfg.CommandTimeout = duration.Duration(20 * time.Millisecond)
	cfg.MaxAttempts = maxAttempts
	cfg.Bounce = BounceRecord
	q := openQueue(t, cfg.QueueDir)
	put(t, q, "<giveup@giveup.test>", "from@src.test", "u@h.test")
	_, log := startSender(t, cfg)
	labtest.Until(t, "queue empty and the failure logged", func() bool {
		return len(queueIDs(t, q)) == 0 && countEvents(log, events.Failed, "") > 0
	})
	labtest.Until(t, "every connection accepted", func() bool {
		return get(f, func(f *fake) int { return len(f.mutedConns) }) >= maxAttempts
	})
	if n := countEvents(log, events.Attempt, "temporary"); n != maxAttempts {
		t.Errorf("%d temporary attempts, want %d", n, maxAttempts)
	}
	failed := eventsOf(log, events.Failed)
	if len(failed) != 1 || !slices.Equal(failed[0].Rcpts, []string{"u@h.test"}) || !strings.Contains(failed[0].Error, "gave up") {
		t.Errorf("Failed events %+v, want one giving up on u@h.test", failed)
	}
	if n := get(f, func(f *fake) int { return len(f.mutedConns) }); n != maxAttempts {
		t.Errorf("%d connections, want %d", n, maxAttempts)
	}
}
