// Package compare puts runs side by side: the named figures of one run
// (Figures), their median and spread over repeated runs of one scenario
// (Stats), and two sets of runs, A and B, compared figure by figure
// (Compare). It also writes runs in Go's benchmark format for benchstat
// (WriteBench), and loads a set from a result.json, a run's folder or a
// folder of runs (LoadSet).
//
// Medians and spreads, not single values, because one run on a shared
// machine is noisy: the same scenario twice can differ by tens of percent
// in time while every count stays the same.
//
// # Verdicts
//
// Each figure of a comparison gets one verdict, from the ranges
// [min, max] of its values on each side, not from the medians alone:
//
//   - "same": every run on both sides gave the same value.
//   - "single run: no spread known": a side has one run, so nothing says
//     how far the figure moves by chance. The change is shown, not
//     judged; repeat the runs (lab run --repeat N).
//   - With two or more runs on each side: "within noise" when the two
//     ranges overlap (touching counts as overlapping); when they do not,
//     "better" or "worse" in the figure's direction (lower total time,
//     higher messages per second), or "changed" for a figure with no
//     better direction (messages delivered, connections, queries).
//   - "only in A", "only in B": the figure exists on one side only (the
//     line floor of a scenario with a DNS line), or was measured on one
//     side only (sender connections, when the other side's sender was a
//     real MTA); the other side shows "-".
//
// Ranges that do not overlap are a rule of thumb, not a significance
// test. When nothing changed, N runs a side still fall apart by chance
// with probability 2/C(2N, N): 1 in 3 with 2 runs, 1 in 10 with 3, 1 in
// 35 with 4, 1 in 126 with 5. Act on a verdict from 5 runs a side; for a
// test, feed WriteBench's lines to benchstat.
package compare

import (
	"fmt"
	"strings"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
)

// Verdict is what a comparison says about one figure.
type Verdict string

// The verdicts; see the package doc for the rule.
const (
	Same        Verdict = "same"
	SingleRun   Verdict = "single run: no spread known"
	WithinNoise Verdict = "within noise"
	Better      Verdict = "better"
	Worse       Verdict = "worse"
	Changed     Verdict = "changed"
	OnlyInA     Verdict = "only in A"
	OnlyInB     Verdict = "only in B"
)

// Side describes one set of runs in a comparison.
type Side struct {
	Scenario string   `json:"scenario"`
	Runs     []string `json:"runs"` // run ids, in the set's order
	// NotHeld names the runs left out because their injection did not
	// hold the scenario's pace (lab/pace): their figures were measured at
	// another pace, so they are named, not mixed into the medians.
	NotHeld []string `json:"not_held,omitempty"`
	// MachineDependent: the side's scenario injects as fast as the
	// machine goes (pace mode loop), so its figures depend on the machine.
	MachineDependent bool `json:"machine_dependent,omitempty"`
}

// PaceHeld splits runs into those that held their pace (or had none to
// hold: runs whose result has no pace, loop runs) and the ids of those
// that did not.
func PaceHeld(runs []*report.Result) (held []*report.Result, notHeld []string) {
	for _, r := range runs {
		if p := r.Summary.Pace; p != nil && p.Held != nil && !*p.Held {
			notHeld = append(notHeld, r.RunID)
			continue
		}
		held = append(held, r)
	}
	return held, notHeld
}

// Row is one figure compared: B against A.
type Row struct {
	Measure
	// N is 0 on the side that lacks the figure.
	A Stat `json:"a"`
	B Stat `json:"b"`
	// Change is B's median less A's; ChangePct the same in percent of
	// A's median, 0 when A's median is 0 (ChangeKnown false).
	Change      float64 `json:"change"`
	ChangePct   float64 `json:"change_pct"`
	ChangeKnown bool    `json:"change_known"`
	Verdict     Verdict `json:"verdict"`
}

// Comparison is two sets of runs compared figure by figure.
type Comparison struct {
	A    Side  `json:"a"`
	B    Side  `json:"b"`
	Rows []Row `json:"rows"`
	// Differs are the workload's and the pace's fields in which the two
	// sides' scenarios differ (their first runs'): figures of different
	// workloads or paces are not the same measure of two systems.
	Differs []scenario.Diff `json:"differs,omitempty"`
}

// Compare compares set B against set A. Each set is one or more complete
// runs of one scenario (see Stats); the two sets may be of different
// scenarios.
//
// Runs that did not hold their pace are left out of either side and
// named in its NotHeld; a side with none left is an error.
func Compare(a, b []*report.Result) (Comparison, error) {
	a, notA := PaceHeld(a)
	b, notB := PaceHeld(b)
	if len(a) == 0 {
		return Comparison{}, fmt.Errorf("A: no run held its pace (%s): nothing to compare", strings.Join(notA, ", "))
	}
	if len(b) == 0 {
		return Comparison{}, fmt.Errorf("B: no run held its pace (%s): nothing to compare", strings.Join(notB, ", "))
	}
	sa, err := Stats(a)
	if err != nil {
		return Comparison{}, fmt.Errorf("A: %w", err)
	}
	sb, err := Stats(b)
	if err != nil {
		return Comparison{}, fmt.Errorf("B: %w", err)
	}
	c := Comparison{A: side(a), B: side(b), Differs: scenario.WorkloadDiff(a[0].Scenario.Workload, b[0].Scenario.Workload)}
	c.A.NotHeld, c.B.NotHeld = notA, notB
	byKey := func(ss []Stat) map[string]Stat {
		m := map[string]Stat{}
		for _, s := range ss {
			m[s.Key] = s
		}
		return m
	}
	ma, mb := byKey(sa), byKey(sb)
	for _, f := range figures {
		x, inA := ma[f.Key]
		y, inB := mb[f.Key]
		if !inA && !inB {
			continue
		}
		row := Row{Measure: f.Measure, A: x, B: y}
		switch {
		case !inB:
			row.Verdict = OnlyInA
		case !inA:
			row.Verdict = OnlyInB
		default:
			row.Change = y.Median - x.Median
			if x.Median != 0 {
				row.ChangePct, row.ChangeKnown = 100*row.Change/abs(x.Median), true
			}
			row.Verdict = verdict(f.Better, x, y)
		}
		c.Rows = append(c.Rows, row)
	}
	return c, nil
}

// verdict judges B against A for one figure; see the package doc.
func verdict(better Direction, a, b Stat) Verdict {
	switch {
	case a.Min == a.Max && b.Min == b.Max && a.Min == b.Min:
		return Same
	case a.N < 2 || b.N < 2:
		return SingleRun
	case b.Min <= a.Max && a.Min <= b.Max:
		return WithinNoise
	}
	up := b.Min > a.Max
	switch {
	case better == NoDirection:
		return Changed
	case up == (better == HigherIsBetter):
		return Better
	}
	return Worse
}

func side(runs []*report.Result) Side {
	s := Side{Scenario: runs[0].Scenario.Name}
	if p := runs[0].Summary.Pace; p != nil {
		s.MachineDependent = p.MachineDependent
	}
	for _, r := range runs {
		s.Runs = append(s.Runs, r.RunID)
	}
	return s
}
