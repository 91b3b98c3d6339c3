package lab

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
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
// most one line per `every`, a note at once whenever one comes, and the
// final state (without an ETA) on a line of its own. `every` is an hour
// or 0, so nothing here depends on how fast the test runs.
func TestPlainProgress(t *testing.T) {
	snap := func(n int) Snapshot {
		return Snapshot{Delivered: n, Total: 200, Queued: 2 * n, OpenConns: 3, LineQueue: -1, Elapsed: time.Duration(n) * 100 * time.Millisecond, ETA: -1}
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
	v.note("injection done: %d of %d messages queued", 100, 200)
	v.show(snap(51))
	v.done(snap(200), false)
	want := []string{
		"delivered 1/200  queued 2  open sessions 3  elapsed 0.1 s  ETA -",
		"injection done: 100 of 200 messages queued",
		"delivered 200/200  queued 400  open sessions 3  elapsed 20.0 s",
	}
	if got := lines(&b); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines\n%q, want\n%q", got, want)
	}

	// every 0: a line for every show.
	b.Reset()
	v = newProgressView(Options{Progress: &b}, 200)
	v.every = 0
	for n := 1; n <= 5; n++ {
		v.show(snap(n))
	}
	v.done(snap(7), true)
	if got := lines(&b); len(got) != 6 || got[4] != snap(5).String() || got[5] != "stopped: "+snap(7).figures(false) {
		t.Errorf("every 0: %q, want 5 lines then the stopped one", got)
	}
}

// On a terminal the bar is drawn with the short figures at its end; a
// note clears it and stands on a line of its own; the final state ends
// it.
func TestTerminalProgress(t *testing.T) {
	var b bytes.Buffer
	v := newProgressView(Options{Progress: &b, Terminal: true}, 200)
	if v.bar == nil {
		t.Fatal("no bar on a terminal")
	}
	first := Snapshot{Delivered: 5, Total: 200, Queued: 40, OpenConns: 17, LineQueue: 8, Elapsed: 1800 * time.Millisecond, ETA: 40 * time.Second}
	v.show(first)
	v.note("injection done: 200 of 200 messages queued in 66.3 s; waiting for the sender's queue to drain")
	v.show(Snapshot{Delivered: 150, Total: 200, Queued: 200, OpenConns: 2, LineQueue: 0, Elapsed: 70 * time.Second, ETA: 23 * time.Second})
	v.done(Snapshot{Delivered: 200, Total: 200, Queued: 200, LineQueue: 0, Elapsed: 80 * time.Second}, false)
	out := b.String()
	order := []string{
		"delivered 5/200  queued 40  sessions 17  DNS queue 8  1.8 s  ETA 40 s",
		"\rinjection done: 200 of 200 messages queued in 66.3 s; waiting for the sender's queue to drain\n",
		"delivered 150/200  queued 200  sessions 2  DNS queue 0  70.0 s  ETA 23 s",
		"\ndelivered 200/200  queued 200  open sessions 0  DNS line queue 0  elapsed 80.0 s\n",
	}
	at := 0
	for _, want := range order {
		i := strings.Index(out[at:], want)
		if i < 0 {
			t.Fatalf("no %q after byte %d of %q", want, at, out)
		}
		at += i + len(want)
	}
	if !strings.HasSuffix(out, order[len(order)-1]) {
		t.Errorf("output does not end with the final state: %q", out)
	}
}

// No writer, no view: a nil view shows, notes and ends without a word.
func TestNoProgress(t *testing.T) {
	v := newProgressView(Options{}, 200)
	if v != nil {
		t.Fatalf("a view without a writer: %+v", v)
	}
	v.show(Snapshot{})
	v.note("nothing")
	v.done(Snapshot{}, true)
}

func TestSnapshotString(t *testing.T) {
	s := Snapshot{Delivered: 12, Total: 200, Queued: 40, OpenConns: 4, LineQueue: 7, Elapsed: 1500 * time.Millisecond, ETA: 23400 * time.Millisecond}
	if got, want := s.String(), "delivered 12/200  queued 40  open sessions 4  DNS line queue 7  elapsed 1.5 s  ETA 24 s"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got, want := s.short(), "delivered 12/200  queued 40  sessions 4  DNS queue 7  1.5 s  ETA 24 s"; got != want {
		t.Errorf("short %q, want %q", got, want)
	}
	s.ETA = 100 * time.Millisecond
	if got := s.eta(); got != "ETA 1 s" {
		t.Errorf("ETA of 100 ms: %q, want rounded up to 1 s (0 s is for nothing left)", got)
	}
	s.LineQueue, s.Queued, s.ETA = -1, -1, -1
	if got, want := s.String(), "delivered 12/200  queued -  open sessions 4  elapsed 1.5 s  ETA -"; got != want {
		t.Errorf("without a line, queued unknown, no ETA: %q, want %q", got, want)
	}
}

// The ETA follows the pace schedule while it runs, then the delivery
// rate so far; unknown with nothing delivered and no schedule; 0 once
// every message is in.
func TestEstimate(t *testing.T) {
	s := func(delivered int, elapsed time.Duration) Snapshot {
		return Snapshot{Delivered: delivered, Total: 200, Elapsed: elapsed}
	}
	for _, tc := range []struct {
		name string
		s    Snapshot
		span time.Duration
		want time.Duration
	}{
		{"nothing delivered, not paced", s(0, 5*time.Second), 0, -1},
		{"a quarter in 10 s", s(50, 10*time.Second), 0, 30 * time.Second},
		{"paced, schedule running", s(0, 6*time.Second), 66 * time.Second, 60 * time.Second},
		{"paced, schedule running, some delivered", s(100, 30*time.Second), 66 * time.Second, 36 * time.Second},
		{"paced, schedule over", s(190, 95*time.Second), 66 * time.Second, 5 * time.Second},
		{"paced, schedule over, nothing delivered", s(0, 70*time.Second), 66 * time.Second, -1},
		{"all delivered", s(200, 70*time.Second), 66 * time.Second, 0},
		{"more than all (duplicates)", s(201, 70*time.Second), 0, 0},
	} {
		if got := estimate(tc.s, tc.span); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The injecting line says how the workload is paced and how the ETA is
// estimated.
func TestPaceOf(t *testing.T) {
	rate := pace.Spec{Mode: pace.Rate, PerSecond: 3}
	if got, want := paceOf(rate, rate.Span(200)), "at 3 a second (the last due at 66.3 s)"; got != want {
		t.Errorf("rate: %q, want %q", got, want)
	}
	ramp := pace.Spec{Mode: pace.Rate, PerSecond: 10, Ramp: 2 * time.Second}
	if got := paceOf(ramp, ramp.Span(200)); !strings.Contains(got, "after a ramp of 2.0 s") {
		t.Errorf("ramp: %q", got)
	}
	if got := paceOf(pace.Spec{Mode: pace.Burst}, 0); !strings.Contains(got, "burst") {
		t.Errorf("burst: %q", got)
	}
	if got := paceOf(pace.Spec{Mode: pace.Loop}, 0); !strings.Contains(got, "as fast as the machine goes") {
		t.Errorf("loop: %q", got)
	}
	if !strings.Contains(etaBasis(time.Minute), "pace schedule") || strings.Contains(etaBasis(0), "schedule") {
		t.Errorf("ETA basis %q paced, %q not", etaBasis(time.Minute), etaBasis(0))
	}
}
