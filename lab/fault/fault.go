// Package fault is the lab's DNS fault injection: small fault types (drop,
// stall, servfail, slow_upstream, in the manner of toxiproxy's toxics),
// listed in one table (types), and rules that pick which queries they hit:
// by name pattern, by query type, the Nth matching query, or at random
// with a generator seeded by the scenario's seed and the query's number,
// so the same run makes the same decisions.
//
// Rules are parsed and checked once (New); the DNS server only calls Decide
// with a query it has numbered.
package fault

import (
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// Query is what a rule sees of one DNS query.
type Query struct {
	Seq   int    // 1-based, in arrival order
	Name  string // lower case, no trailing dot
	QType string // "A", "PTR", ...
}

// Effect is what the faults decided for one query.
type Effect struct {
	Drop     bool          // lost: never answered
	Hold     time.Duration // held at the far side this long, then answered
	Forever  bool          // held until the server stops: never answered
	Rcode    int           // answer with this rcode instead (0: as the zone says)
	Upstream time.Duration // extra far-side cost
	Applied  []string      // the faults that hit, by name
}

// Fault is one kind of fault: it changes the Effect on a query.
type Fault interface {
	Name() string
	Apply(*Effect)
}

// Drop loses the query.
type Drop struct{}

func (Drop) Name() string    { return "drop" }
func (Drop) Apply(e *Effect) { e.Drop = true }

// ServFail answers SERVFAIL.
type ServFail struct{}

func (ServFail) Name() string    { return "servfail" }
func (ServFail) Apply(e *Effect) { e.Rcode = RcodeServerFailure }

// RcodeServerFailure is DNS's SERVFAIL (RFC 1035), kept here so this
// package needs no DNS library.
const RcodeServerFailure = 2

// Stall holds the query for Duration before it goes on, or Forever.
type Stall struct {
	Duration time.Duration
	Forever  bool
}

func (Stall) Name() string { return "stall" }
func (s Stall) Apply(e *Effect) {
	e.Hold += s.Duration
	e.Forever = e.Forever || s.Forever
}

// SlowUpstream adds Extra to the far side's cost.
type SlowUpstream struct{ Extra time.Duration }

func (SlowUpstream) Name() string      { return "slow_upstream" }
func (s SlowUpstream) Apply(e *Effect) { e.Upstream += s.Extra }

// Spec is one rule as a scenario writes it. Every selector that is set
// must hold for a query to be hit.
type Spec struct {
	Type string `json:"type"` // a fault type: drop, stall, servfail, slow_upstream
	// Selectors.
	Name        string   `json:"name,omitempty"`        // glob over the query name, e.g. "*.bl1.example.net"
	QType       string   `json:"qtype,omitempty"`       // "A", "PTR", ...
	Nth         []int    `json:"nth,omitempty"`         // the Nth queries matching Name and QType (1-based)
	Probability *float64 `json:"probability,omitempty"` // each matching query with this chance; nil: every one (0: none)
	Count       int      `json:"count,omitempty"`       // at most this many hits; 0: no limit
	// Parameters.
	Duration time.Duration `json:"duration_ns,omitempty"` // stall: the hold; slow_upstream: the extra cost
	Forever  bool          `json:"forever,omitempty"`     // stall: never answer
}

// types is every fault type, by the name a Spec gives in Type: each builds
// its fault from a Spec, checking the parameters it takes.
var types = map[string]func(Spec) (Fault, error){
	"drop":     func(Spec) (Fault, error) { return Drop{}, nil },
	"servfail": func(Spec) (Fault, error) { return ServFail{}, nil },
	"stall": func(s Spec) (Fault, error) {
		if s.Duration <= 0 && !s.Forever {
			return nil, fmt.Errorf("stall needs a positive duration or forever: true")
		}
		return Stall{Duration: s.Duration, Forever: s.Forever}, nil
	},
	"slow_upstream": func(s Spec) (Fault, error) {
		if s.Duration <= 0 {
			return nil, fmt.Errorf("slow_upstream needs a positive duration")
		}
		return SlowUpstream{Extra: s.Duration}, nil
	},
}

// Types lists the fault types.
func Types() []string {
	out := make([]string, 0, len(types))
	for t := range types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

type rule struct {
	index   int
	spec    Spec
	fault   Fault
	nth     map[int]bool
	matched int // queries that matched Name and QType so far
	hits    int
}

// Set is the scenario's rules, in order.
type Set struct {
	seed  uint64
	mu    sync.Mutex
	rules []*rule
}

// New checks specs and builds the rules. An error names the rule by its
// index ("faults[2]: ...").
func New(specs []Spec, seed uint64) (*Set, error) {
	s := &Set{seed: seed}
	for i, sp := range specs {
		f, err := Build(sp)
		if err != nil {
			return nil, fmt.Errorf("faults[%d]: %w", i, err)
		}
		r := &rule{index: i, spec: sp, fault: f, nth: map[int]bool{}}
		for _, n := range sp.Nth {
			r.nth[n] = true
		}
		sp.Name = strings.ToLower(strings.TrimSuffix(sp.Name, "."))
		r.spec.Name = sp.Name
		s.rules = append(s.rules, r)
	}
	return s, nil
}

// Build checks one rule and returns its fault.
func Build(sp Spec) (Fault, error) {
	if err := check(sp); err != nil {
		return nil, err
	}
	build, ok := types[sp.Type]
	if !ok {
		return nil, fmt.Errorf("unknown fault type %q (known: %s)", sp.Type, strings.Join(Types(), ", "))
	}
	return build(sp)
}

func check(sp Spec) error {
	if sp.Name != "" {
		if _, err := path.Match(sp.Name, ""); err != nil {
			return fmt.Errorf("bad name pattern %q: %v", sp.Name, err)
		}
	}
	for _, n := range sp.Nth {
		if n < 1 {
			return fmt.Errorf("nth counts from 1, got %d", n)
		}
	}
	if p := sp.Probability; p != nil && (*p < 0 || *p > 1) {
		return fmt.Errorf("probability must be in [0, 1], got %g", *p)
	}
	if sp.Count < 0 || sp.Duration < 0 {
		return fmt.Errorf("count and duration must not be negative")
	}
	return nil
}

// Decide applies every rule that hits q, in order, and says what happens
// to it. Call it once per query.
func (s *Set) Decide(q Query) Effect {
	var e Effect
	if s == nil {
		return e
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		if r.spec.Name != "" {
			if ok, _ := path.Match(r.spec.Name, name); !ok {
				continue
			}
		}
		if r.spec.QType != "" && !strings.EqualFold(r.spec.QType, q.QType) {
			continue
		}
		r.matched++
		if len(r.nth) > 0 && !r.nth[r.matched] {
			continue
		}
		if r.spec.Count > 0 && r.hits >= r.spec.Count {
			continue
		}
		if p := r.spec.Probability; p != nil {
			// One draw per (seed, query, rule): a decision does not depend
			// on how many draws other queries or rules made.
			rng := rand.New(rand.NewPCG(s.seed, uint64(q.Seq)<<16|uint64(r.index)))
			if rng.Float64() >= *p {
				continue
			}
		}
		r.hits++
		r.fault.Apply(&e)
		e.Applied = append(e.Applied, r.fault.Name())
	}
	return e
}

// Hits counts the queries each fault type hit so far.
func (s *Set) Hits() map[string]int {
	out := map[string]int{}
	if s == nil {
		return out
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		out[r.fault.Name()] += r.hits
	}
	return out
}
