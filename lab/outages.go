package lab

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/outage"
	"github.com/smtplab/smtplab/lab/topology"
)

// outages carries out a run's faults on the mail path (lab/outage): it
// watches the run's progress, starts each rule's outage on its role's
// container when the rule's trigger is met, ends it when its duration has
// passed, and logs both as events.Outage. Once a role is back it is given
// again what the lab gave it at the start (the DNS stub its zone).
type outages struct {
	sched   *outage.Schedule
	targets map[topology.Role]outage.Target
	// restored is called once a role is back from an outage.
	restored func(ctx context.Context, role topology.Role) error

	mu     sync.Mutex
	evs    []events.Event
	active int                      // outages begun and not ended
	killed map[topology.Role]bool   // down now by a kill: true when it will come back
	cause  map[topology.Role]string // the last outage begun on each role
	back   chan struct{}            // closed and replaced whenever an outage ends
	wg     sync.WaitGroup
}

func newOutages(sched *outage.Schedule, targets map[topology.Role]outage.Target, restored func(context.Context, topology.Role) error) *outages {
	return &outages{sched: sched, targets: targets, restored: restored, killed: map[topology.Role]bool{}, cause: map[topology.Role]string{}, back: make(chan struct{})}
}

// watch fires the rules as the run's progress meets their triggers, until
// ctx ends or no rule is left.
func (o *outages) watch(ctx context.Context, r running, began time.Time) {
	for _, rule := range o.sched.Rules() {
		if rule.Skipped { // its seeded draw said no: on record all the same
			o.log(events.Event{Role: rule.Spec.Role, Kind: events.Outage, FaultName: rule.Outage.Name(),
				Name: rule.Name(), Result: rule.Spec.Trigger(), Seq: rule.Index + 1}, "skipped", began, 0, nil)
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for o.sched.Pending() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p, ok := progressOf(ctx, r, o.sched, began)
		if !ok {
			continue
		}
		for _, rule := range o.sched.Due(p) {
			o.fire(ctx, rule)
		}
	}
}

// progressOf reads the counts the pending rules need; false when a role
// did not answer (it may be the one that is out).
func progressOf(ctx context.Context, r running, s *outage.Schedule, began time.Time) (outage.Progress, bool) {
	p := outage.Progress{Elapsed: time.Since(began)}
	delivered, queued, conns := s.Needs()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	type counter interface {
		Counts(context.Context) (map[events.Kind]int, error)
	}
	if delivered {
		n, _, err := r.receiver.State(pctx)
		if err != nil {
			return p, false
		}
		p.Delivered = n
	}
	if c, ok := r.receiver.(counter); ok && conns {
		m, err := c.Counts(pctx)
		if err != nil {
			return p, false
		}
		p.Connections = m[events.ConnOpen]
	}
	if c, ok := r.sender.(counter); ok && queued {
		m, err := c.Counts(pctx)
		if err != nil {
			return p, false
		}
		p.Queued = m[events.Queued]
	}
	return p, true
}

// fire begins rule's outage now and, when it ends, ends it after its
// duration in a goroutine of its own.
func (o *outages) fire(ctx context.Context, rule *outage.Rule) {
	sp := rule.Spec
	t := o.targets[sp.Role]
	ev := events.Event{Role: sp.Role, Kind: events.Outage, FaultName: rule.Outage.Name(),
		Name: rule.Name(), Result: sp.Trigger(), Seq: rule.Index + 1}
	_, kill := rule.Outage.(outage.Kill)
	o.mu.Lock()
	o.active++
	// Named before it acts: whoever sees the role fail asks explain().
	o.cause[sp.Role] = fmt.Sprintf("%s (%s %s %s)", rule.Name(), rule.Outage.Name(), sp.Role, sp.Trigger())
	if kill {
		// Marked before the kill: whoever sees the role die asks down().
		o.killed[sp.Role] = rule.Outage.Ends()
	}
	o.mu.Unlock()
	began := time.Now()
	err := rule.Outage.Begin(ctx, t)
	o.log(ev, "begin", began, 0, err)
	if err != nil || !rule.Outage.Ends() {
		o.mu.Lock()
		o.active--
		if err != nil {
			delete(o.killed, sp.Role)
		}
		o.mu.Unlock()
		return
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		// The end runs whatever happens to the run: a role left paused or
		// cut off would hold its evidence back.
		ectx := context.WithoutCancel(ctx)
		select {
		case <-time.After(sp.Duration):
		case <-ctx.Done():
		}
		err := rule.Outage.End(ectx, t)
		if err == nil && o.restored != nil {
			err = o.restored(ectx, sp.Role)
		}
		o.log(ev, "end", time.Now(), time.Since(began), err)
		o.mu.Lock()
		o.active--
		if err == nil {
			delete(o.killed, sp.Role)
		}
		close(o.back)
		o.back = make(chan struct{})
		o.mu.Unlock()
	}()
}

func (o *outages) log(e events.Event, reason string, at time.Time, d time.Duration, err error) {
	e.Time, e.Reason, e.Duration = at, reason, d
	if err != nil {
		e.Error = err.Error()
	}
	o.mu.Lock()
	o.evs = append(o.evs, e)
	o.mu.Unlock()
}

// busy says whether an outage is under way: the run does not end then.
func (o *outages) busy() bool {
	if o == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.active > 0
}

// down says whether role was killed and is not back; comesBack whether a
// restart is due; back is closed when some outage next ends.
func (o *outages) down(role topology.Role) (down, comesBack bool, back <-chan struct{}) {
	if o == nil {
		return false, false, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	comesBack, down = o.killed[role]
	return down, comesBack, o.back
}

// hit says whether any outage began on role.
func (o *outages) hit(role topology.Role) bool {
	return o.explain(role) != ""
}

// explain names the outage that hit role last, for a record of what it
// cost ("faults[0] (kill sender after 50 queued)"); "" when none did.
func (o *outages) explain(role topology.Role) string {
	if o == nil {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cause[role]
}

// finish waits for every outage under way to end (a role is never left
// paused or cut off) and returns the outage events.
func (o *outages) finish() []events.Event {
	if o == nil {
		return nil
	}
	o.wg.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]events.Event{}, o.evs...)
}
