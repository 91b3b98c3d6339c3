package compare

import (
	"slices"
	"time"

	"github.com/smtplab/smtplab/lab/report"
)

// Direction says which way a figure improves.
type Direction int

const (
	// NoDirection is for figures where only a change matters: how many
	// messages arrived, how many connections and queries the
	// configuration made.
	NoDirection Direction = iota
	LowerIsBetter
	HigherIsBetter
)

func (d Direction) String() string {
	switch d {
	case LowerIsBetter:
		return "lower"
	case HigherIsBetter:
		return "higher"
	}
	return "none"
}

// MarshalText writes "lower", "higher" or "none".
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Measure is what a figure measures, the same for every run.
type Measure struct {
	Key    string    `json:"key"`   // stable: "total_time_s"
	Label  string    `json:"label"` // for people: "total time"
	Unit   string    `json:"unit"`  // "s", "messages/s", "connections"
	Better Direction `json:"better"`
	// bench is the unit in benchmark format: no spaces, distinct per
	// figure, seconds as "sec" as benchstat spells them.
	bench string
}

// Figure is one named figure of one run.
type Figure struct {
	Measure
	Value float64 `json:"value"`
}

// figure is a Measure and how to read it from a run's summary.
type figure struct {
	Measure
	value func(s report.Summary) float64
	// optional figures are left out of a run where they are zero (the
	// line floor of a run without a line).
	optional bool
	// summaryKey is the summary's JSON key of a figure a run can leave
	// unmeasured (report.Summary.Unmeasured): left out of such a run, so
	// that its 0 is not taken into a median or a comparison.
	summaryKey string
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// figures is every figure, in the order they are printed.
var figures = []figure{
	{Measure: Measure{"delivered", "delivered", "messages", NoDirection, "delivered-msgs"},
		value: func(s report.Summary) float64 { return float64(s.Delivered) }},
	{Measure: Measure{"total_time_s", "total time", "s", LowerIsBetter, "total-sec"},
		value: func(s report.Summary) float64 { return seconds(s.TotalTime) }},
	{Measure: Measure{"messages_per_second", "messages per second", "messages/s", HigherIsBetter, "msgs/s"},
		value: func(s report.Summary) float64 { return s.MessagesPerSecond }},
	{Measure: Measure{"receiver_connections", "receiver connections", "connections", NoDirection, "receiver-conns"},
		value: func(s report.Summary) float64 { return float64(s.Connections) }},
	{Measure: Measure{"sender_connections", "sender connections", "connections", NoDirection, "sender-conns"},
		value: func(s report.Summary) float64 { return float64(s.SenderConnections) }, summaryKey: report.KeySenderConnections},
	{Measure: Measure{"dns_queries", "DNS queries", "queries", NoDirection, "dns-queries"},
		value: func(s report.Summary) float64 { return float64(s.DNSQueries) }},
	{Measure: Measure{"lookups_per_connection", "lookups per connection", "lookups/connection", NoDirection, "lookups/conn"},
		value: func(s report.Summary) float64 { return s.LookupsPerConnection }},
	{Measure: Measure{"ident_queries", "IDENT queries", "queries", NoDirection, "ident-queries"},
		value: func(s report.Summary) float64 { return float64(s.IdentQueries) }},
	{Measure: Measure{"latency_p50_s", "latency p50", "s", LowerIsBetter, "p50-latency-sec"},
		value: func(s report.Summary) float64 { return seconds(s.Latency.P50) }},
	{Measure: Measure{"latency_p90_s", "latency p90", "s", LowerIsBetter, "p90-latency-sec"},
		value: func(s report.Summary) float64 { return seconds(s.Latency.P90) }},
	{Measure: Measure{"latency_p99_s", "latency p99", "s", LowerIsBetter, "p99-latency-sec"},
		value: func(s report.Summary) float64 { return seconds(s.Latency.P99) }},
	{Measure: Measure{"latency_max_s", "latency max", "s", LowerIsBetter, "max-latency-sec"},
		value: func(s report.Summary) float64 { return seconds(s.Latency.Max) }},
	{Measure: Measure{"messages_over_10s", "messages over 10 s", "messages", LowerIsBetter, "late-msgs"},
		value: func(s report.Summary) float64 { return float64(s.DeliveredLateMessages) }},
	{Measure: Measure{"held_by_faults", "held by faults", "messages", LowerIsBetter, "held-msgs"},
		value: func(s report.Summary) float64 { return float64(s.HeldByFaults) }, summaryKey: report.KeyHeldByFaults},
	{Measure: Measure{"retries", "sender retries", "retries", LowerIsBetter, "retries"},
		value: func(s report.Summary) float64 { return float64(s.Retries) }},
	// The floor is what the line allows, not how the lab did: a bound to
	// read the total time against, so no direction.
	{Measure: Measure{"line_floor_s", "DNS line floor", "s", NoDirection, "line-floor-sec"},
		value: func(s report.Summary) float64 { return seconds(s.LineFloor) }, optional: true},
}

// Figures returns the named figures of one run, from its summary, in a
// fixed order. The line floor is left out when it is zero (no line), and
// so is a figure the run did not measure (the sender connections of a
// real MTA sender).
func Figures(r *report.Result) []Figure {
	var fs []Figure
	for _, f := range figures {
		v := f.value(r.Summary)
		if f.optional && v == 0 || f.summaryKey != "" && !r.Summary.Measured(f.summaryKey) {
			continue
		}
		fs = append(fs, Figure{f.Measure, v})
	}
	return fs
}

// reported1999 are the figures the 1999 benchmark reported: the others
// (DNS queries, latency percentiles, retries) it did not measure.
var reported1999 = []string{"delivered", "total_time_s", "messages_per_second", "receiver_connections",
	"lookups_per_connection", "messages_over_10s", "held_by_faults"}

// Figure1999 is 1999's value of the figure key (report.Seed1999), and
// whether 1999 reported it. Only a run of the 1999 workload is drawn
// beside it (scenario.Workload.Not1999).
func Figure1999(key string) (float64, bool) {
	if !slices.Contains(reported1999, key) {
		return 0, false
	}
	for _, f := range figures {
		if f.Key == key {
			return f.value(report.Seed1999), true
		}
	}
	return 0, false
}
