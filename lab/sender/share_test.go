package sender

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
)

// numbered is a workload of n messages, message i (from 0) to ui@h.test.
func numbered(n int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Round: 1, N: i + 1, From: "loop@src.test", To: fmt.Sprintf("u%d@h.test", i),
			Data: fmt.Sprintf("Subject: message %d\n\nbody %d\n", i+1, i+1)}
	}
	return msgs
}

// recipients are the messages' recipients, in order.
func recipients(msgs []Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.To)
	}
	return out
}

// Share splits a workload round robin: share k of n holds every n-th
// message from the k-th, each with its place in the whole workload; every
// message is in exactly one share; the pace and the way in are kept; a
// share of a share keeps the places of the whole.
func TestShareRoundRobin(t *testing.T) {
	inj := Injection{Pace: pace.Spec{Mode: pace.Rate, PerSecond: 7, Ramp: time.Second}, Messages: numbered(11), Direct: true}
	for _, n := range []int{1, 2, 3, 4, 11, 13} {
		seen := map[int]int{} // place -> shares holding it
		for k := range n {
			s := inj.Share(k, n)
			if s.Pace != inj.Pace || !s.Direct {
				t.Errorf("Share(%d, %d): pace %+v direct %v, want the whole's %+v direct", k, n, s.Pace, s.Direct, inj.Pace)
			}
			var want []int
			for i := k; i < len(inj.Messages); i += n {
				want = append(want, i)
			}
			if !slices.Equal(s.Places, want) {
				t.Errorf("Share(%d, %d): places %v, want %v", k, n, s.Places, want)
			}
			if len(s.Messages) != len(s.Places) {
				t.Fatalf("Share(%d, %d): %d messages for %d places", k, n, len(s.Messages), len(s.Places))
			}
			for j, p := range s.Places {
				if s.Messages[j] != inj.Messages[p] {
					t.Errorf("Share(%d, %d): message %d is %+v, want the whole's message at place %d, %+v", k, n, j, s.Messages[j], p, inj.Messages[p])
				}
				seen[p]++
			}
			if err := s.ValidatePlaces(); err != nil {
				t.Errorf("Share(%d, %d): %v", k, n, err)
			}
		}
		for p := range inj.Messages {
			if seen[p] != 1 {
				t.Errorf("split in %d: message at place %d is in %d shares, want 1", n, p, seen[p])
			}
		}
	}
	// The whole's own places are its indexes, and it is its only share.
	if whole := inj.Share(0, 1); !slices.Equal(whole.Places, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) ||
		!slices.Equal(recipients(whole.Messages), recipients(inj.Messages)) {
		t.Errorf("Share(0, 1): places %v, messages %v", whole.Places, recipients(whole.Messages))
	}

	// A share of a share: the second of three (places 1 4 7 10), split in
	// two, is places 1 7 and 4 10 of the whole.
	mid := inj.Share(1, 3)
	for k, want := range [][]int{{1, 7}, {4, 10}} {
		s := mid.Share(k, 2)
		if !slices.Equal(s.Places, want) {
			t.Errorf("Share(1, 3).Share(%d, 2): places %v, want %v", k, s.Places, want)
		}
		var wantTo []string
		for _, p := range want {
			wantTo = append(wantTo, fmt.Sprintf("u%d@h.test", p))
		}
		if got := recipients(s.Messages); !slices.Equal(got, wantTo) {
			t.Errorf("Share(1, 3).Share(%d, 2): messages to %v, want %v", k, got, wantTo)
		}
	}

	// More senders than messages: the ones past the end get nothing.
	if s := inj.Share(12, 13); len(s.Messages) != 0 || len(s.Places) != 0 {
		t.Errorf("Share(12, 13) of 11 messages: %d messages, places %v", len(s.Messages), s.Places)
	}
	// The whole is left as it was.
	if inj.Places != nil || len(inj.Messages) != 11 {
		t.Errorf("Share changed the whole: places %v, %d messages", inj.Places, len(inj.Messages))
	}
}

// ValidatePlaces accepts no places (the whole workload) and one place per
// message, none negative, none twice; it refuses the rest, naming what is
// wrong.
func TestValidatePlaces(t *testing.T) {
	three := numbered(3)
	for _, tc := range []struct {
		name   string
		places []int
		err    string
	}{
		{"none", nil, ""},
		{"one each", []int{4, 0, 9}, ""},
		{"too few", []int{0, 1}, "places: 2 for 3 messages, want one per message"},
		{"too many", []int{0, 1, 2, 3}, "places: 4 for 3 messages, want one per message"},
		{"empty for three", []int{}, "places: 0 for 3 messages"},
		{"negative", []int{0, -1, 2}, "places[1]: -1 is not a place in a workload (0 or more)"},
		{"twice", []int{5, 2, 5}, "places[2]: 5 given twice"},
	} {
		err := Injection{Pace: pace.Spec{Mode: pace.Loop}, Messages: three, Places: tc.places}.ValidatePlaces()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.err)
		}
	}
}

// submitted is a fake Submit: it records what it is given and refuses
// the recipients in refuse.
type submitted struct {
	mu     sync.Mutex
	to     []string
	refuse map[string]bool
}

