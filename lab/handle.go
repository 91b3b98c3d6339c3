package lab

import (
	"context"
	"fmt"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// Handle is one running role as a run drives it, whatever plays it. Two
// kinds implement it: a Go role's control-port client (role.Handle) and a
// real MTA read in its container (mta.Handle). A run asks every role the
// same questions and never which kind it holds; a new kind of role (an
// image the user brings, a server outside Docker) is a new implementation.
type Handle interface {
	Role() topology.Role
	// Events is the role's event log so far.
	Events(ctx context.Context) ([]events.Event, error)
	// FullLog says whether the log has every kind of event the report
	// counts (a Go role's does; a real MTA's mail log has fewer, and the
	// report leaves unmeasured what it cannot tell).
	FullLog() bool
	// Idle says whether the role holds no message in transit now.
	Idle(ctx context.Context) (bool, error)
	// Settle is how many polls in a row the role must read idle, with
	// messages not all arrived, before its state is final.
	Settle() int
	// Keep copies the role's evidence into the run's folder: the
	// receiver's Maildir into maildir/, a mail log beside the result.
	Keep(ctx context.Context, dir string) error
}

// ReceiverHandle is what a run reads of the receiver while it waits.
type ReceiverHandle interface {
	Handle
	// State is messages delivered and sessions open now.
	State(ctx context.Context) (delivered, open int, err error)
}

// SenderHandle runs the workload's injection in the sender.
type SenderHandle interface {
	Handle
	// Inject runs the injection loop on the sender's host and returns
	// what it did; ending ctx ends it.
	Inject(ctx context.Context, inj sender.Injection) sender.InjectResult
	// StopInjection ends a loop still running and waits for it.
	StopInjection(ctx context.Context) error
	// Injected are the Queued events the loop recorded outside the
	// sender's own log, also for messages whose loop was cut short.
	Injected(ctx context.Context) ([]events.Event, error)
}

// DNSHandle is the DNS stub: given the live topology, read for its line.
type DNSHandle interface {
	Handle
	SetZone(ctx context.Context, z dnsstub.Zone) error
	// LineDepth is the DNS line's queue now; false without a line.
	LineDepth(ctx context.Context) (int, bool)
}

// running are a run's roles, by what the run asks of each.
type running struct {
	dns      DNSHandle
	receiver ReceiverHandle
	sender   SenderHandle
	all      []Handle     // in topology order
	mem      *memoryWatch // nil: memory not measured
}

// roles sorts handles (one per topology service) by what the run asks of
// each; a handle that cannot do its role's part is an error.
func roles(hs []Handle) (running, error) {
	var r running
	for _, h := range hs {
		ok := true
		switch h.Role() {
		case topology.DNS:
			r.dns, ok = h.(DNSHandle)
		case topology.Receiver:
			r.receiver, ok = h.(ReceiverHandle)
		case topology.Sender:
			r.sender, ok = h.(SenderHandle)
		}
		if !ok {
			return r, fmt.Errorf("%T cannot play %s", h, h.Role())
		}
		r.all = append(r.all, h)
	}
	if r.dns == nil || r.receiver == nil || r.sender == nil {
		return r, fmt.Errorf("a run needs dns, receiver and sender; got %d roles", len(r.all))
	}
	return r, nil
}

// settle is the most polls any role needs to read idle (Handle.Settle).
func (r running) settle() int {
	n := 1
	for _, h := range r.all {
		n = max(n, h.Settle())
	}
	return n
}
