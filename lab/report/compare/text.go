package compare

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// WriteText prints a comparison as a table: per figure A, B, the change
// and the verdict; a side with repeats shows its range beside the median.
func WriteText(w io.Writer, c Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "A: %s\n", describe(c.A))
	fmt.Fprintf(tw, "B: %s\n\n", describe(c.B))
	if len(c.Differs) > 0 {
		var ds []string
		for _, d := range c.Differs {
			ds = append(ds, fmt.Sprintf("%s %s (A) vs %s (B)", d.Field, d.A, d.B))
		}
		fmt.Fprintf(tw, "warning: A and B ran different workloads or paces, so their figures measure different things: %s\n\n", strings.Join(ds, "; "))
	}
	fmt.Fprintf(tw, "figure\tA\tB\tchange\tverdict\n")
	for _, r := range c.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Label, withRange(r.A), withRange(r.B), r.ChangeText(), r.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, sd := range []struct {
		name string
		side Side
	}{{"A", c.A}, {"B", c.B}} {
		if len(sd.side.NotHeld) > 0 {
			fmt.Fprintf(w, "\n%s: left out, did not hold the scenario's pace: %s\n", sd.name, strings.Join(sd.side.NotHeld, ", "))
		}
		if sd.side.MachineDependent {
			fmt.Fprintf(w, "\n%s: paced by the machine (pace mode loop): its figures depend on the machine and its load\n", sd.name)
		}
	}
	n, m := len(c.A.Runs), len(c.B.Runs)
	if n < 2 || m < 2 {
		_, err := fmt.Fprintf(w, "\n%s: with one run on a side the change is shown, not judged.\n"+
			"Repeat each side (lab run --repeat N; 5 runs for a verdict to act on) to know the noise.\n", SingleRun)
		return err
	}
	chance, chance5 := chanceApart(n, m), chanceApart(5, 5)
	five := func(format string, v float64) string { // what 5 runs a side would give, unless that is this
		if n == 5 && m == 5 {
			return ""
		}
		return fmt.Sprintf(" (5 runs a side: "+format+")", v)
	}
	_, err := fmt.Fprintf(w, "\nbetter/worse/changed: the ranges (min .. max) do not overlap. With %d and %d runs that happens by chance\n"+
		"1 in %.0f times for each figure when nothing changed%s.\n", n, m, chance, five("1 in %.0f", chance5))
	if err != nil {
		return err
	}
	if k := judged(c.Rows); k > 1 {
		_, err = fmt.Fprintf(w, "%d figures were judged: when nothing changed, chance alone calls about %.2g of them better, worse\n"+
			"or changed, on average%s.\n", k, float64(k)/chance, five("%.2g", float64(k)/chance5))
	}
	return err
}

// judged counts the rows whose verdict came from comparing ranges: the
// ones that could be called better, worse or changed by chance. When
// nothing changed each is called so with at most the chance chanceApart
// gives (less for counts, whose runs can tie); whatever the figures have
// in common (total time and messages per second move together), the
// expected number of such calls is at most that chance times their count.
func judged(rows []Row) int {
	k := 0
	for _, r := range rows {
		switch r.Verdict {
		case WithinNoise, Better, Worse, Changed:
			k++
		}
	}
	return k
}

// chanceApart is 1 / P(two sets of n and m runs of the same thing have
// ranges that do not overlap): C(n+m, n) / 2, every order being equally
// likely.
func chanceApart(n, m int) float64 {
	c := 1.0
	for i := 1; i <= n; i++ {
		c = c * float64(m+i) / float64(i)
	}
	return c / 2
}

// WriteStats prints figures over repeated runs: median, least, most and
// spread, absolute and in percent of the median.
func WriteStats(w io.Writer, stats []Stat) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\truns\tmedian\tmin\tmax\tspread\tspread %%\n")
	for _, s := range stats {
		rel := "-" // no percent of a zero median
		if s.Median != 0 {
			rel = fmt.Sprintf("%.1f%%", 100*s.RelSpread)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Label, s.N,
			value(s.Median, s.Unit), value(s.Min, s.Unit), value(s.Max, s.Unit), value(s.Spread, s.Unit), rel)
	}
	return tw.Flush()
}

func describe(s Side) string {
	runs := "runs"
	if len(s.Runs) == 1 {
		runs = "run"
	}
	return fmt.Sprintf("scenario %s, %d %s: %s", s.Scenario, len(s.Runs), runs, strings.Join(s.Runs, ", "))
}

// ChangeText is the change column: B's median less A's in the figure's
// unit, and in percent of A's when A's is not 0; "-" when a side lacks
// the figure.
func (r Row) ChangeText() string {
	if r.A.N == 0 || r.B.N == 0 {
		return "-"
	}
	change := signed(r.Change, r.Unit)
	switch {
	case r.Change == 0: // no percent to show
	case r.ChangeKnown:
		change += fmt.Sprintf(" (%+.1f%%)", r.ChangePct)
	default:
		change += " (A is 0)"
	}
	return change
}

// String is the stat as a comparison's column shows it: the median, and
// the range when the runs differ.
func (s Stat) String() string { return withRange(s) }

// Format prints a figure's value in its unit, as every table of the
// package does.
func Format(v float64, unit string) string { return value(v, unit) }

// withRange is a side's median, and its range when it has repeats.
func withRange(s Stat) string {
	switch {
	case s.N == 0:
		return "-"
	case s.N == 1 || s.Min == s.Max:
		return value(s.Median, s.Unit)
	}
	return fmt.Sprintf("%s (%s .. %s)", value(s.Median, s.Unit), value(s.Min, s.Unit), value(s.Max, s.Unit))
}

// value prints a figure in its unit: seconds as ms below one second,
// counts whole (a median of an even number of runs may end in .5),
// rates with two decimals.
func value(v float64, unit string) string {
	switch {
	case unit == "s" && v == 0:
		return "0 s"
	case unit == "s" && math.Abs(v) < 1:
		return fmt.Sprintf("%.1f ms", v*1000)
	case unit == "s":
		return fmt.Sprintf("%.2f s", v)
	case strings.Contains(unit, "/"):
		return fmt.Sprintf("%.2f", v)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func signed(v float64, unit string) string {
	switch {
	case v == 0:
		return "0"
	case v > 0:
		return "+" + value(v, unit)
	}
	return value(v, unit) // carries its own minus
}
