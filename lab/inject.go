package lab

import (
	"context"
	"fmt"
	"strings"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// injection is what the run's injection did, across sender restarts.
type injection struct {
	sender.InjectResult
	// Cut is the outage that hit the sender under the loop ("" when none
	// did): killed, paused or cut off. The schedule was then not kept
	// because of the fault, and is not judged.
	Cut string
}

// inject runs the workload's injection through the sender's handle. When
// an outage kills the sender under the loop (the loop runs in its
// container and dies with it), it waits for the restart, asks the sender
// what it had queued (its spooled events and its queue on disk, which
// survive the kill), and injects the rest at the workload's pace from
// then on; when the sender is not coming back, each message left is
// named, with the fault, as not injected.
func inject(ctx context.Context, r running, inj sender.Injection, o *outages) injection {
	var out injection
	all := inj.Messages
	base := 0 // messages queued before the current loop began
	for {
		res := r.sender.Inject(ctx, inj)
		out.Injected = base + res.Injected
		out.Start, out.Elapsed = res.Start, res.Elapsed
		out.Queued = append(out.Queued, res.Queued...)
		down, comesBack, back := o.down(topology.Sender)
		if !down || ctx.Err() != nil {
			out.Errors = append(out.Errors, res.Errors...)
			if out.Cut == "" {
				out.Starts = res.Starts
				if o.hit(topology.Sender) { // paused or cut off under the loop
					out.Cut = o.explain(topology.Sender)
				}
			}
			return out
		}
		// The loop broke with its container: its error is the kill.
		out.Cut = o.explain(topology.Sender)
		for down && comesBack {
			select {
			case <-back:
			case <-ctx.Done():
				out.Errors = append(out.Errors, fmt.Sprintf("injection: the sender did not come back from %s: %v", out.Cut, ctx.Err()))
				return out
			}
			down, comesBack, back = o.down(topology.Sender)
		}
		var asked Handle = r.sender
		if down { // killed for good: its evidence is in its stopped container
			if g := withGone(running{all: []Handle{r.sender}}, o, "").all; len(g) == 1 {
				asked = g[0]
			}
		}
		rest, err := notQueued(ctx, asked, all)
		if err != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("injection after %s: %v", out.Cut, err))
			return out
		}
		base = len(all) - len(rest)
		out.Injected = base
		if len(rest) == 0 {
			return out
		}
		if down { // killed for good
			for _, m := range rest {
				out.Errors = append(out.Errors, fmt.Sprintf("round %d to %s: not injected: the sender was killed by %s", m.Round, m.To, out.Cut))
			}
			return out
		}
		inj.Messages = rest
	}
}

// notQueued are the workload's messages the sender has not queued, in
// workload order: what its events and its queue on disk show, counted
// per envelope (the workload's messages to one recipient are alike, so
// the first rounds count as the ones queued).
func notQueued(ctx context.Context, s Handle, all []sender.Message) ([]sender.Message, error) {
	type queuer interface {
		Queue(context.Context) ([]sender.Envelope, error)
	}
	evs, err := s.Events(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	done := map[string]int{} // "from to" -> messages queued
	count := func(id, from string, rcpts []string) {
		if seen[id] {
			return
		}
		seen[id] = true
		done[from+" "+strings.Join(rcpts, ",")]++
	}
	for _, e := range evs {
		if e.Kind == events.Queued {
			count(e.MessageID, e.From, e.Rcpts)
		}
	}
	if q, ok := s.(queuer); ok {
		envs, err := q.Queue(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range envs {
			count(e.MessageID, e.From, e.Rcpts)
		}
	}
	var rest []sender.Message
	for _, m := range all {
		k := m.From + " " + m.To
		if done[k] > 0 {
			done[k]--
			continue
		}
		rest = append(rest, m)
	}
	return rest, nil
}
