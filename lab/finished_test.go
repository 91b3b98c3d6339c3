package lab

import "testing"

// The end of a run, once the sender's queue is empty: never before a real
// receiver's queue is empty too, never before every message arrived
// unless the queues stayed empty for realQueueSettle polls.
func TestFinished(t *testing.T) {
	for _, c := range []struct {
		name                string
		goModels            bool
		delivered, injected int
		receiverEmpty       bool
		emptyFor            int
		want                bool
	}{
		{"all arrived", false, 200, 200, false, 1, true},
		{"Go models: the rest failed for good", true, 197, 200, true, 1, true},
		{"real receiver still delivering", false, 197, 200, false, realQueueSettle + 5, false},
		{"real receiver empty, not settled", false, 197, 200, true, realQueueSettle - 1, false},
		{"real receiver empty, settled", false, 197, 200, true, realQueueSettle, true},
		{"duplicates do not end it early", false, 199, 200, true, 1, false},
	} {
		if got := finished(c.goModels, c.delivered, c.injected, c.receiverEmpty, c.emptyFor); got != c.want {
			t.Errorf("%s: finished = %v, want %v", c.name, got, c.want)
		}
	}
}
