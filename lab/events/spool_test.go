package events

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/smtplab/smtplab/lab/topology"
)

// TestSpoolSurvivesRestart: a second log on the same spool (the role
// started again after kill -9) has the first one's events, without the
// line the kill tore, and goes on after them.
func TestSpoolSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool", "events.jsonl")
	a := NewLog(topology.Receiver)
	if err := a.Spool(path); err != nil {
		t.Fatal(err)
	}
	a.Add(Event{Kind: ConnOpen, Conn: "c1"})
	a.Add(Event{Kind: Delivered, MessageID: "<1@x>"})
	// The kill tears the next line half way.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-12-05T00:00:00Z","kind":"deliv`)
	f.Close()

	b := NewLog(topology.Receiver)
	if err := b.Spool(path); err != nil {
		t.Fatal(err)
	}
	b.Add(Event{Kind: Delivered, MessageID: "<2@x>"})
	got := b.Events()
	if len(got) != 3 || got[1].MessageID != "<1@x>" || got[2].MessageID != "<2@x>" {
		t.Fatalf("after the restart the log holds %+v", got)
	}
	if c := b.Counts(); c[Delivered] != 2 || c[ConnOpen] != 1 {
		t.Errorf("counts after the restart: %v", c)
	}
	c := NewLog(topology.Receiver)
	if err := c.Spool(path); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Events()); n != 3 {
		t.Errorf("a third start reads %d events, want 3 (the torn line dropped, the new one kept)", n)
	}
}

func TestSpoolRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(path, []byte("not json\n"), 0o644)
	if err := NewLog(topology.DNS).Spool(path); err == nil {
		t.Error("a spool of garbage was read")
	}
}

// BenchmarkAdd is what logging one event costs, in memory only and with
// the spool (one write(2) per event), side by side in one run:
// go test ./lab/events -run '^$' -bench Add -count 5
func BenchmarkAdd(b *testing.B) {
	e := Event{Kind: Delivered, MessageID: "<1796507700086873992.1653.1@sender.lab.example.net>",
		Rcpts: []string{"recipient-foo-20@20.foo.example.com"}, Path: "/maildir/new/1796507700.M1P2.receiver", Conn: "r20"}
	b.Run("memory", func(b *testing.B) {
		l := NewLog(topology.Receiver)
		for b.Loop() {
			l.Add(e)
		}
	})
	b.Run("spool", func(b *testing.B) {
		l := NewLog(topology.Receiver)
		if err := l.Spool(filepath.Join(b.TempDir(), "events.jsonl")); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			l.Add(e)
		}
	})
}

// FuzzSpool: whatever a spool file holds (a kill may tear it anywhere),
// reading it back either fails or keeps whole lines only, and a log on it
// goes on appending.
func FuzzSpool(f *testing.F) {
	f.Add([]byte(`{"kind":"delivered","message_id":"<1@x>"}` + "\n" + `{"kind":"deliv`))
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"kind":"conn_open"}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		l := NewLog(topology.Sender)
		if err := l.Spool(path); err != nil {
			return
		}
		n := len(l.Events())
		l.Add(Event{Kind: Queued, MessageID: "<new@x>"})
		again := NewLog(topology.Sender)
		if err := again.Spool(path); err != nil {
			t.Fatalf("a spool this log wrote cannot be read back: %v", err)
		}
		if got := len(again.Events()); got != n+1 {
			t.Fatalf("read back %d events, want %d", got, n+1)
		}
	})
}

// AddAll logs its events in order, after what came before, with Role
// and Time filled in, in memory and in a spool alike; a log started again
// on the spool reads them all back.
func TestAddAllInOrder(t *testing.T) {
	for _, spooled := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		l := NewLog(topology.Receiver)
		if spooled {
			if err := l.Spool(path); err != nil {
				t.Fatal(err)
			}
		}
		l.Add(Event{Kind: Command, Name: "MAIL"})
		l.AddAll(Event{Kind: Delivered, Path: "/a"}, Event{Kind: Delivered, Path: "/b"}, Event{Kind: Command, Name: "DATA"})
		l.AddAll()
		got := l.Events()
		if len(got) != 4 || got[1].Path != "/a" || got[2].Path != "/b" || got[3].Name != "DATA" {
			t.Fatalf("spool %v: events %+v", spooled, got)
		}
		for _, e := range got {
			if e.Role != topology.Receiver || e.Time.IsZero() {
				t.Errorf("spool %v: %+v without its role or time", spooled, e)
			}
		}
		if c := l.Counts(); c[Delivered] != 2 || c[Command] != 2 {
			t.Errorf("spool %v: counts %v", spooled, c)
		}
		if spooled {
			again := NewLog(topology.Receiver)
			if err := again.Spool(path); err != nil || len(again.Events()) != 4 {
				t.Errorf("read back: %v, %d events", err, len(again.Events()))
			}
		}
	}
}
