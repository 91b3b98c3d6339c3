package lab

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/pace"
)

// drive runs the measured part on roles that are up and configured:
// injects the workload, waits for delivery (or the scenario's timeout, or
// Ctrl-C), collects every role's events and evidence (the Maildir into
// the run's folder), and concludes res. It returns when the last delivery
// was, for the overhead figures.
func drive(ctx context.Context, r running, p Plan, opt Options, res *Result, start time.Time, o *outages) (lastDelivery time.Time, err error) {
	sc := p.Scenario
	res.Overhead.StartToInjection = time.Since(start)
	runCtx, cancel := context.WithTimeout(ctx, sc.Timeout.D())
	defer cancel()
	watchCtx, stopWatch := context.WithCancel(runCtx)
	defer stopWatch()
	if o != nil {
		go o.watch(watchCtx, r, time.Now())
	}
	n := len(p.Injection.Messages)
	span := p.Injection.Pace.Span(n)
	opt.say("injecting %d messages %s, waiting for delivery; %s", n, paceOf(p.Injection.Pace, span), etaBasis(span))
	injected := make(chan injection, 1)
	go func() {
		injected <- inject(runCtx, r, p.Injection, o)
	}()
	inj, waitErr := waitForDelivery(runCtx, r, n, span, injected, opt, o)
	stopWatch()
	outageEvents := o.finish() // every outage ended: no role left paused or cut off
	if r.mem != nil {
		// The last sample, at the end of delivery, before the roles stop.
		mctx, mcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		delivered, _, _ := r.receiver.State(mctx)
		r.mem.sample(mctx, delivered)
		mcancel()
		res.Memory = r.mem.result()
	}
	lastDelivery = time.Now()

	// Collect whatever happened, also after a timeout or Ctrl-C.
	opt.say("collecting every role's events and evidence")
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), collectTimeout(n))
	defer ccancel()
	if err := r.sender.StopInjection(cctx); err != nil {
		return lastDelivery, errors.Join(waitErr, err)
	}
	r = withGone(r, o, p.Scenario.Receiver.Maildir)
	more, _ := r.sender.Injected(cctx)
	log, cerr := collectEvents(cctx, r, res.Dir, outageEvents, append(inj.Queued, more...))
	if cerr != nil {
		return lastDelivery, errors.Join(waitErr, cerr)
	}
	for _, h := range r.all {
		if err := h.Keep(cctx, res.Dir); err != nil {
			return lastDelivery, errors.Join(waitErr, err)
		}
	}
	onDisk, err := maildir.Dir(filepath.Join(res.Dir, "maildir")).List()
	if err != nil {
		return lastDelivery, errors.Join(waitErr, err)
	}
	res.Overhead.Collect = time.Since(lastDelivery)
	began := time.Now()
	end := conclude(res, p, r, log, onDisk, inj)
	res.Overhead.Report = time.Since(began) // writeResult adds report.html's time
	if d := res.Summary.TotalTime; d > 0 {
		lastDelivery = log.firstQueued.Add(d)
	}
	if waitErr != nil {
		return lastDelivery, waitErr
	}
	return lastDelivery, end
}

// collectTimeout bounds gathering a run's evidence after delivery: a
// minute, and 2 ms more a message (a 100,000-message run merges half a
// gigabyte of events and copies 100,000 files out of the receiver).
func collectTimeout(messages int) time.Duration {
	return time.Minute + time.Duration(messages)*2*time.Millisecond
}

// paceOf says how the injection is paced; span is when its last
// message is due.
func paceOf(s pace.Spec, span time.Duration) string {
	switch s.Mode {
	case pace.Rate:
		ramp := ""
		if s.Ramp > 0 {
			ramp = fmt.Sprintf(" after a ramp of %.1f s", s.Ramp.Seconds())
		}
		return fmt.Sprintf("at %g a second%s (the last due at %.1f s)", s.PerSecond, ramp, span.Seconds())
	case pace.Burst:
		return "in a burst (delivery starts once the last is queued)"
	}
	return "one after another, as fast as the machine goes"
}

// etaBasis says how the progress display's ETA is estimated (estimate).
func etaBasis(span time.Duration) string {
	if span > 0 {
		return "ETA from the pace schedule while it runs, then from the delivery rate so far"
	}
	return "ETA from the delivery rate so far"
}

// waitForDelivery shows progress until the sender is idle after
// injection and the run is finished, or ctx ends (the scenario's timeout,
// or Ctrl-C). span is when the injection's last message is due (0 when
// it is not paced).
func waitForDelivery(ctx context.Context, r running, total int, span time.Duration, injected <-chan injection, opt Options, o *outages) (injection, error) {
	start := time.Now()
	view := newProgressView(opt, total)
	var inj injection
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
			view.note("injection done: %d of %d messages queued in %.1f s; waiting for the sender's queue to drain", inj.Injected, total, inj.Elapsed.Seconds())
		case <-tick.C:
		case <-ctx.Done():
			last.Elapsed = time.Since(start)
			view.done(last, true)
			return inj, fmt.Errorf("waiting for delivery: %w", ctx.Err())
		}
		if done && !o.busy() && o.gone() != "" {
			// The receiver or the sender is dead for good: nothing more can
			// arrive, and what is missing was lost to the kill.
			view.done(last, false)
			return inj, nil
		}
		// Each poll has a deadline of its own: a role paused or cut off
		// by an outage does not answer, and the run goes on without it.
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		snap, err := snapshot(pctx, r, total, span, start)
		if err != nil {
			pcancel()
			continue
		}
		if done {
			snap.Queued = max(snap.Queued, inj.Injected)
		}
		last = snap
		view.show(snap)
		r.mem.at(ctx, snap.Delivered)
		if !done || o.busy() {
			pcancel()
			idleFor = 0
			continue
		}
		if idle, err := r.sender.Idle(pctx); err != nil || !idle {
			pcancel()
			idleFor = 0
			continue
		}
		if othersIdle(pctx, r) {
			idleFor++
		} else {
			idleFor = 0
		}
		pcancel()
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
