package lab

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// senders are several sending hosts (a sender's replicas on a swarm),
// each with its own queue and identd, played as the run's one sender: the
// run asks them what it asks one sender and never how many there are.
//
//   - The injection is split round robin (sender.Injection.Share): host k
//     of n injects every n-th message from the k-th, each at its due time
//     in the whole schedule, all at once.
//   - Their logs are one log. A connection id names its host
//     ("sender-2/s5"), since each host counts its own from s1; queue ids
//     and Message-IDs carry their host's clock and are apart already.
//   - They are idle when every one is.
type senders struct {
	hosts []SenderHandle
}

// newSenders plays hs as one sender; one host is itself.
func newSenders(hs []SenderHandle) SenderHandle {
	if len(hs) == 1 {
		return hs[0]
	}
	return &senders{hosts: hs}
}

// hostName is the name of the k-th host (from 0) in connection ids.
func hostName(k int) string { return fmt.Sprintf("sender-%d", k+1) }

func (s *senders) Role() topology.Role { return topology.Sender }

// FullLog is true when every host's log is.
func (s *senders) FullLog() bool {
	for _, h := range s.hosts {
		if !h.FullLog() {
			return false
		}
	}
	return true
}

// Settle is the most any host needs.
func (s *senders) Settle() int {
	n := 1
	for _, h := range s.hosts {
		n = max(n, h.Settle())
	}
	return n
}

// Idle is true when every host holds no message in transit.
func (s *senders) Idle(ctx context.Context) (bool, error) {
	for _, h := range s.hosts {
		if idle, err := h.Idle(ctx); err != nil || !idle {
			return false, err
		}
	}
	return true, nil
}

// Keep keeps each host's evidence (a Go sender's is its events).
func (s *senders) Keep(ctx context.Context, dir string) error {
	for _, h := range s.hosts {
		if err := h.Keep(ctx, dir); err != nil {
			return err
		}
	}
	return nil
}

// named is e as the run's one log holds it: its connection named for
// host k.
func named(e events.Event, k int) events.Event {
	if e.Conn != "" {
		e.Conn = hostName(k) + "/" + e.Conn
	}
	return e
}

// Events is every host's log, connections named for their hosts.
func (s *senders) Events(ctx context.Context) ([]events.Event, error) {
	var out []events.Event
	for k, h := range s.hosts {
		evs, err := h.Events(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hostName(k), err)
		}
		for _, e := range evs {
			out = append(out, named(e, k))
		}
	}
	return out, nil
}

// EachEvent streams every host's log in turn (events.Sorter puts them in
// time order), connections named for their hosts.
func (s *senders) EachEvent(ctx context.Context, each func(events.Event) error) error {
	for k, h := range s.hosts {
		if err := eachEvent(ctx, h, func(e events.Event) error { return each(named(e, k)) }); err != nil {
			return fmt.Errorf("%s: %w", hostName(k), err)
		}
	}
	return nil
}

// Counts sums the hosts' event counts (the progress line's queued count).
func (s *senders) Counts(ctx context.Context) (map[events.Kind]int, error) {
	sum := map[events.Kind]int{}
	for _, h := range s.hosts {
		c, ok := h.(queueCounter)
		if !ok {
			return nil, fmt.Errorf("%T does not count its events", h)
		}
		m, err := c.Counts(ctx)
		if err != nil {
			return nil, err
		}
		for k, n := range m {
			sum[k] += n
		}
	}
	return sum, nil
}

// Inject runs every host's share of inj at once, on the one schedule,
// and merges what they did: the starts in workload order, each timed
// from the earliest host's start, so that a host that began late shows
// as lag.
func (s *senders) Inject(ctx context.Context, inj sender.Injection) sender.InjectResult {
	n := len(s.hosts)
	res := make([]sender.InjectResult, n)
	var wg sync.WaitGroup
	for k, h := range s.hosts {
		wg.Go(func() { res[k] = h.Inject(ctx, inj.Share(k, n)) })
	}
	wg.Wait()
	return mergeInjections(res)
}

// mergeInjections is the one result of several hosts' injection loops.
func mergeInjections(res []sender.InjectResult) sender.InjectResult {
	var out sender.InjectResult
	for _, r := range res {
		if !r.Start.IsZero() && (out.Start.IsZero() || r.Start.Before(out.Start)) {
			out.Start = r.Start
		}
	}
	var end time.Time
	for k, r := range res {
		out.Injected += r.Injected
		out.Queued = append(out.Queued, r.Queued...)
		for _, e := range r.Errors {
			out.Errors = append(out.Errors, hostName(k)+": "+e)
		}
		late := time.Duration(0)
		if !r.Start.IsZero() {
			late = r.Start.Sub(out.Start)
			end = later(end, r.Start.Add(r.Elapsed))
		}
		for _, st := range r.Starts {
			st.Began += late
			if st.Queued != 0 {
				st.Queued += late
			}
			out.Starts = append(out.Starts, st)
		}
	}
	if !end.IsZero() {
		out.Elapsed = end.Sub(out.Start)
	}
	slices.SortFunc(out.Starts, func(a, b pace.Start) int { return a.Index - b.Index })
	return out
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// StopInjection stops every host's loop.
func (s *senders) StopInjection(ctx context.Context) error {
	var first error
	for _, h := range s.hosts {
		if err := h.StopInjection(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Injected are the Queued events the hosts' loops recorded outside their
// logs.
func (s *senders) Injected(ctx context.Context) ([]events.Event, error) {
	var out []events.Event
	for _, h := range s.hosts {
		evs, err := h.Injected(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}
