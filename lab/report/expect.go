package report

import (
	"fmt"
	"strconv"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/scenario"
)

// Verdict is one expectation checked against a run.
type Verdict struct {
	Name string `json:"name"` // the scenario's key: "delivered", "max_total_time", ...
	Want string `json:"want"` // "= 200", "<= 30s", ...
	Got  string `json:"got"`
	OK   bool   `json:"ok"`
}

func (v Verdict) String() string {
	mark := "ok    "
	if !v.OK {
		mark = "FAILED"
	}
	return fmt.Sprintf("expect %s %s %s: got %s", mark, v.Name, v.Want, v.Got)
}

// Check checks the scenario's expectations against a run's figures, in
// the order Expect declares them.
func Check(e scenario.Expect, s Summary, o Outcome) []Verdict {
	vs := []Verdict{}
	intEq := func(name string, want *int, got int) {
		if want != nil {
			vs = append(vs, Verdict{name, fmt.Sprintf("= %d", *want), fmt.Sprint(got), got == *want})
		}
	}
	intMax := func(name string, want *int, got int) {
		if want != nil {
			vs = append(vs, Verdict{name, fmt.Sprintf("<= %d", *want), fmt.Sprint(got), got <= *want})
		}
	}
	durMax := func(name string, want *duration.Duration, got time.Duration) {
		if want != nil {
			// To the microsecond: a rounded figure could read "3s" beside a
			// failed "<= 3s".
			got = got.Round(time.Microsecond) // judged as shown
			vs = append(vs, Verdict{name, "<= " + exactSecs(want.D()), exactSecs(got), got <= want.D()})
		}
	}
	intEq("delivered", e.Delivered, s.Delivered)
	if e.NoneLost {
		n := len(o.Lost) + len(o.Duplicated) + len(o.Unexpected) + len(o.Failed) + len(o.NotQueued)
		got := "none"
		if n > 0 {
			got = fmt.Sprintf("%d lost, %d duplicated, %d unexpected, %d failed, %d not queued",
				len(o.Lost), len(o.Duplicated), len(o.Unexpected), len(o.Failed), len(o.NotQueued))
		}
		vs = append(vs, Verdict{"none_lost", "no message lost, duplicated or failed", got, n == 0})
	}
	durMax("max_total_time", e.MaxTotalTime, s.TotalTime)
	intMax("max_connections", e.MaxConnections, s.Connections)
	durMax("max_latency_p99", e.MaxLatencyP99, s.Latency.P99)
	if e.MinMessagesPerSecond > 0 {
		vs = append(vs, Verdict{"min_messages_per_second", fmt.Sprintf(">= %g", e.MinMessagesPerSecond),
			rate(s.MessagesPerSecond, e.MinMessagesPerSecond), s.MessagesPerSecond >= e.MinMessagesPerSecond})
	}
	intMax("max_dns_queries", e.MaxDNSQueries, s.DNSQueries)
	if e.MaxHeldByFaults != nil && !s.Measured(KeyHeldByFaults) {
		// A bound on a figure the run could not measure fails: its field
		// holds 0, which would pass any bound.
		vs = append(vs, Verdict{"max_held_by_faults", fmt.Sprintf("<= %d", *e.MaxHeldByFaults), NotMeasured(KeyHeldByFaults), false})
	} else {
		intMax("max_held_by_faults", e.MaxHeldByFaults, s.HeldByFaults)
	}
	if e.MaxInjectionLag != nil {
		if s.Pace == nil {
			vs = append(vs, Verdict{"max_injection_lag", "<= " + e.MaxInjectionLag.String(), "not measured (no injection record)", false})
		} else {
			durMax("max_injection_lag", e.MaxInjectionLag, s.Pace.LagMax)
		}
	}
	if e.PaceHeld {
		got, ok := "not measured (no injection record)", false
		if s.Pace != nil {
			got, ok = heldText(*s.Pace), s.Pace.Held != nil && *s.Pace.Held
		}
		vs = append(vs, Verdict{"pace_held", "the injection kept the workload's schedule", got, ok})
	}
	return vs
}

// Failed returns the verdicts that did not hold.
func Failed(vs []Verdict) []Verdict {
	var f []Verdict
	for _, v := range vs {
		if !v.OK {
			f = append(f, v)
		}
	}
	return f
}

// rate prints a rate to two decimals, or in full where two decimals would
// read as meeting a bound it misses ("got 10.00" beside a failed ">= 10").
func rate(got, least float64) string {
	short := fmt.Sprintf("%.2f", got)
	if v, _ := strconv.ParseFloat(short, 64); got < least && v >= least {
		return strconv.FormatFloat(got, 'f', -1, 64)
	}
	return short
}

// exactSecs is d as every output writes durations ("150 ms", "3 s",
// "43.069893 s"), to the microsecond: an expectation's bound and the
// figure judged against it, which rounding could make read the same.
func exactSecs(d time.Duration) string {
	d = d.Round(time.Microsecond)
	if d.Abs() < time.Second {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}
