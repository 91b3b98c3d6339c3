package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// fakeSender is one sending host as a run sees it: it records the
// injection it is given and answers with what it was told to.
type fakeSender struct {
	mu     sync.Mutex
	got    []sender.Injection
	res    sender.InjectResult
	evs    []events.Event
	evErr  error
	idle   bool
	idErr  error
	counts map[events.Kind]int
	settle int
}

func (f *fakeSender) Role() topology.Role { return topology.Sender }
func (f *fakeSender) Events(context.Context) ([]events.Event, error) {
	return slices.Clone(f.evs), f.evErr
}
func (f *fakeSender) FullLog() bool                                    { return true }
func (f *fakeSender) Idle(context.Context) (bool, error)               { return f.idle, f.idErr }
func (f *fakeSender) Settle() int                                      { return f.settle }
func (f *fakeSender) Keep(context.Context, string) error               { return nil }
func (f *fakeSender) StopInjection(context.Context) error              { return nil }
func (f *fakeSender) Injected(context.Context) ([]events.Event, error) { return nil, nil }
func (f *fakeSender) Counts(context.Context) (map[events.Kind]int, error) {
	return maps.Clone(f.counts), nil
}

func (f *fakeSender) Inject(_ context.Context, inj sender.Injection) sender.InjectResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, inj)
	return f.res
}

