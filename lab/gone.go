package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// goneHandle is a Go role killed for good by an outage: nothing answers on
// its control port, so its evidence is read from its stopped container,
// whose files the kill left where they were: the event spool (events.Log
// spools to topology.SpoolPath) and, for the receiver, the Maildir.
type goneHandle struct {
	Handle
	c       *stack.Container
	maildir string // the receiver's Maildir in the container
}

// Events are the role's spooled events.
func (g goneHandle) Events(ctx context.Context) ([]events.Event, error) {
	tmp, err := os.MkdirTemp("", "smtplab-spool-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := g.c.CopyDir(ctx, filepath.Dir(topology.SpoolPath), tmp); err != nil {
		return nil, fmt.Errorf("events of %s, killed: %w", g.Role(), err)
	}
	f, err := os.Open(filepath.Join(tmp, filepath.Base(topology.SpoolPath)))
	if err != nil {
		return nil, fmt.Errorf("events of %s, killed: %w", g.Role(), err)
	}
	defer f.Close()
	// A line the kill cut short is the last one: what came before stands.
	evs, _ := events.ReadJSONL(f)
	return evs, nil
}

// Idle is true: a dead role holds nothing in transit any more (nor does
// an identd whose host died).
func (g goneHandle) Idle(context.Context) (bool, error) { return true, nil }

// Keep copies the receiver's Maildir out of the stopped container.
func (g goneHandle) Keep(ctx context.Context, dir string) error {
	if g.Role() != topology.Receiver {
		return nil
	}
	return g.c.CopyDir(ctx, g.maildir, filepath.Join(dir, "maildir"))
}

// withGone replaces the handles of Go roles an outage killed for good
// with their containers' evidence.
func withGone(r running, o *outages, maildir string) running {
	if o == nil {
		return r
	}
	out := r
	out.all = nil
	deadForGood := func(role topology.Role) bool {
		down, comesBack, _ := o.down(role)
		return down && !comesBack
	}
	for _, h := range r.all {
		c, ok := o.targets[h.Role()].(*stack.Container)
		// A role in a dead role's network namespace (identd on a killed
		// sender's host) lives on, but its control port died with the host.
		if !ok || !h.FullLog() || !deadForGood(h.Role()) && (c.Host() == "" || !deadForGood(c.Host())) {
			out.all = append(out.all, h)
			continue
		}
		out.all = append(out.all, goneHandle{Handle: h, c: c, maildir: maildir})
	}
	return out
}

// gone says whether the receiver or the sender was killed for good: then
// nothing more can be delivered, and the run ends once the injection has.
func (o *outages) gone() string {
	for _, r := range []topology.Role{topology.Receiver, topology.Sender} {
		if down, comesBack, _ := o.down(r); down && !comesBack {
			return o.explain(r)
		}
	}
	return ""
}
