package lab

import "testing"

// The end of a run, once the sender has let go of every message: at once
// when every one arrived; otherwise never before every role has read idle
// for the most polls any of them needs (a real MTA's Settle; 1 for the Go
// models, whose receiver delivers before it answers).
func TestFinished(t *testing.T) {
	const realSettle = 10
	for _, c := range []struct {
		name                string
		delivered, injected int
		idleFor, settle     int
		want                bool
	}{
		{"all arrived", 200, 200, 0, realSettle, true},
		{"Go models: the rest failed for good", 197, 200, 1, 1, true},
		{"real receiver still delivering", 197, 200, 0, realSettle, false},
		{"real receiver idle, not settled", 197, 200, realSettle - 1, realSettle, false},
		{"real receiver idle, settled", 197, 200, realSettle, realSettle, true},
		{"duplicates do not end it early", 199, 200, 1, realSettle, false},
	} {
		if got := finished(c.delivered, c.injected, c.idleFor, c.settle); got != c.want {
			t.Errorf("%s: finished = %v, want %v", c.name, got, c.want)
		}
	}
}
