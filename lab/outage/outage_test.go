package outage

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/topology"
)

func TestBuildRefuses(t *testing.T) {
	half, bad := 0.5, 1.5
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Type: "explode", Role: topology.Receiver, At: time.Second}, "unknown fault type"},
		{Spec{Type: "kill", Role: "mailhub", At: time.Second}, `role "mailhub"`},
		{Spec{Type: "kill", Role: topology.Receiver}, "exactly one trigger"},
		{Spec{Type: "kill", Role: topology.Receiver, At: time.Second, AfterDelivered: 3}, "exactly one trigger"},
		{Spec{Type: "kill", Role: topology.Receiver, At: time.Second, Duration: time.Second}, "set restart: true"},
		{Spec{Type: "pause", Role: topology.DNS, At: time.Second}, "positive duration"},
		{Spec{Type: "partition", Role: topology.Receiver, At: time.Second, Duration: time.Second, Restart: true}, "takes no restart"},
		{Spec{Type: "pause", Role: topology.DNS, At: time.Second, Duration: time.Second, Probability: &bad}, "probability"},
		{Spec{Type: "pause", Role: topology.DNS, AfterQueued: -1, Duration: time.Second}, "exactly one trigger"},
	} {
		_, err := Build(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Build(%+v) = %v, want an error with %q", c.spec, err, c.want)
		}
	}
	if _, err := Build(Spec{Type: "pause", Role: topology.Identd, OnConnection: 4, Duration: time.Second, Probability: &half}); err != nil {
		t.Errorf("a good rule refused: %v", err)
	}
	if _, err := New([]Spec{{Type: "kill", Role: topology.Sender, At: time.Second}, {Type: "pause", Role: topology.DNS}}, 1); err == nil || !strings.HasPrefix(err.Error(), "faults[1]: ") {
		t.Errorf("New's error does not name the rule: %v", err)
	}
}

// TestDueOnce: each rule fires once, when its own count is reached, in
// the scenario's order.
func TestDueOnce(t *testing.T) {
	s, err := New([]Spec{
		{Type: "kill", Role: topology.Receiver, AfterDelivered: 50, Restart: true},
		{Type: "pause", Role: topology.DNS, At: 3 * time.Second, Duration: 10 * time.Second},
		{Type: "partition", Role: topology.Receiver, OnConnection: 5, Duration: time.Second},
		{Type: "kill", Role: topology.Sender, AfterQueued: 20},
	}, 7)
	if err != nil {
		t.Fatal(err)
	}
	names := func(rs []*Rule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name())
		}
		return out
	}
	steps := []struct {
		p    Progress
		want []string
	}{
		{Progress{Elapsed: time.Second, Delivered: 10, Queued: 19, Connections: 4}, nil},
		{Progress{Elapsed: 2 * time.Second, Delivered: 49, Queued: 20, Connections: 5}, []string{"faults[2]", "faults[3]"}},
		{Progress{Elapsed: 3 * time.Second, Delivered: 50, Queued: 30, Connections: 9}, []string{"faults[0]", "faults[1]"}},
		{Progress{Elapsed: 9 * time.Second, Delivered: 200, Queued: 200, Connections: 20}, nil},
	}
	for i, st := range steps {
		if got := names(s.Due(st.p)); !slices.Equal(got, st.want) {
			t.Errorf("step %d: due %v, want %v", i, got, st.want)
		}
	}
	if s.Pending() {
		t.Error("every rule fired, yet one is pending")
	}
	if got := (Spec{AfterQueued: 20}).Trigger(); got != "after 20 queued" {
		t.Errorf("trigger text %q", got)
	}
}

// TestSeededDecisions: the same seed makes the same choices; over many
// seeds a probability of one half fires about half the rules.
func TestSeededDecisions(t *testing.T) {
	p := 0.5
	specs := make([]Spec, 64)
	for i := range specs {
		specs[i] = Spec{Type: "pause", Role: topology.DNS, At: time.Second, Duration: time.Second, Probability: &p}
	}
	skipped := func(seed uint64) []bool {
		s, err := New(specs, seed)
		if err != nil {
			t.Fatal(err)
		}
		var out []bool
		for _, r := range s.Rules() {
			out = append(out, r.Skipped)
		}
		return out
	}
	a, b, c := skipped(42), skipped(42), skipped(43)
	if !slices.Equal(a, b) {
		t.Error("the same seed made different decisions")
	}
	if slices.Equal(a, c) {
		t.Error("seeds 42 and 43 made the same 64 decisions")
	}
	n := 0
	for _, s := range a {
		if s {
			n++
		}
	}
	if n < 16 || n > 48 {
		t.Errorf("probability 0.5 skipped %d of 64 rules", n)
	}
}
