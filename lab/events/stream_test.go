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
