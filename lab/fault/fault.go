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
	// Key names the resolver's question: its socket and the query id
	// (events.QueryKey). A resolver that asks again on the same socket with
	// the same id, as Courier's rfc1035 library does (courier-libs
	// rfc1035/rfc1035resolve.c builds the query once and resends it), keeps
	// the key; a rule that follows retries finds them by it.
	Key string
	At  time.Time // when the query arrived
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

// Follower is a fault that can follow the lookup it hit (Spec.Follow):
// Until says when it lets go of a lookup first hit at t, and Follow
// applies it to a later query of that lookup that arrived left before then.
type Follower interface {
	Fault
	Until(t time.Time) time.Time
	Follow(e *Effect, left time.Duration)
}

// The ways a rule can follow the lookup it hit (Spec.Follow).
const (
	// FollowRetries: every retry of the hit query from the same resolver
	// socket with the same id (Query.Key).
	FollowRetries = "retries"
	// FollowName: every query for the same name and type, whoever asks: a
	// caching resolver between the clients and the line with one question
	// outstanding upstream, to which it attaches every later client asking
	// the same.
	FollowName = "name"
)

// forever is how long a rule that never lets go holds on.
var forever = time.Unix(1<<62, 0)

// Drop loses the query.
type Drop struct{}

func (Drop) Name() string    { return "drop" }
func (Drop) Apply(e *Effect) { e.Drop = true }

// FollowDrop is a drop that follows its lookup for Window: every retry
// that arrives meanwhile is lost too.
type FollowDrop struct {
	Drop
	Window time.Duration
}

func (d FollowDrop) Until(t time.Time) time.Time     { return t.Add(d.Window) }
func (FollowDrop) Follow(e *Effect, _ time.Duration) { e.Drop = true }

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

// Until: a stall lets go of its lookup when the first query's hold ends.
func (s Stall) Until(t time.Time) time.Time {
	if s.Forever {
		return forever
	}
	return t.Add(s.Duration)
}

// Follow holds a later query of a stalled lookup until the stall ends, so
// that all of them go on together, as packets a stalled line or server
// kept do.
func (s Stall) Follow(e *Effect, left time.Duration) {
	if s.Forever {
		e.Forever = true
		return
	}
	e.Hold += left
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
	// Follow keeps hitting the lookup a rule hit, outside the selectors
	// above, until the fault lets go of it (a stall's end, a drop's
	// Duration): FollowRetries or FollowName; "" hits each query alone.
	Follow string `json:"follow,omitempty"`
	// Parameters.
	Duration time.Duration `json:"duration_ns,omitempty"` // stall: the hold; slow_upstream: the extra cost
	Forever  bool          `json:"forever,omitempty"`     // stall: never answer
}

// types is every fault type, by the name a Spec gives in Type: each builds
// its fault from a Spec, checking the parameters it takes.
var types = map[string]func(Spec) (Fault, error){
	"drop": func(s Spec) (Fault, error) {
		if s.Follow != "" {
			if s.Duration <= 0 {
				return nil, fmt.Errorf("drop with follow needs a positive duration: how long the retries are lost")
			}
			return FollowDrop{Window: s.Duration}, nil
		}
		if s.Duration != 0 {
			return nil, fmt.Errorf("drop takes a duration only with follow")
		}
		return Drop{}, nil
	},
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
	// held is the lookups the rule follows, by followKey, and when it
	// lets go of each.
	held     map[lookup]time.Time
	followed int // later queries of those lookups it hit
}

// lookup is what a rule that follows recognises a lookup by: the
// resolver's key (FollowRetries), or the name and type (FollowName).
type lookup struct{ key, qtype, name string }

// followKey is q's lookup as r follows it; false when q cannot be
// followed (no arrival time, or no key to follow retries by).
func (r *rule) followKey(q Query, name string) (lookup, bool) {
	if q.At.IsZero() {
		return lookup{}, false
	}
	if r.spec.Follow == FollowName {
		return lookup{qtype: strings.ToUpper(q.QType), name: name}, true
	}
	return lookup{key: q.Key}, q.Key != ""
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
		r := &rule{index: i, spec: sp, fault: f, nth: map[int]bool{}, held: map[lookup]time.Time{}}
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
	f, err := build(sp)
	if err != nil {
		return nil, err
	}
	if _, ok := f.(Follower); sp.Follow != "" && !ok {
		return nil, fmt.Errorf("%s cannot follow a lookup (follow works with drop and stall)", sp.Type)
	}
	return f, nil
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
	switch sp.Follow {
	case "", FollowRetries, FollowName:
	default:
		return fmt.Errorf("follow must be %q or %q, got %q", FollowRetries, FollowName, sp.Follow)
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
		if f, ok := r.fault.(Follower); ok && r.spec.Follow != "" {
			if k, ok := r.followKey(q, name); ok {
				if until, held := r.held[k]; held && q.At.Before(until) {
					r.followed++
					f.Follow(&e, until.Sub(q.At))
					e.Applied = append(e.Applied, r.fault.Name())
					continue
				} else if held {
					delete(r.held, k) // let go of: the map keeps only what is held
				}
			}
		}
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
		if f, ok := r.fault.(Follower); ok && r.spec.Follow != "" {
			if k, ok := r.followKey(q, name); ok {
				r.held[k] = f.Until(q.At)
			}
		}
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
		out[r.fault.Name()] += r.hits + r.followed
	}
	return out
}