// injections are the injections f was given.
func (f *fakeSender) injections() []sender.Injection {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// streamingSender streams its log (a Go role's handle does) and refuses
// to give it whole, so a caller that asks for it whole fails.
type streamingSender struct{ *fakeSender }

func (s streamingSender) Events(context.Context) ([]events.Event, error) {
	return nil, errors.New("asked for the whole log of a host that streams it")
}

func (s streamingSender) EachEvent(_ context.Context, each func(events.Event) error) error {
	for _, e := range s.evs {
		if err := each(e); err != nil {
			return err
		}
	}
	return s.evErr
}

// uncounted is a sender that does not count its events.
type uncounted struct{ SenderHandle }

// One host is played as itself.
func TestNewSendersOfOneIsItself(t *testing.T) {
	one := &fakeSender{}
	if h := newSenders([]SenderHandle{one}); h != SenderHandle(one) {
		t.Errorf("newSenders of one host: %T %v, want the host itself", h, h)
	}
	if _, ok := newSenders([]SenderHandle{one, &fakeSender{}}).(*senders); !ok {
		t.Errorf("newSenders of two hosts is not senders")
	}
}

// Several hosts inject one workload: each is given its round-robin share
// (its messages with their places in the whole), and what they did is
// one result: the starts in workload order, each timed from the earliest
// host's start (a host that began late shows as late), the injected
// counts summed, each error named for its host.
func TestSendersInject(t *testing.T) {
	var msgs []sender.Message
	for i := range 7 {
		msgs = append(msgs, sender.Message{Round: 1, N: i + 1, From: "s@example.com", To: fmt.Sprintf("u%d@h.test", i)})
	}
	spec := pace.Spec{Mode: pace.Rate, PerSecond: 10}
	inj := sender.Injection{Pace: spec, Messages: msgs, Direct: true}
	t0 := time.Date(1999, 3, 1, 12, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	// The second host started first; the first 2s later, the third 500ms
	// later. Each names its starts by their places in the whole.
	hosts := []*fakeSender{
		{res: sender.InjectResult{Injected: 2, Start: t0.Add(2 * time.Second), Elapsed: 1500 * ms,
			Errors: []string{"message 7 to u6@h.test: refused"},
			Starts: []pace.Start{{Index: 0, Due: 0, Began: 1 * ms, Queued: 3 * ms}, {Index: 3, Due: spec.Due(3), Began: 301 * ms, Queued: 302 * ms}, {Index: 6, Due: spec.Due(6), Began: 601 * ms}}}},
		{res: sender.InjectResult{Injected: 2, Start: t0, Elapsed: 3 * time.Second,
			Starts: []pace.Start{{Index: 1, Due: spec.Due(1), Began: 102 * ms, Queued: 104 * ms}, {Index: 4, Due: spec.Due(4), Began: 402 * ms, Queued: 405 * ms}}}},
		{res: sender.InjectResult{Injected: 1, Start: t0.Add(500 * ms), Elapsed: time.Second,
			Errors: []string{"message 3 to u2@h.test: exit status 75", "message 6: not injected: context canceled"},
			Queued: []events.Event{{Kind: events.Queued, MessageID: "<2@h3>"}},
			Starts: []pace.Start{{Index: 2, Due: spec.Due(2), Began: 203 * ms}}}},
	}
	hs := make([]SenderHandle, len(hosts))
	for k, h := range hosts {
		hs[k] = h
	}
	res := newSenders(hs).Inject(context.Background(), inj)

	for k, h := range hosts {
		got := h.injections()
		if len(got) != 1 {
			t.Fatalf("host %d was given %d injections, want 1", k, len(got))
		}
		var places []int
		var to []string
		for p := k; p < len(msgs); p += len(hosts) {
			places = append(places, p)
			to = append(to, msgs[p].To)
		}
		var gotTo []string
		for _, m := range got[0].Messages {
			gotTo = append(gotTo, m.To)
		}
		if !slices.Equal(got[0].Places, places) || !slices.Equal(gotTo, to) {
			t.Errorf("host %d was given places %v, messages to %v; want places %v, messages to %v", k, got[0].Places, gotTo, places, to)
		}
		if got[0].Pace != spec || !got[0].Direct {
			t.Errorf("host %d was given pace %+v direct %v, want the whole's", k, got[0].Pace, got[0].Direct)
		}
	}

	if !res.Start.Equal(t0) {
		t.Errorf("start %s, want the earliest host's, %s", res.Start, t0)
	}
	// The last to end is the first host: 2s + 1.5s after t0.
	if res.Elapsed != 3500*ms {
		t.Errorf("elapsed %s, want 3.5s: from the earliest start to the latest end", res.Elapsed)
	}
	if res.Injected != 5 {
		t.Errorf("injected %d, want 5", res.Injected)
	}
	wantErrs := []string{"sender-1: message 7 to u6@h.test: refused", "sender-3: message 3 to u2@h.test: exit status 75", "sender-3: message 6: not injected: context canceled"}
	if !slices.Equal(res.Errors, wantErrs) {
		t.Errorf("errors %q, want %q", res.Errors, wantErrs)
	}
	if len(res.Queued) != 1 || res.Queued[0].MessageID != "<2@h3>" {
		t.Errorf("queued events %+v, want the third host's one", res.Queued)
	}
	s := time.Second
	want := []pace.Start{
		{Index: 0, Due: 0, Began: 2*s + 1*ms, Queued: 2*s + 3*ms},
		{Index: 1, Due: spec.Due(1), Began: 102 * ms, Queued: 104 * ms},
		{Index: 2, Due: spec.Due(2), Began: 703 * ms},
		{Index: 3, Due: spec.Due(3), Began: 2*s + 301*ms, Queued: 2*s + 302*ms},
		{Index: 4, Due: spec.Due(4), Began: 402 * ms, Queued: 405 * ms},
		{Index: 6, Due: spec.Due(6), Began: 2*s + 601*ms}, // not queued: stays 0
	}
	if !slices.Equal(res.Starts, want) {
		t.Errorf("starts\n%+v\nwant\n%+v", res.Starts, want)
	}
	// The judge sees the late host's lag.
	if k := pace.Judge(spec, res.Starts); k.LagMax < 2*s {
		t.Errorf("judged %+v: the host 2s late does not show as lag", k)
	}
}

// A host whose loop never began (its start unknown) adds its errors and
// takes no part in the timing.
func TestMergeInjectionsHostNeverBegan(t *testing.T) {
	t0 := time.Date(1999, 3, 1, 12, 0, 0, 0, time.UTC)
	res := mergeInjections([]sender.InjectResult{
		{Errors: []string{"inject: connection refused"}},
		{Injected: 1, Start: t0, Elapsed: time.Second, Starts: []pace.Start{{Index: 1, Began: 5 * time.Millisecond, Queued: 7 * time.Millisecond}}},
	})
	if !res.Start.Equal(t0) || res.Elapsed != time.Second || res.Injected != 1 {
		t.Errorf("start %s elapsed %s injected %d, want %s, 1s, 1", res.Start, res.Elapsed, res.Injected, t0)
	}
	if want := []string{"sender-1: inject: connection refused"}; !slices.Equal(res.Errors, want) {
		t.Errorf("errors %q, want %q", res.Errors, want)
	}
	if want := []pace.Start{{Index: 1, Began: 5 * time.Millisecond, Queued: 7 * time.Millisecond}}; !slices.Equal(res.Starts, want) {
		t.Errorf("starts %+v, want %+v", res.Starts, want)
	}
}

// The hosts' logs are one log: a connection id is named for its host,
// an event of no connection keeps none; whether a host streams its log
// or gives it whole; an error names its host.
func TestSendersEvents(t *testing.T) {
	first := &fakeSender{evs: []events.Event{
		{Kind: events.ConnOpen, Conn: "s1"},
		{Kind: events.Queued, MessageID: "<a>"},
		{Kind: events.Sent, Conn: "s1", MessageID: "<a>"},
	}}
	second := &fakeSender{evs: []events.Event{
		{Kind: events.ConnOpen, Conn: "s1"},
		{Kind: events.Queued, MessageID: "<b>"},
	}}
	third := &fakeSender{evs: []events.Event{{Kind: events.Attempt, Conn: "s2"}}}
	want := []string{
		"conn_open sender-1/s1", "queued ", "sent sender-1/s1",
		"conn_open sender-2/s1", "queued ",
		"attempt sender-3/s2",
	}
	show := func(evs []events.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, string(e.Kind)+" "+e.Conn)
		}
		return out
	}
	s := newSenders([]SenderHandle{first, second, third})
	evs, err := s.Events(context.Background())
	if err != nil || !slices.Equal(show(evs), want) {
		t.Errorf("Events: %q, %v; want %q", show(evs), err, want)
	}
	// The hosts' own logs are left as they were.
	if first.evs[0].Conn != "s1" {
		t.Errorf("the first host's log was changed: %+v", first.evs[0])
	}

	// EachEvent: the second host streams its log, the others give it whole.
	mixed := newSenders([]SenderHandle{first, streamingSender{second}, third})
	st, ok := mixed.(eventStreamer)
	if !ok {
		t.Fatalf("%T does not stream its events", mixed)
	}
	evs = nil
	if err := st.EachEvent(context.Background(), func(e events.Event) error { evs = append(evs, e); return nil }); err != nil || !slices.Equal(show(evs), want) {
		t.Errorf("EachEvent: %q, %v; want %q", show(evs), err, want)
	}

	// An error names the host it came from.
	boom := errors.New("control port gone")
	second.evErr = boom
	if _, err := s.Events(context.Background()); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "sender-2: ") {
		t.Errorf("Events with the second host failing: %v, want it named sender-2", err)
	}
	if err := st.EachEvent(context.Background(), func(events.Event) error { return nil }); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "sender-2: ") {
		t.Errorf("EachEvent with the second host failing: %v, want it named sender-2", err)
	}
	// What each returns ends the stream, named for the host it was at.
	stop := errors.New("enough")
	second.evErr = nil
	n := 0
	err = st.EachEvent(context.Background(), func(events.Event) error {
		if n++; n == 4 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !strings.HasPrefix(err.Error(), "sender-2: ") || n != 4 {
		t.Errorf("EachEvent stopped at the fourth event: %v after %d events, want it named sender-2 after 4", err, n)
	}
}

// The hosts' counts are summed; a host that does not count is an error.
func TestSendersCounts(t *testing.T) {
	a := &fakeSender{counts: map[events.Kind]int{events.Queued: 3, events.Sent: 2}}
	b := &fakeSender{counts: map[events.Kind]int{events.Queued: 4, events.Failed: 1}}
	s := newSenders([]SenderHandle{a, b})
	c, ok := s.(queueCounter)
	if !ok {
		t.Fatalf("%T does not count its events", s)
	}
	got, err := c.Counts(context.Background())
	if want := map[events.Kind]int{events.Queued: 7, events.Sent: 2, events.Failed: 1}; err != nil || !maps.Equal(got, want) {
		t.Errorf("Counts: %v, %v; want %v", got, err, want)
	}
	if _, err := newSenders([]SenderHandle{a, uncounted{b}}).(queueCounter).Counts(context.Background()); err == nil {
		t.Errorf("Counts with a host that does not count: no error")
	}
}

// The hosts are idle when every one is; they settle as the slowest; they
// are the sender.
func TestSendersIdle(t *testing.T) {
	for _, tc := range []struct {
		idle []bool
		want bool
	}{
		{[]bool{true, true, true}, true},
		{[]bool{false, true, true}, false},
		{[]bool{true, true, false}, false},
		{[]bool{true, false, true}, false},
	} {
		var hs []SenderHandle
		for _, i := range tc.idle {
			hs = append(hs, &fakeSender{idle: i})
		}
		if got, err := newSenders(hs).Idle(context.Background()); err != nil || got != tc.want {
			t.Errorf("hosts idle %v: Idle %v, %v; want %v", tc.idle, got, err, tc.want)
		}
	}
	boom := errors.New("no answer")
	s := newSenders([]SenderHandle{&fakeSender{idle: true}, &fakeSender{idErr: boom}})
	if idle, err := s.Idle(context.Background()); idle || !errors.Is(err, boom) {
		t.Errorf("Idle with a host not answering: %v, %v; want false and its error", idle, err)
	}
	s = newSenders([]SenderHandle{&fakeSender{settle: 1}, &fakeSender{settle: 10}, &fakeSender{settle: 2}})
	if s.Settle() != 10 || s.Role() != topology.Sender {
		t.Errorf("Settle %d, role %s; want 10, sender", s.Settle(), s.Role())
	}
}
