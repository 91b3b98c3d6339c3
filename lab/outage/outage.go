// Package outage is the lab's faults on the mail path: a role killed
// (kill -9, with or without a restart), paused (its processes frozen, as
// docker pause does) or partitioned from the lab's network for a while, in
// the manner of Pumba's and Chaos Mesh's container faults and Jepsen's
// nemesis schedules. The DNS faults, which hit single queries, are
// lab/fault's; the modelled SMTP link is lab/line's.
//
// A rule (Spec) names a fault type from one table (types), the role it
// hits, one trigger (a time after injection began, the Nth message
// delivered or queued, the receiver's Nth connection) and, where it makes
// sense, how long the role stays out. A Schedule decides which rules are
// due from the run's progress alone (counts, and time for "at"), and a
// rule with a probability draws once from a generator seeded by the
// scenario's seed and the rule's number: the same scenario and seed make
// the same decisions. The run (lab/outages.go) carries them out on the
// role's container (a Target) and logs each as an events.Outage.
package outage

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/topology"
)

// Target is a role's container as a fault acts on it.
type Target interface {
	Kill(ctx context.Context) error  // SIGKILL, as kill -9
	Start(ctx context.Context) error // start it again and wait until it is up
	Pause(ctx context.Context) error
	Unpause(ctx context.Context) error
	Disconnect(ctx context.Context) error // leave the lab's network
	Connect(ctx context.Context) error    // join it again, at the same address
}

// Outage is one kind of fault: what it does when it begins and ends.
type Outage interface {
	Name() string
	Begin(ctx context.Context, t Target) error
	// End restores the role; an outage that does not end (a kill without
	// restart) is never ended.
	End(ctx context.Context, t Target) error
	Ends() bool
}

// Kill is kill -9 of the role's processes; with Restart, the container
// is started again once the outage's duration has passed.
type Kill struct{ Restart bool }

func (Kill) Name() string                              { return "kill" }
func (Kill) Begin(ctx context.Context, t Target) error { return t.Kill(ctx) }
func (Kill) End(ctx context.Context, t Target) error   { return t.Start(ctx) }
func (k Kill) Ends() bool                              { return k.Restart }

// Pause freezes the role's processes; they go on where they were.
type Pause struct{}

func (Pause) Name() string                              { return "pause" }
func (Pause) Begin(ctx context.Context, t Target) error { return t.Pause(ctx) }
func (Pause) End(ctx context.Context, t Target) error   { return t.Unpause(ctx) }
func (Pause) Ends() bool                                { return true }

// Partition cuts the role off the lab's network: its peers' packets go
// nowhere, its sockets stay open, and it joins again at the same address.
type Partition struct{}

func (Partition) Name() string                              { return "partition" }
func (Partition) Begin(ctx context.Context, t Target) error { return t.Disconnect(ctx) }
func (Partition) End(ctx context.Context, t Target) error   { return t.Connect(ctx) }
func (Partition) Ends() bool                                { return true }

// Spec is one rule as a scenario gives it. Exactly one trigger is set.
type Spec struct {
	Type string        `json:"type"` // kill, pause, partition
	Role topology.Role `json:"role"`
	// Triggers.
	At             time.Duration `json:"at_ns,omitempty"`           // this long after injection began
	AfterDelivered int           `json:"after_delivered,omitempty"` // once this many messages are in the Maildir
	AfterQueued    int           `json:"after_queued,omitempty"`    // once the sender has queued this many
	OnConnection   int           `json:"on_connection,omitempty"`   // once the receiver accepted its Nth connection
	// Probability makes the rule fire with this chance (one seeded draw);
	// nil: always.
	Probability *float64 `json:"probability,omitempty"`
	// Duration is how long the role stays out (pause, partition; kill
	// with restart: how long it stays down). Kill: 0 restarts at once.
	Duration time.Duration `json:"duration_ns,omitempty"`
	Restart  bool          `json:"restart,omitempty"` // kill: start it again
}

// types is every fault type on the mail path, by the name a Spec gives:
// each builds its outage from a Spec, checking the parameters it takes.
var types = map[string]func(Spec) (Outage, error){
	"kill": func(s Spec) (Outage, error) {
		if s.Duration > 0 && !s.Restart {
			return nil, fmt.Errorf("kill: duration is how long before the restart; set restart: true or drop duration")
		}
		return Kill{Restart: s.Restart}, nil
	},
	"pause": func(s Spec) (Outage, error) {
		if s.Duration <= 0 || s.Restart {
			return nil, fmt.Errorf("pause needs a positive duration (and takes no restart)")
		}
		return Pause{}, nil
	},
	"partition": func(s Spec) (Outage, error) {
		if s.Duration <= 0 || s.Restart {
			return nil, fmt.Errorf("partition needs a positive duration (and takes no restart)")
		}
		return Partition{}, nil
	},
}

