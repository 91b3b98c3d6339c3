package compare

import (
	"errors"
	"fmt"
	"slices"

	"github.com/smtplab/smtplab/lab/report"
)

// Stat is one figure over the runs of one scenario.
type Stat struct {
	Measure
	N      int     `json:"n"` // runs that have this figure
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Spread float64 `json:"spread"` // Max - Min
	// RelSpread is Spread / |Median|; 0 when the median is 0 (then
	// Spread alone says it).
	RelSpread float64 `json:"rel_spread"`
}

// Stats summarises each figure over runs of one scenario: median, least,
// most and spread. It refuses an empty set, a set that mixes scenarios
// and a run that did not complete (its figures say nothing), naming the
// run.
func Stats(runs []*report.Result) ([]Stat, error) {
	if err := checkSet(runs); err != nil {
		return nil, err
	}
	values := map[string][]float64{}
	for _, r := range runs {
		for _, f := range Figures(r) {
			values[f.Key] = append(values[f.Key], f.Value)
		}
	}
	var stats []Stat
	for _, f := range figures {
		if vs := values[f.Key]; len(vs) > 0 {
			stats = append(stats, stat(f.Measure, vs))
		}
	}
	return stats, nil
}

func stat(m Measure, vs []float64) Stat {
	vs = slices.Sorted(slices.Values(vs))
	n := len(vs)
	s := Stat{Measure: m, N: n, Min: vs[0], Max: vs[n-1], Median: Median(vs)}
	s.Spread = s.Max - s.Min
	if s.Median != 0 {
		s.RelSpread = s.Spread / abs(s.Median)
	}
	return s
}

// Median is the middle of vs (the mean of the two middle values of an
// even count), 0 for none; vs is not changed.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// checkSet makes sure runs are one or more complete runs of one scenario.
func checkSet(runs []*report.Result) error {
	if len(runs) == 0 {
		return errors.New("no runs")
	}
	first := runs[0]
	for _, r := range runs {
		switch {
		case r == nil:
			return errors.New("a run is missing (nil result)")
		case !r.Complete:
			why := r.Error
			if why == "" {
				why = "no reason recorded"
			}
			return fmt.Errorf("run %s did not complete (%s): its figures say nothing; leave it out", runName(r), why)
		case r.Scenario.Name != first.Scenario.Name:
			return fmt.Errorf("run %s is of scenario %q, run %s of %q: a set holds runs of one scenario",
				runName(r), r.Scenario.Name, runName(first), first.Scenario.Name)
		}
	}
	return nil
}

// runName names a run by its file when it was loaded from one, else by
// its id.
func runName(r *report.Result) string {
	if r.Path != "" {
		return r.Path
	}
	return r.RunID
}
