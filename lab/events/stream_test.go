package events

import (
	"bytes"
	"path/filepath"
	"testing"
)

// A spooled log keeps its events on disk only: Events and Stream read
// them back in order, the events logged before Spool included, and the
// counts cover them all.
func TestSpooledLogStreams(t *testing.T) {
	l := NewLog("dns")
	l.Add(Event{Kind: Query, Name: "before.example."})
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := l.Spool(path); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a.example.", "b.example."} {
		l.Add(Event{Kind: Query, Name: n})
	}
	if len(l.chunks) != 0 {
		t.Errorf("%d chunks in memory after Spool, want none", len(l.chunks))
	}
	var b bytes.Buffer
	if err := l.Stream(&b); err != nil {
		t.Fatal(err)
	}
	streamed, err := ReadJSONL(&b)
	if err != nil {
		t.Fatal(err)
	}
	got := l.Events()
	for _, evs := range [][]Event{streamed, got} {
		if len(evs) != 3 || evs[0].Name != "before.example." || evs[2].Name != "b.example." {
			t.Errorf("events %+v", evs)
		}
	}
	if c := l.Counts()[Query]; c != 3 {
		t.Errorf("counts %d, want 3", c)
	}
	// A role started again on the same spool counts what it had logged.
	again := NewLog("dns")
	if err := again.Spool(path); err != nil {
		t.Fatal(err)
	}
	if c := again.Counts()[Query]; c != 3 || len(again.Events()) != 3 {
		t.Errorf("after a restart: counts %d, events %d", c, len(again.Events()))
	}
}

// A memory log streamed while events are added gives whole lines, in
// order, each stream a prefix of the next (run with -race: Stream reads
// the blocks outside the lock).
func TestMemoryLogStreamsWhileAdding(t *testing.T) {
	l := NewLog("receiver")
	const n = 20_000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			l.Add(Event{Kind: Delivered, Seq: i, MessageID: "<m@x>"})
		}
	}()
	last := 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		var b bytes.Buffer
		if err := l.Stream(&b); err != nil {
			t.Fatal(err)
		}
		evs, err := ReadJSONL(&b)
		if err != nil {
			t.Fatalf("a stream taken while adding: %v", err)
		}
		if len(evs) < last {
			t.Fatalf("a stream of %d events after one of %d", len(evs), last)
		}
		for i, e := range evs {
			if e.Seq != i {
				t.Fatalf("event %d has seq %d", i, e.Seq)
			}
		}
		last = len(evs)
	}
	if last != n || len(l.Events()) != n {
		t.Errorf("streamed %d, Events %d, want %d", last, len(l.Events()), n)
	}
}