// Types lists the fault types.
func Types() []string { return slices.Sorted(maps.Keys(types)) }

// Roles are the roles a fault can hit.
var Roles = []topology.Role{topology.Receiver, topology.Sender, topology.DNS, topology.Identd}

// Build checks one rule and returns its outage.
func Build(s Spec) (Outage, error) {
	build, ok := types[s.Type]
	if !ok {
		return nil, fmt.Errorf("unknown fault type %q (known: %s)", s.Type, strings.Join(Types(), ", "))
	}
	known := false
	for _, r := range Roles {
		known = known || r == s.Role
	}
	if !known {
		return nil, fmt.Errorf("role %q: want one of receiver, sender, dns, identd", s.Role)
	}
	n := 0
	for _, set := range []bool{s.At > 0, s.AfterDelivered > 0, s.AfterQueued > 0, s.OnConnection > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("give exactly one trigger (at, after_delivered, after_queued, on_connection), got %d", n)
	}
	if s.At < 0 || s.AfterDelivered < 0 || s.AfterQueued < 0 || s.OnConnection < 0 || s.Duration < 0 {
		return nil, fmt.Errorf("triggers and duration must not be negative")
	}
	if p := s.Probability; p != nil && !(*p >= 0 && *p <= 1) {
		return nil, fmt.Errorf("probability must be in [0, 1], got %g", *p)
	}
	return build(s)
}

// Trigger is the rule's trigger as the scenario wrote it.
func (s Spec) Trigger() string {
	switch {
	case s.At > 0:
		return "at " + s.At.String()
	case s.AfterDelivered > 0:
		return fmt.Sprintf("after %d delivered", s.AfterDelivered)
	case s.AfterQueued > 0:
		return fmt.Sprintf("after %d queued", s.AfterQueued)
	default:
		return fmt.Sprintf("on connection %d", s.OnConnection)
	}
}

// Progress is what the run has seen so far, all a trigger reads.
type Progress struct {
	Elapsed     time.Duration // since injection began
	Delivered   int           // messages in the receiver's Maildir
	Queued      int           // messages the sender has queued
	Connections int           // connections the receiver accepted
}

// Rule is one rule of a Schedule.
type Rule struct {
	Index  int // in the scenario's list, 0-based
	Spec   Spec
	Outage Outage
	// Skipped is true when the rule's seeded draw said no: it never fires.
	Skipped bool
	fired   bool
}

// Name is the rule as the scenario's list names it: "faults[0]".
func (r *Rule) Name() string { return fmt.Sprintf("faults[%d]", r.Index) }

// due says whether p meets the rule's trigger.
func (r *Rule) due(p Progress) bool {
	s := r.Spec
	switch {
	case s.At > 0:
		return p.Elapsed >= s.At
	case s.AfterDelivered > 0:
		return p.Delivered >= s.AfterDelivered
	case s.AfterQueued > 0:
		return p.Queued >= s.AfterQueued
	default:
		return p.Connections >= s.OnConnection
	}
}

// Schedule is a run's rules, each firing at most once.
type Schedule struct{ rules []*Rule }

// New checks specs and builds the schedule. An error names the rule by
// its index ("faults[1]: ...").
func New(specs []Spec, seed uint64) (*Schedule, error) {
	s := &Schedule{}
	for i, sp := range specs {
		o, err := Build(sp)
		if err != nil {
			return nil, fmt.Errorf("faults[%d]: %w", i, err)
		}
		r := &Rule{Index: i, Spec: sp, Outage: o}
		if p := sp.Probability; p != nil {
			// One draw per (seed, rule): a decision does not depend on
			// any other rule's.
			r.Skipped = rand.New(rand.NewPCG(seed, 0x6f75746167650000|uint64(i))).Float64() >= *p
		}
		s.rules = append(s.rules, r)
	}
	return s, nil
}

// Rules are every rule, in the scenario's order.
func (s *Schedule) Rules() []*Rule { return s.rules }

// Due returns the rules p newly meets, in order, and marks them fired.
func (s *Schedule) Due(p Progress) []*Rule {
	var out []*Rule
	for _, r := range s.rules {
		if r.fired || r.Skipped || !r.due(p) {
			continue
		}
		r.fired = true
		out = append(out, r)
	}
	return out
}

// Pending says whether a rule may still fire.
func (s *Schedule) Pending() bool {
	for _, r := range s.rules {
		if !r.fired && !r.Skipped {
			return true
		}
	}
	return false
}

// Needs says which counts the pending rules read, so the run polls only
// those: delivered, queued, connections.
func (s *Schedule) Needs() (delivered, queued, connections bool) {
	for _, r := range s.rules {
		if r.fired || r.Skipped {
			continue
		}
		delivered = delivered || r.Spec.AfterDelivered > 0
		queued = queued || r.Spec.AfterQueued > 0
		connections = connections || r.Spec.OnConnection > 0
	}
	return
}
