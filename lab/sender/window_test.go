package sender

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// TestQueueOldest: Oldest returns the n oldest IDs not skipped, in order,
// however the directory lists them.
func TestQueueOldest(t *testing.T) {
	q := openQueue(t, t.TempDir())
	var ids []string
	for i := 0; i < 50; i++ {
		ids = append(ids, put(t, q, fmt.Sprintf("<o%d@q>", i), "f@src.test", "a@h.test").ID)
	}
	skip := func(id string) bool { return slices.Index(ids, id)%2 == 0 }
	var want []string
	for i := 1; i < len(ids) && len(want) < 10; i += 2 {
		want = append(want, ids[i])
	}
	got, err := q.Oldest(10, skip)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Oldest(10, odd only) = %v, want %v", got, want)
	}
	if got, _ := q.Oldest(100, nil); !slices.Equal(got, ids) {
		t.Errorf("Oldest(100) = %d IDs, want all %d in order", len(got), len(ids))
	}
}

// TestWindow: with MaxInMemory 4, the sender never holds more than 4
// messages in memory while it works through 30, loads them oldest first,
// delivers each exactly once, and holds none once the queue is empty.
func TestWindow(t *testing.T) {
	const n, window = 30, 4
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	cfg.MaxInMemory = window
	q := openQueue(t, cfg.QueueDir)
	var want, order []string
	for i := 0; i < n; i++ {
		id, rcpt := fmt.Sprintf("<w%d@window.test>", i), fmt.Sprintf("u%d@h%d.test", i, i%3)
		order = append(order, put(t, q, id, "from@src.test", rcpt).ID)
		want = append(want, id+" "+rcpt)
	}
	log := events.NewLog("sender")
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	peak := 0
	log.Observe(func(events.Event) {
		in := s.InMemory()
		mu.Lock()
		peak = max(peak, in)
		mu.Unlock()
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	labtest.Until(t, "queue empty", queueEmpty(t, q))
	labtest.Until(t, "every message sent", func() bool { return countEvents(log, events.Sent, "") == n })
	checkOnce(t, f, want)
	mu.Lock()
	if peak != window {
		t.Errorf("at most %d messages in memory at once, want %d", peak, window)
	}
	mu.Unlock()
	if in := s.InMemory(); in != 0 {
		t.Errorf("%d messages still in memory with the queue empty", in)
	}
	var loaded []string
	for _, e := range eventsOf(log, events.Queued) {
		loaded = append(loaded, e.QueueID)
	}
	if !slices.Equal(loaded, order) {
		t.Errorf("loaded in the order %v, want the queue's %v", loaded, order)
	}
}
