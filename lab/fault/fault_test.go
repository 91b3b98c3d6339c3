package fault

import (
	"strings"
	"testing"
	"time"
)

func decideAll(s *Set, names []string) []Effect {
	var out []Effect
	for i, n := range names {
		out = append(out, s.Decide(Query{Seq: i + 1, Name: n, QType: "A"}))
	}
	return out
}

func TestNthMatchingQuery(t *testing.T) {
	s, err := New([]Spec{{Type: "stall", Name: "*.bl1.example.net", Nth: []int{2}, Duration: time.Minute}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	effs := decideAll(s, []string{"a.bl1.example.net", "x.other", "b.bl1.example.net", "c.BL1.example.net."})
	for i, e := range effs {
		want := i == 2 // the second query under bl1 is the third query overall
		if (e.Hold == time.Minute) != want || (len(e.Applied) == 1) != want {
			t.Errorf("query %d: %+v", i+1, e)
		}
	}
	if h := s.Hits(); h["stall"] != 1 {
		t.Errorf("hits %v", h)
	}
}

func TestEveryMatchAndCount(t *testing.T) {
	s, _ := New([]Spec{{Type: "servfail", QType: "PTR", Count: 2}, {Type: "drop", Name: "lost.example"}}, 1)
	var servfails, drops int
	for i := 0; i < 5; i++ {
		e := s.Decide(Query{Seq: 2*i + 1, Name: "1.0.0.127.in-addr.arpa", QType: "PTR"})
		if e.Rcode == RcodeServerFailure {
			servfails++
		}
		if s.Decide(Query{Seq: 2*i + 2, Name: "lost.example", QType: "A"}).Drop {
			drops++
		}
	}
	if servfails != 2 || drops != 5 {
		t.Errorf("servfails %d (count 2), drops %d (all 5)", servfails, drops)
	}
}

// A fraction is drawn from the seed and the query's number: the same run
// makes the same decisions, another seed others, and about the fraction.
func TestProbabilityIsSeeded(t *testing.T) {
	names := make([]string, 2000)
	for i := range names {
		names[i] = "q.example"
	}
	run := func(seed uint64) []bool {
		s, _ := New([]Spec{{Type: "drop", Probability: ptr(0.1)}}, seed)
		var out []bool
		for _, e := range decideAll(s, names) {
			out = append(out, e.Drop)
		}
		return out
	}
	a, b, c := run(42), run(42), run(43)
	same, differ, n := true, false, 0
	for i := range a {
		same = same && a[i] == b[i]
		differ = differ || a[i] != c[i]
		if a[i] {
			n++
		}
	}
	if !same || !differ {
		t.Errorf("same seed same decisions: %v, other seed differs: %v", same, differ)
	}
	if n < 140 || n > 260 {
		t.Errorf("dropped %d of 2000 at probability 0.1", n)
	}
}

func TestEffectsCombine(t *testing.T) {
	s, _ := New([]Spec{
		{Type: "stall", Duration: time.Second},
		{Type: "slow_upstream", Duration: 300 * time.Millisecond},
		{Type: "stall", Forever: true, Name: "never.example"},
	}, 1)
	e := s.Decide(Query{Seq: 1, Name: "never.example", QType: "A"})
	if e.Hold != time.Second || e.Upstream != 300*time.Millisecond || !e.Forever || strings.Join(e.Applied, ",") != "stall,slow_upstream,stall" {
		t.Errorf("effect %+v", e)
	}
	var nilSet *Set
	if e := nilSet.Decide(Query{Seq: 1}); e.Drop || len(e.Applied) > 0 {
		t.Errorf("no rules hit: %+v", e)
	}
}

func TestBadSpecs(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Type: "explode"}, `faults[0]: unknown fault type "explode" (known: drop, servfail, slow_upstream, stall)`},
		{Spec{Type: "stall"}, "faults[0]: stall needs a positive duration"},
		{Spec{Type: "slow_upstream"}, "faults[0]: slow_upstream needs a positive duration"},
		{Spec{Type: "drop", Probability: ptr(1.5)}, "probability must be in [0, 1]"},
		{Spec{Type: "drop", Nth: []int{0}}, "nth counts from 1"},
		{Spec{Type: "drop", Name: "[a-"}, "bad name pattern"},
	} {
		_, err := New([]Spec{c.spec}, 1)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.spec, err, c.want)
		}
	}
}

func ptr(f float64) *float64 { return &f }

// probability 0 switches a rule off; no probability hits every match.
func TestProbabilityZeroIsOff(t *testing.T) {
	s, _ := New([]Spec{{Type: "drop", Probability: ptr(0)}}, 1)
	for i := 1; i <= 100; i++ {
		if s.Decide(Query{Seq: i, Name: "a"}).Drop {
			t.Fatalf("query %d dropped at probability 0", i)
		}
	}
}
