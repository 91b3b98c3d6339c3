package fault

import (
	"slices"
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

// A stall that follows retries holds the retries of the lookup it hit (same
// resolver socket and id) until the first query's hold ends, and nothing
// else: another connection asking the same name goes through.
func TestStallFollowsRetries(t *testing.T) {
	s, err := New([]Spec{{Type: "stall", Name: "*.bl2.example.net", Nth: []int{2}, Duration: 60 * time.Second, Follow: FollowRetries}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	q := func(seq int, key string, after time.Duration) Effect {
		return s.Decide(Query{Seq: seq, Name: "1.0.0.127.bl2.example.net", QType: "A", Key: key, At: t0.Add(after)})
	}
	if e := q(1, "10.0.0.5:4001#7", 0); len(e.Applied) != 0 {
		t.Fatalf("first lookup hit: %+v", e)
	}
	if e := q(2, "10.0.0.5:4002#9", 0); e.Hold != 60*time.Second {
		t.Fatalf("the chosen query: %+v", e)
	}
	// Courier's resolver asks again after 5 s and after 30 s, same socket, same id.
	if e := q(3, "10.0.0.5:4002#9", 5*time.Second); e.Hold != 55*time.Second || len(e.Applied) != 1 {
		t.Errorf("first retry: %+v", e)
	}
	if e := q(4, "10.0.0.5:4003#9", 6*time.Second); len(e.Applied) != 0 {
		t.Errorf("another socket with the same id was hit: %+v", e)
	}
	if e := q(5, "10.0.0.5:4002#9", 30*time.Second); e.Hold != 30*time.Second {
		t.Errorf("second retry: %+v", e)
	}
	if e := q(6, "10.0.0.5:4002#9", 61*time.Second); len(e.Applied) != 0 {
		t.Errorf("a retry after the stall ended was hit: %+v", e)
	}
	if h := s.Hits(); h["stall"] != 3 {
		t.Errorf("hits %v, want the query and its two retries", h)
	}
}

// A rule that follows the name holds every query for that name and type
// while the stall lasts, whoever asks (a caching resolver's one
// outstanding question), and lets them all go at the same instant.
func TestStallFollowsName(t *testing.T) {
	s, err := New([]Spec{{Type: "stall", Name: "*.bl2.example.net", Nth: []int{1}, Duration: 75 * time.Second, Follow: FollowName}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	for i, c := range []struct {
		at    time.Duration
		name  string
		qtype string
		hold  time.Duration
	}{
		{0, "1.0.0.127.bl2.example.net", "A", 75 * time.Second},
		{20 * time.Second, "1.0.0.127.bl2.example.net", "A", 55 * time.Second},
		{20 * time.Second, "1.0.0.127.bl2.example.net", "TXT", 0},
		{21 * time.Second, "1.0.0.127.bl1.example.net", "A", 0},
		{74 * time.Second, "1.0.0.127.bl2.example.net", "A", time.Second},
		{75 * time.Second, "1.0.0.127.bl2.example.net", "A", 0},
	} {
		e := s.Decide(Query{Seq: i + 1, Name: c.name, QType: c.qtype, Key: "k" + c.at.String(), At: t0.Add(c.at)})
		if e.Hold != c.hold {
			t.Errorf("query %d (%s %s at %v): hold %v, want %v", i+1, c.qtype, c.name, c.at, e.Hold, c.hold)
		}
	}
}

// A drop that follows retries loses every retry in its window; the first
// one after it is answered.
func TestDropFollowsRetries(t *testing.T) {
	s, err := New([]Spec{{Type: "drop", Nth: []int{1}, Duration: 40 * time.Second, Follow: FollowRetries}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	var lost []bool
	for i, at := range []time.Duration{0, 5 * time.Second, 30 * time.Second, 155 * time.Second} {
		lost = append(lost, s.Decide(Query{Seq: i + 1, Name: "x.example", QType: "A", Key: "s#1", At: t0.Add(at)}).Drop)
	}
	if want := []bool{true, true, true, false}; !slices.Equal(lost, want) {
		t.Errorf("lost %v, want %v", lost, want)
	}
}

func TestFollowSpecs(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Type: "stall", Duration: time.Second, Follow: "socket"}, `follow must be "retries" or "name"`},
		{Spec{Type: "servfail", Follow: FollowRetries}, "servfail cannot follow"},
		{Spec{Type: "drop", Follow: FollowRetries}, "drop with follow needs a positive duration"},
		{Spec{Type: "drop", Duration: time.Second}, "drop takes a duration only with follow"},
	} {
		_, err := Build(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.spec, err, c.want)
		}
	}
}

// A query with no arrival time, or no key to follow retries by, is hit
// alone: it never starts or joins a followed lookup.
func TestFollowNeedsTimeAndKey(t *testing.T) {
	s, err := New([]Spec{{Type: "stall", Nth: []int{1}, Duration: time.Minute, Follow: FollowRetries}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e := s.Decide(Query{Seq: 1, Name: "a.example", QType: "A"}); e.Hold != time.Minute {
		t.Fatalf("the chosen query: %+v", e)
	}
	if e := s.Decide(Query{Seq: 2, Name: "b.example", QType: "A"}); len(e.Applied) != 0 {
		t.Errorf("a keyless query with no time was followed: %+v", e)
	}
	t0 := time.Unix(1000, 0)
	s, _ = New([]Spec{{Type: "stall", Nth: []int{1}, Duration: time.Minute, Follow: FollowRetries}}, 1)
	s.Decide(Query{Seq: 1, Name: "a.example", QType: "A", At: t0})
	if e := s.Decide(Query{Seq: 2, Name: "b.example", QType: "A", At: t0.Add(time.Second)}); len(e.Applied) != 0 {
		t.Errorf("queries without a key were taken for one lookup: %+v", e)
	}
}
