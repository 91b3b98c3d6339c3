package sender

import (
	"slices"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// The retry schedule is honoured: after the k-th temporary failure of a
// message the sender waits Retry[k-1], the last wait repeating. Read from
// the Attempt events (each names its wait), not from a clock.
func TestRetrySchedule(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) {
		f.rcptErr = func(n int, _ string) error {
			if n <= 4 {
				return smtpErr(451)
			}
			return nil
		}
	})
	cfg := testConfig(t, f.addr)
	cfg.Retry = []duration.Duration{duration.Duration(5 * time.Millisecond), duration.Duration(10 * time.Millisecond), duration.Duration(20 * time.Millisecond)}
	q := openQueue(t, cfg.QueueDir)
	put(t, q, "<r@retry.test>", "from@src.test", "u@h.test")
	_, log := startSender(t, cfg)
	labtest.Until(t, "the message sent", func() bool { return countEvents(log, events.Sent, "") == 1 })
	var waits []time.Duration
	for _, e := range eventsOf(log, events.Attempt) {
		if e.Result == "temporary" {
			waits = append(waits, e.Duration)
		}
	}
	want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	checkOnce(t, f, []string{"<r@retry.test> u@h.test"})
}

func TestRetryWait(t *testing.T) {
	r := []time.Duration{1, 2, 3}
	for attempt, want := range map[int]time.Duration{0: 1, 1: 1, 2: 2, 3: 3, 4: 3, 99: 3} {
		if got := retryWait(r, attempt); got != want {
			t.Errorf("retryWait(%d) = %d, want %d", attempt, got, want)
		}
	}
}

// A session carries at most MaxPerConnection messages; the rest of the
// host's mail goes over fresh ones.
func TestPerConnectionCap(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	cfg.MaxPerHost, cfg.MaxPerConnection = 1, 3
	q := openQueue(t, cfg.QueueDir)
	var want []string
	for i := 0; i < 10; i++ {
		id := "<c" + string(rune('a'+i)) + "@cap.test>"
		put(t, q, id, "from@src.test", "u@one.test")
		want = append(want, id+" u@one.test")
	}
	_, log := startSender(t, cfg)
	labtest.Until(t, "every message sent", func() bool { return countEvents(log, events.Sent, "") == 10 })
	checkOnce(t, f, want)
	caps := 0
	for _, e := range eventsOf(log, events.ConnClose) {
		if e.Count > 3 {
			t.Errorf("connection %s carried %d messages, cap 3", e.Conn, e.Count)
		}
		if e.Reason == "cap" {
			caps++
		}
	}
	if caps < 3 {
		t.Errorf("%d connections closed at the cap, want at least 3 (10 messages, 3 each)", caps)
	}
}
