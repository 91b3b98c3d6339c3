package lab

import (
	"context"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// The relay topology (receiver.evidence relay): the lab's sender delivers
// to the system under test, which relays every message to the lab's own
// final receiver (topology.Final, a Go receiver with no checks, at
// final.<dns.lab_domain> in the lab's DNS and "final" on the lab
// network). What arrived is read there, so any MTA can be measured
// without knowing how it stores mail; the final receiver's Delivered
// events also time the last hop.

// startFinal starts the final receiver, before the receiver that relays
// to it. For a server outside Docker, its SMTP port is published where
// receiver.external.final says.
func (s *starter) startFinal(ctx context.Context) (*role.Handle, error) {
	svc := topology.FinalService()
	c, h, err := startGoRole(ctx, s, svc)
	if err != nil {
		return nil, err
	}
	s.addrs[svc.Name], s.cs[svc.Name] = c.IP, c
	return h.(*role.Handle), nil
}

// relayHandle is the receiver of a relay topology: the system under test
// for what it is (its events, if it logs any; its sessions), the final
// receiver for what arrived.
type relayHandle struct {
	ReceiverHandle // the system under test
	final          *role.Handle
}

func relayed(sut ReceiverHandle, final *role.Handle) ReceiverHandle {
	return &relayHandle{ReceiverHandle: sut, final: final}
}

// Relay marks the run's receiver as a relay (report.Inputs.Relay).
func (h *relayHandle) Relay() bool { return true }

// LogNone: the system under test keeps no log the lab reads.
func (h *relayHandle) LogNone() bool { return true }

// Events are the system under test's (none, for a server the lab knows
// nothing of) and the final receiver's, which keep its role.
func (h *relayHandle) Events(ctx context.Context) ([]events.Event, error) {
	evs, err := h.ReceiverHandle.Events(ctx)
	if err != nil {
		return nil, err
	}
	fin, err := h.final.Events(ctx)
	if err != nil {
		return nil, err
	}
	return append(evs, fin...), nil
}

// Idle says whether neither hop holds a message the lab can see.
func (h *relayHandle) Idle(ctx context.Context) (bool, error) {
	for _, x := range []Handle{h.ReceiverHandle, h.final} {
		if idle, err := x.Idle(ctx); err != nil || !idle {
			return false, err
		}
	}
	return true, nil
}

// Settle is the slower hop's: a relay may still be delivering.
func (h *relayHandle) Settle() int { return max(h.ReceiverHandle.Settle(), h.final.Settle()) }

// State is the messages at the final receiver, and the sessions open at
// the system under test when it can tell them (else at the final
// receiver).
func (h *relayHandle) State(ctx context.Context) (delivered, open int, err error) {
	delivered, open, err = h.final.State(ctx)
	if err != nil {
		return 0, 0, err
	}
	if s, ok := h.ReceiverHandle.(interface {
		Sessions(context.Context) (int, error)
	}); ok {
		if n, err := s.Sessions(ctx); err == nil {
			open = n
		}
	}
	return delivered, open, nil
}

// Keep keeps the final receiver's Maildir: the run's evidence.
func (h *relayHandle) Keep(ctx context.Context, dir string) error { return h.final.Keep(ctx, dir) }

// startExternal "starts" a receiver outside Docker: nothing to start, and
// nothing to read in it. Its evidence is the relay topology.
func startExternal(_ context.Context, s *starter, _ topology.Service) (*stack.Container, Handle, error) {
	return nil, externalHandle{}, nil
}

// externalHandle is a receiver outside Docker: the lab sees nothing of it
// but the connections the sender opened and what reached the final
// receiver.
type externalHandle struct{}

func (externalHandle) Role() topology.Role                            { return topology.Receiver }
func (externalHandle) Events(context.Context) ([]events.Event, error) { return nil, nil }
func (externalHandle) FullLog() bool                                  { return false }
func (externalHandle) LogNone() bool                                  { return true }
func (externalHandle) Idle(context.Context) (bool, error)             { return true, nil }

// Settle: as a real MTA's, it may still be delivering.
func (externalHandle) Settle() int                             { return 10 }
func (externalHandle) Keep(context.Context, string) error      { return nil }
func (externalHandle) State(context.Context) (int, int, error) { return 0, 0, nil }
