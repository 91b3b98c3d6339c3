package lab

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/sender"
)

// drive runs the measured part on roles that are up and configured:
// injects the workload, waits for delivery (or the scenario's timeout, or
// Ctrl-C), collects every role's events and evidence (the Maildir into
// the run's folder), and concludes res. It returns when the last delivery
// was, for the overhead figures.
func drive(ctx context.Context, r running, p Plan, opt Options, res *Result, start time.Time) (lastDelivery time.Time, err error) {
	sc := p.Scenario
	res.Overhead.StartToInjection = time.Since(start)
	runCtx, cancel := context.WithTimeout(ctx, sc.Timeout.D())
	defer cancel()
	injected := make(chan sender.InjectResult, 1)
	go func() {
		injected <- r.sender.Inject(runCtx, p.Injection)
	}()
	inj, waitErr := waitForDelivery(runCtx, r, len(p.Injection.Messages), injected, opt)
	lastDelivery = time.Now()

	// Collect whatever happened, also after a timeout or Ctrl-C.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer ccancel()
	if err := r.sender.StopInjection(cctx); err != nil {
		return lastDelivery, errors.Join(waitErr, err)
	}
	evs, cerr := collectEvents(cctx, r)
	if cerr != nil {
		return lastDelivery, errors.Join(waitErr, cerr)
	}
	more, _ := r.sender.Injected(cctx)
	evs = withInjected(evs, append(inj.Queued, more...))
	for _, h := range r.all {
		if err := h.Keep(cctx, res.Dir); err != nil {
			return lastDelivery, errors.Join(waitErr, err)
		}
	}
	onDisk, err := maildir.Dir(filepath.Join(res.Dir, "maildir")).List()
	if err != nil {
		return lastDelivery, errors.Join(waitErr, err)
	}
	end := conclude(res, p, r, evs, onDisk, inj)
	if d := res.Summary.TotalTime; d > 0 {
		lastDelivery = firstQueued(evs).Add(d)
	}
	if waitErr != nil {
		return lastDelivery, waitErr
	}
	return lastDelivery, end
}

// waitForDelivery shows progress until the sender is idle after
// injection and the run is finished, or ctx ends (the scenario's timeout,
// or Ctrl-C).
func waitForDelivery(ctx context.Context, r running, total int, injected <-chan sender.InjectResult, opt Options) (sender.InjectResult, error) {
	start := time.Now()
	view := newProgressView(opt, total)
	var inj sender.InjectResult
	var last Snapshot
	done := false
	idleFor := 0 // polls every role has read idle in a row
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case inj = <-injected:
			done = true
			injected = nil
		case <-tick.C:
		case <-ctx.Done():
			last.Elapsed = time.Since(start)
			view.done(last, true)
			return inj, fmt.Errorf("waiting for delivery: %w", ctx.Err())
		}
		snap, err := snapshot(ctx, r, total, start)
		if err != nil {
			continue
		}
		last = snap
		view.show(snap)
		if !done {
			continue
		}
		if idle, err := r.sender.Idle(ctx); err != nil || !idle {
			idleFor = 0
			continue
		}
		if othersIdle(ctx, r) {
			idleFor++
		} else {
			idleFor = 0
		}
		if finished(snap.Delivered, inj.Injected, idleFor, r.settle()) {
			view.done(snap, false)
			return inj, nil
		}
	}
}

// othersIdle says whether every role but the sender (read just before)
// is idle now.
func othersIdle(ctx context.Context, r running) bool {
	for _, h := range r.all {
		if h == Handle(r.sender) {
			continue
		}
		if idle, err := h.Idle(ctx); err != nil || !idle {
			return false
		}
	}
	return true
}

// finished decides the end of a run once the sender has let go of every
// injected message: at once when every one is in the Maildir; otherwise
// when every role has stayed idle for settle polls in a row (a Go
// receiver delivers before it answers 250, so what is missing then failed
// for good; a real one may still be delivering).
func finished(delivered, injected, idleFor, settle int) bool {
	return delivered >= injected || idleFor >= settle
}

// collectEvents reads every role's event log and merges them in time order.
func collectEvents(ctx context.Context, r running) ([]events.Event, error) {
	var all []events.Event
	for _, h := range r.all {
		evs, err := h.Events(ctx)
		if err != nil {
			return nil, fmt.Errorf("collect events: %w", err)
		}
		all = append(all, evs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return all, nil
}

// withInjected adds the injection's Queued events that no role's log has
// (a real sender's own log has no Message-IDs) to the collected events, in
// time order, each Message-ID once.
func withInjected(evs, queued []events.Event) []events.Event {
	if len(queued) == 0 {
		return evs
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Kind == events.Queued {
			seen[e.MessageID] = true
		}
	}
	all := append([]events.Event{}, evs...)
	for _, e := range queued {
		if !seen[e.MessageID] {
			seen[e.MessageID] = true
			all = append(all, e)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return all
}

func firstQueued(evs []events.Event) time.Time {
	for _, e := range evs {
		if e.Kind == events.Queued {
			return e.Time
		}
	}
	return time.Time{}
}
