package events

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSorterIsAStableSort: whatever the chunk, the sorter writes what a
// stable sort by time of everything added gives, ties in the order added
// (events of one log out of order, many at one instant, as roles log).
func TestSorterIsAStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1999, 19))
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	var all []Event
	for log := range 4 {
		for i := range 500 {
			// Coarse times: many ties, within a log and across logs.
			at := t0.Add(time.Duration(rng.IntN(200)) * time.Millisecond)
			all = append(all, Event{Time: at, Kind: Queued, MessageID: fmt.Sprintf("<%d.%d@x>", log, i)})
		}
	}
	want := slices.Clone(all)
	slices.SortStableFunc(want, byTime)
	for _, chunk := range []int{1, 7, 100, 5000} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			s, err := NewSorter(filepath.Join(t.TempDir(), "sort"), chunk)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, e := range all {
				s.Add(e)
			}
			var b bytes.Buffer
			var seen []string
			if err := s.WriteTo(&b, func(e Event) { seen = append(seen, e.MessageID) }); err != nil {
				t.Fatal(err)
			}
			got, err := ReadJSONL(&b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || s.Len() != len(want) {
				t.Fatalf("%d events out, %d counted, want %d", len(got), s.Len(), len(want))
			}
			for i := range want {
				if got[i].MessageID != want[i].MessageID || !got[i].Time.Equal(want[i].Time) || seen[i] != want[i].MessageID {
					t.Fatalf("event %d: %s at %s (each saw %s), want %s at %s", i, got[i].MessageID, got[i].Time, seen[i], want[i].MessageID, want[i].Time)
				}
			}
		})
	}
}