func (s *submitted) submit(_ context.Context, m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.to = append(s.to, m.To)
	if s.refuse[m.To] {
		return fmt.Errorf("refused %s", m.To)
	}
	return nil
}

// A share injected on a rate runs each message at its due time in the
// whole schedule: its Starts name the places in the whole workload and
// are due at Pace.Due(place), not at the due time of its place in the
// share; an error names the message by its place too.
func TestShareInjectedOnTheWholeSchedule(t *testing.T) {
	spec := pace.Spec{Mode: pace.Rate, PerSecond: 400, Ramp: 20 * time.Millisecond}
	whole := Injection{Pace: spec, Messages: numbered(12)}
	share := whole.Share(2, 3) // places 2 5 8 11
	sub := &submitted{refuse: map[string]bool{"u8@h.test": true}}
	var mu sync.Mutex
	var queuedAt []int
	res := injectEach(context.Background(), share, sub.submit, func(i int, _ time.Time) {
		mu.Lock()
		defer mu.Unlock()
		queuedAt = append(queuedAt, i)
	})
	if res.Injected != 3 {
		t.Errorf("injected %d, want 3", res.Injected)
	}
	if len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0], "message 9 to u8@h.test: refused") {
		t.Errorf("errors %q, want one for message 9 (place 8 of the whole)", res.Errors)
	}
	sub.mu.Lock()
	got := slices.Clone(sub.to)
	sub.mu.Unlock()
	slices.Sort(got)
	if want := []string{"u11@h.test", "u2@h.test", "u5@h.test", "u8@h.test"}; !slices.Equal(got, want) {
		t.Errorf("submitted %v, want %v", got, want)
	}
	// queued is given the index in the share, not the place.
	slices.Sort(queuedAt)
	if !slices.Equal(queuedAt, []int{0, 1, 3}) {
		t.Errorf("queued called for %v, want the share's indexes 0 1 3", queuedAt)
	}
	checkStarts(t, res.Starts, spec, []int{2, 5, 8, 11})
	for _, st := range res.Starts {
		if (st.Queued == 0) != (st.Index == 8) {
			t.Errorf("start %+v: queued %s, want 0 only for the refused place 8", st, st.Queued)
		}
	}
	// Its due times are not the share's own: a share's place is not its
	// index in the share.
	if spec.Due(2) == spec.Due(0) || spec.Due(11) == spec.Due(3) {
		t.Fatalf("the schedule does not tell places apart: %s %s", spec.Due(2), spec.Due(11))
	}

	// Cut short before anything ran: each message is named by its place.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = injectEach(ctx, share, sub.submit, nil)
	want := []string{"message 3: not injected", "message 6: not injected", "message 9: not injected", "message 12: not injected"}
	var errs []string
	for _, e := range res.Errors {
		errs = append(errs, e[:strings.Index(e, ": not injected")+len(": not injected")])
	}
	if res.Injected != 0 || !slices.Equal(errs, want) {
		t.Errorf("cancelled: injected %d, errors %q, want %q", res.Injected, res.Errors, want)
	}

	// Burst and loop have no due times, but the places still name the
	// whole workload's messages.
	loop := Injection{Pace: pace.Spec{Mode: pace.Loop}, Messages: whole.Messages}
	res = injectEach(context.Background(), loop.Share(1, 4), (&submitted{}).submit, nil)
	checkStarts(t, res.Starts, loop.Pace, []int{1, 5, 9})
}

// checkStarts: starts are places, in order, each due when spec says.
func checkStarts(t *testing.T, starts []pace.Start, spec pace.Spec, places []int) {
	t.Helper()
	var got []int
	for _, st := range starts {
		got = append(got, st.Index)
		if want := spec.Due(st.Index); st.Due != want {
			t.Errorf("start at place %d: due %s, want %s", st.Index, st.Due, want)
		}
	}
	if !slices.Equal(got, places) {
		t.Errorf("starts at places %v, want %v", got, places)
	}
}

// InjectDirect of a share commits the share's messages to the queue, in
// its order, and reports them by their places in the whole workload.
func TestShareInjectedDirect(t *testing.T) {
	spec := pace.Spec{Mode: pace.Rate, PerSecond: 500}
	whole := Injection{Pace: spec, Messages: sixMessages(), Direct: true}
	share := whole.Share(1, 2) // places 1 3 5: messages 2, 4 (refused) and 6
	dir := t.TempDir()
	res := InjectDirect(context.Background(), share, dir, "inject.test")
	if res.Injected != 2 {
		t.Errorf("injected %d, want 2 (errors %q)", res.Injected, res.Errors)
	}
	if len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0], "message 4 to not-an-address: sendmail: ") {
		t.Errorf("errors %q, want one for message 4, the whole workload's", res.Errors)
	}
	checkStarts(t, res.Starts, spec, []int{1, 3, 5})
	var got []string
	for _, m := range queued(t, dir) {
		got = append(got, strings.Join(m.env.Rcpts, ","))
	}
	slices.Sort(got) // on a rate, two sendmails may overlap
	if want := []string{whole.Messages[1].To, whole.Messages[5].To}; !slices.Equal(got, want) {
		t.Errorf("queued to %v, want %v", got, want)
	}
}
