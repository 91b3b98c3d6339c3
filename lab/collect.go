package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/stack"
)

// inject runs the seed's loop inside the sender container (one sendmail
// process per message, as the shell loop did) and returns what it did: a
// Go sender is asked over its control port (POST /inject with the
// workload, as the compose runner asks it); a real MTA's own sendmail is
// run by the lab's inject, with docker exec.
func inject(ctx context.Context, c *stack.Container, workload []byte) sender.InjectResult {
	var res sender.InjectResult
	if c.MTA == "" {
		b, err := c.Client().Post(ctx, "/inject", workload)
		if err == nil {
			err = json.Unmarshal(b, &res)
		}
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("injection loop failed: %v", err))
		}
		return res
	}
	code, out, err := c.Exec(ctx, injectCommand(injectIDHost)...)
	if err == nil {
		err = json.Unmarshal(bytes.TrimSpace(out), &res)
	}
	if err != nil || code != 0 {
		res.Errors = append(res.Errors, fmt.Sprintf("injection loop failed (exit %d): %v: %s", code, err, bytes.TrimSpace(out)))
	}
	return res
}

// status is a role's event counts.
func status(ctx context.Context, c *stack.Container) (map[events.Kind]int, error) {
	b, err := c.Get(ctx, "/status")
	if err != nil {
		return nil, err
	}
	var m map[events.Kind]int
	return m, json.Unmarshal(b, &m)
}

// queued is how many messages the sender's queue holds now.
func queued(ctx context.Context, c *stack.Container) (int, error) {
	b, err := c.Get(ctx, "/queue/size")
	if err != nil {
		return 0, err
	}
	var size struct {
		Queued int `json:"queued"`
	}
	err = json.Unmarshal(b, &size)
	return size.Queued, err
}

// waitForDelivery shows progress until the sender's queue is empty after
// injection, or ctx ends (the scenario's timeout, or Ctrl-C).
func waitForDelivery(ctx context.Context, r running, total int, injected <-chan sender.InjectResult, opt Options) (sender.InjectResult, error) {
	start := time.Now()
	view := newProgressView(opt, total)
	var inj sender.InjectResult
	var last Snapshot
	done := false
	emptyFor := 0 // polls the sender's queue has been seen empty in a row
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
		senderEmpty, err := senderDone(ctx, r, inj)
		if err != nil || !senderEmpty {
			emptyFor = 0
			continue
		}
		receiverEmpty := true
		if r.receiver.MTA != "" {
			if receiverEmpty, err = queueEmpty(ctx, r.receiver); err != nil {
				continue
			}
		}
		emptyFor++
		if finished(r.sender.MTA == "" && r.receiver.MTA == "", snap.Delivered, inj.Injected, receiverEmpty, emptyFor) {
			view.done(snap, false)
			return inj, nil
		}
	}
}

// senderDone says whether the sender has let go of every injected
// message: each left its queue delivered or failed for good (a message
// waiting for a retry is still in it). A Go sender is asked over its
// control port; a real one, which took every message when its sendmail
// returned, has its queue read on its disk.
func senderDone(ctx context.Context, r running, inj sender.InjectResult) (bool, error) {
	if r.sender.MTA != "" {
		return queueEmpty(ctx, r.sender)
	}
	ss, err := status(ctx, r.sender)
	if err != nil || ss[events.Queued] < inj.Injected {
		return false, err
	}
	n, err := queued(ctx, r.sender)
	return err == nil && n == 0, err
}

// realQueueSettle is how many polls (200 ms apart) the queues must have
// stayed empty, with messages not all arrived, before a run with a real
// MTA ends: a real receiver answers 250 before its local delivery, and
// Courier's submit hands a message to its queue a moment after sendmail
// returns.
const realQueueSettle = 10

// finished decides the end of a run once the sender's queue is empty (for
// emptyFor polls in a row): at once when every injected message is in the
// Maildir, or when both roles are the Go models (the receiver delivers
// before it answers 250, so what is missing failed for good); otherwise
// when the real receiver's queue is empty too and both have stayed so for
// realQueueSettle polls.
func finished(goModels bool, delivered, injected int, receiverEmpty bool, emptyFor int) bool {
	switch {
	case delivered >= injected, goModels:
		return true
	case !receiverEmpty:
		return false
	}
	return emptyFor >= realQueueSettle
}

// collectEvents reads every role's event log and merges them in time order.
func collectEvents(ctx context.Context, r running) ([]events.Event, error) {
	var all []events.Event
	for _, c := range r.all() {
		if c.MTA != "" { // a real MTA: its own mail log
			evs, err := mtaEvents(ctx, c, time.Now())
			if err != nil {
				return nil, fmt.Errorf("collect events: %w", err)
			}
			all = append(all, evs...)
			continue
		}
		b, err := c.Get(ctx, "/events")
		if err != nil {
			return nil, fmt.Errorf("collect events: %w", err)
		}
		evs, err := events.ReadJSONL(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("collect events from %s: %w", c.Role, err)
		}
		all = append(all, evs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return all, nil
}

func firstQueued(evs []events.Event) time.Time {
	for _, e := range evs {
		if e.Kind == events.Queued {
			return e.Time
		}
	}
	return time.Time{}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
