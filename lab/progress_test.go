package lab

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// lines splits what the view wrote into its lines.
func lines(b *bytes.Buffer) []string {
	s := strings.TrimSuffix(b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// The plain view (not a terminal) writes its first line at once, then at
// most one line per `every`, and the final state on a line of its own.
// `every` is an hour or 0, so nothing here depends on how fast the test
// runs.
func TestPlainProgress(t *testing.T) {
	snap := func(n int) Snapshot {
		return Snapshot{Delivered: n, Total: 200, OpenConns: 3, LineQueue: -1, Elapsed: time.Duration(n) * 100 * time.Millisecond}
	}

	var b bytes.Buffer
	v := newProgressView(Options{Progress: &b}, 200)
	if v.bar != nil {
		t.Fatal("a bar for a writer that is not a terminal")
	}
	v.every = time.Hour
	v.show(snap(1))
	if got := lines(&b); len(got) != 1 || got[0] != snap(1).String() {
		t.Fatalf("after the first show: %q, want one line %q", got, snap(1))
	}
	for n := 2; n <= 50; n++ {
		v.show(snap(n))
	}
	if got := lines(&b); len(got) != 1 {
		t.Fatalf("%d lines within one interval, want the first only: %q", len(got), got)
	}
	v.done(snap(200), false)
	want := []string{snap(1).String(), snap(200).String()}
	if got := lines(&b); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines %q, want %q", got, want)
	}
	if !strings.HasPrefix(want[1], "delivered 200/200  open connections 3  no line  elapsed 20.0 s") {
		t.Errorf("final line %q", want[1])
	}

	// every 0: a line for every show.
	b.Reset()
	v = newProgressView(Options{Progress: &b}, 200)
	v.every = 0
	for n := 1; n <= 5; n++ {
		v.show(snap(n))
	}
	v.done(snap(7), true)
	if got := lines(&b); len(got) != 6 || got[4] != snap(5).String() || got[5] != "stopped: "+snap(7).String() {
		t.Errorf("every 0: %q, want 5 lines then the stopped one", got)
	}
}

// No writer, no view: a nil view shows and ends without a word.
func TestNoProgress(t *testing.T) {
	v := newProgressView(Options{}, 200)
	if v != nil {
		t.Fatalf("a view without a writer: %+v", v)
	}
	v.show(Snapshot{})
	v.done(Snapshot{}, true)
}

func TestSnapshotString(t *testing.T) {
	s := Snapshot{Delivered: 12, Total: 200, OpenConns: 4, LineQueue: 7, Elapsed: 1500 * time.Millisecond}
	if got, want := s.String(), "delivered 12/200  open connections 4  DNS line queue 7  elapsed 1.5 s"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	s.LineQueue = -1
	if got := s.String(); !strings.Contains(got, "  no line  ") {
		t.Errorf("%q: no line without a line", got)
	}
}
