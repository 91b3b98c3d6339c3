package compare

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/report"
)

// fastResult is a real run's result (scenario fast-expect, 200 messages,
// 20 connections, no DNS line).
const fastResult = "../testdata/fast-result.json"

func loadFast(t *testing.T) *report.Result {
	t.Helper()
	r, err := report.Load(fastResult)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// variant is a copy of base with its own id and summary changed by f.
func variant(base *report.Result, id string, f func(s *report.Summary)) *report.Result {
	r := *base
	r.RunID, r.Dir, r.Path = id, "", ""
	if f != nil {
		f(&r.Summary)
	}
	return &r
}

// withTimes makes one run per total time (in seconds).
func withTimes(base *report.Result, prefix string, secs ...float64) []*report.Result {
	var runs []*report.Result
	for i, s := range secs {
		runs = append(runs, variant(base, prefix+string(rune('a'+i)), func(sum *report.Summary) {
			sum.TotalTime = time.Duration(s * float64(time.Second))
		}))
	}
	return runs
}

func TestFigures(t *testing.T) {
	r := loadFast(t)
	fs := Figures(r)
	got := map[string]Figure{}
	var keys []string
	benchUnits := map[string]bool{}
	for _, f := range fs {
		if _, dup := got[f.Key]; dup {
			t.Errorf("key %s twice", f.Key)
		}
		if benchUnits[f.bench] || strings.ContainsAny(f.bench, " \t") || f.bench == "" {
			t.Errorf("bench unit %q: empty, repeated or with a space", f.bench)
		}
		benchUnits[f.bench] = true
		got[f.Key] = f
		keys = append(keys, f.Key)
	}
	want := []string{"delivered", "total_time_s", "messages_per_second", "receiver_connections", "sender_connections",
		"dns_queries", "lookups_per_connection", "ident_queries", "latency_p50_s", "latency_p90_s", "latency_p99_s",
		"latency_max_s", "messages_over_10s", "held_by_faults", "retries"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("keys\n %v\nwant (no line floor: the run had no line)\n %v", keys, want)
	}
	for key, v := range map[string]float64{
		"delivered": 200, "total_time_s": 3.756915739, "messages_per_second": 53.23515721255839,
		"receiver_connections": 20, "dns_queries": 80, "lookups_per_connection": 4, "ident_queries": 20,
		"latency_p50_s": 0.009871, "latency_max_s": 0.416767,
	} {
		if got[key].Value != v {
			t.Errorf("%s = %v, want %v (from the summary)", key, got[key].Value, v)
		}
	}
	if got["total_time_s"].Better != LowerIsBetter || got["messages_per_second"].Better != HigherIsBetter || got["delivered"].Better != NoDirection {
		t.Errorf("directions: total time %s, msgs/s %s, delivered %s", got["total_time_s"].Better, got["messages_per_second"].Better, got["delivered"].Better)
	}

	lined := variant(r, "lined", func(s *report.Summary) { s.LineFloor = 1500 * time.Millisecond })
	fs = Figures(lined)
	if last := fs[len(fs)-1]; last.Key != "line_floor_s" || last.Value != 1.5 {
		t.Errorf("with a line: last figure %+v, want line_floor_s 1.5", last)
	}
}

func TestStats(t *testing.T) {
	base := loadFast(t)
	stats, err := Stats(withTimes(base, "run-", 6, 3, 4))
	if err != nil {
		t.Fatal(err)
	}
	s := find(t, stats, "total_time_s")
	if s.N != 3 || s.Median != 4 || s.Min != 3 || s.Max != 6 || s.Spread != 3 || s.RelSpread != 0.75 {
		t.Errorf("total time over 6, 3, 4: %+v, want n 3 median 4 min 3 max 6 spread 3 (75%%)", s)
	}
	if d := find(t, stats, "delivered"); d.Median != 200 || d.Spread != 0 || d.N != 3 {
		t.Errorf("delivered: %+v, want 200 with no spread", d)
	}

	stats, err = Stats(withTimes(base, "run-", 1, 4, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if s := find(t, stats, "total_time_s"); s.Median != 2.5 {
		t.Errorf("median of 1, 4, 2, 3 = %v, want 2.5 (mean of the middle two)", s.Median)
	}
	if r := find(t, stats, "retries"); r.Median != 0 || r.RelSpread != 0 {
		t.Errorf("retries all 0: %+v, want median 0, relative spread 0", r)
	}
}

func find(t *testing.T, stats []Stat, key string) Stat {
	t.Helper()
	for _, s := range stats {
		if s.Key == key {
			return s
		}
	}
	t.Fatalf("no %s in stats", key)
	return Stat{}
}

func TestStatsRefuses(t *testing.T) {
	base := loadFast(t)
	other := variant(base, "other-run", nil)
	other.Scenario.Name = "courier-1999"
	failed := variant(base, "failed-run", nil)
	failed.Complete, failed.Error = false, "start receiver: no image"
	loaded := variant(base, "x", nil)
	loaded.Dir = filepath.Join("results", "fast-repeat", "r3")
	loaded.Path = filepath.Join(loaded.Dir, "result.json")
	loaded.Complete, loaded.Error = false, ""

	for _, tc := range []struct {
		name string
		runs []*report.Result
		want []string // in the error
	}{
		{"empty", nil, []string{"no runs"}},
		{"mixed", []*report.Result{base, other}, []string{"other-run", `"courier-1999"`, `"fast-expect"`, "one scenario"}},
		{"incomplete", []*report.Result{base, failed}, []string{"failed-run", "did not complete", "start receiver: no image"}},
		{"named by file", []*report.Result{loaded}, []string{filepath.Join("results", "fast-repeat", "r3", "result.json"), "no reason recorded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Stats(tc.runs)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestCompareVerdicts(t *testing.T) {
	base := loadFast(t)
	for _, tc := range []struct {
		name string
		a, b []float64 // total times, lower is better
		want Verdict
	}{
		{"same single", []float64{3}, []float64{3}, Same},
		{"same repeats", []float64{3, 3}, []float64{3, 3, 3}, Same},
		{"single A", []float64{3}, []float64{5, 6}, SingleRun},
		{"single B", []float64{3, 4}, []float64{1}, SingleRun},
		{"overlap", []float64{3, 5}, []float64{4, 6}, WithinNoise},
		{"touching", []float64{3, 4}, []float64{4, 5}, WithinNoise},
		{"faster", []float64{5, 6, 7}, []float64{3, 4, 4.5}, Better},
		{"slower", []float64{3, 4}, []float64{4.5, 5}, Worse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compare(withTimes(base, "a-", tc.a...), withTimes(base, "b-", tc.b...))
			if err != nil {
				t.Fatal(err)
			}
			if r := row(t, c, "total_time_s"); r.Verdict != tc.want {
				t.Errorf("total time %v vs %v: %q, want %q", tc.a, tc.b, r.Verdict, tc.want)
			}
		})
	}

	// Higher is better: messages per second.
	rate := func(prefix string, vs ...float64) []*report.Result {
		var runs []*report.Result
		for i, v := range vs {
			runs = append(runs, variant(base, prefix+string(rune('a'+i)), func(s *report.Summary) { s.MessagesPerSecond = v }))
		}
		return runs
	}
	c, err := Compare(rate("a-", 50, 52), rate("b-", 60, 61))
	if err != nil {
		t.Fatal(err)
	}
	if r := row(t, c, "messages_per_second"); r.Verdict != Better {
		t.Errorf("50-52 msgs/s to 60-61: %q, want better", r.Verdict)
	}
	c, _ = Compare(rate("a-", 60, 61), rate("b-", 50, 52))
	if r := row(t, c, "messages_per_second"); r.Verdict != Worse {
		t.Errorf("60-61 msgs/s to 50-52: %q, want worse", r.Verdict)
	}

	// No direction: connections only change.
	conns := func(prefix string, vs ...int) []*report.Result {
		var runs []*report.Result
		for i, v := range vs {
			runs = append(runs, variant(base, prefix+string(rune('a'+i)), func(s *report.Summary) { s.Connections = v }))
		}
		return runs
	}
	c, _ = Compare(conns("a-", 20, 20), conns("b-", 57, 58))
	if r := row(t, c, "receiver_connections"); r.Verdict != Changed {
		t.Errorf("20 connections to 57-58: %q, want changed", r.Verdict)
	}
	c, _ = Compare(conns("a-", 58, 57), conns("b-", 20, 20))
	if r := row(t, c, "receiver_connections"); r.Verdict != Changed {
		t.Errorf("57-58 connections to 20: %q, want changed", r.Verdict)
	}
}

func row(t *testing.T, c Comparison, key string) Row {
	t.Helper()
	for _, r := range c.Rows {
		if r.Key == key {
			return r
		}
	}
	t.Fatalf("no row %s", key)
	return Row{}
}

func TestCompareChange(t *testing.T) {
	base := loadFast(t)
	c, err := Compare(withTimes(base, "a-", 4, 2, 3), withTimes(base, "b-", 6))
	if err != nil {
		t.Fatal(err)
	}
	r := row(t, c, "total_time_s")
	if r.A.Median != 3 || r.B.Median != 6 || r.Change != 3 || !r.ChangeKnown || r.ChangePct != 100 {
		t.Errorf("3 s (median of 4, 2, 3) to 6 s: %+v, want change +3 (+100%%)", r)
	}
	if c.A.Scenario != "fast-expect" || strings.Join(c.A.Runs, ",") != "a-a,a-b,a-c" || len(c.B.Runs) != 1 {
		t.Errorf("sides %+v %+v", c.A, c.B)
	}
	if r := row(t, c, "retries"); r.ChangeKnown || r.Change != 0 || r.Verdict != Same {
		t.Errorf("retries 0 to 0: %+v, want no percent (A is 0) and same", r)
	}

	lined := variant(base, "lined", func(s *report.Summary) { s.LineFloor = 2 * time.Second })
	c, err = Compare([]*report.Result{lined}, []*report.Result{base})
	if err != nil {
		t.Fatal(err)
	}
	if r := row(t, c, "line_floor_s"); r.Verdict != OnlyInA || r.B.N != 0 {
		t.Errorf("line floor on A only: %+v", r)
	}
}

func TestCompareRefuses(t *testing.T) {
	base := loadFast(t)
	other := variant(base, "odd-one", nil)
	other.Scenario.Name = "slow"
	if _, err := Compare([]*report.Result{base}, []*report.Result{base, other}); err == nil || !strings.HasPrefix(err.Error(), "B: ") || !strings.Contains(err.Error(), "odd-one") {
		t.Errorf("B mixes scenarios: error %v, want one naming B and run odd-one", err)
	}
	if _, err := Compare(nil, []*report.Result{base}); err == nil || !strings.HasPrefix(err.Error(), "A: ") {
		t.Errorf("A empty: error %v", err)
	}
	// Two different scenarios, one a side, are a fair comparison.
	if _, err := Compare([]*report.Result{base}, []*report.Result{other}); err != nil {
		t.Errorf("A and B of different scenarios: %v", err)
	}
}

func TestWriteText(t *testing.T) {
	base := loadFast(t)
	c, err := Compare(withTimes(base, "a-", 5, 6), withTimes(base, "b-", 3, 4))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteText(&b, c); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"A: scenario fast-expect, 2 runs: a-a, a-b",
		"total time", "5.50 s (5.00 s .. 6.00 s)", "3.50 s (3.00 s .. 4.00 s)", "-2.00 s (-36.4%)", "better",
		"latency p50", "9.9 ms",
		"1 in 3 times for each figure", // 2 runs a side fall apart by chance 1 in 3
		"(5 runs a side: 1 in 126)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "figures were judged") {
		t.Errorf("one figure judged, yet a note on many:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "delivered ") && !strings.HasSuffix(strings.TrimSpace(l), "same") {
			t.Errorf("delivered line %q, want verdict same", l)
		}
	}

	if strings.Contains(out, "warning:") || len(c.Differs) > 0 {
		t.Errorf("the same workload, yet a warning: %v\n%s", c.Differs, out)
	}

	b.Reset()
	c, _ = Compare(withTimes(base, "a-", 5), withTimes(base, "b-", 3))
	WriteText(&b, c)
	if !strings.Contains(b.String(), string(SingleRun)) || strings.Contains(b.String(), "by chance") {
		t.Errorf("single runs: want the single-run verdict and no chance note:\n%s", b.String())
	}
}

// The footnote says how many figures were judged and how many of them
// chance alone calls better, worse or changed: each figure's chance
// times their number.
func TestWriteTextManyFigures(t *testing.T) {
	base := loadFast(t)
	runs := func(prefix string, secs, p99ms []float64, queries []int) []*report.Result {
		var rs []*report.Result
		for i := range secs {
			rs = append(rs, variant(base, prefix+string(rune('a'+i)), func(s *report.Summary) {
				s.TotalTime = time.Duration(secs[i] * float64(time.Second))
				s.Latency.P99 = time.Duration(p99ms[i] * float64(time.Millisecond))
				s.DNSQueries = queries[i]
			}))
		}
		return rs
	}
	for _, tc := range []struct {
		name string
		a, b []*report.Result
		want []string
		not  string
	}{
		// Total time apart, p99 overlapping, DNS queries apart: three
		// judged, each falling apart 1 in 3 times by chance.
		{"2 a side",
			runs("a-", []float64{5, 6}, []float64{70, 80}, []int{80, 81}),
			runs("b-", []float64{3, 4}, []float64{75, 85}, []int{90, 91}),
			[]string{"1 in 3 times for each figure", "3 figures were judged", "about 1 of them", "(5 runs a side: 0.024)"}, ""},
		{"5 a side",
			runs("a-", []float64{5, 6, 5, 6, 5}, []float64{70, 80, 70, 80, 70}, []int{80, 81, 80, 81, 80}),
			runs("b-", []float64{3, 4, 3, 4, 3}, []float64{75, 85, 75, 85, 75}, []int{90, 91, 90, 91, 90}),
			[]string{"1 in 126 times for each figure", "3 figures were judged", "about 0.024 of them"}, "(5 runs a side"},
		{"2 and 3",
			runs("a-", []float64{5, 6}, []float64{70, 80}, []int{80, 81}),
			runs("b-", []float64{3, 4, 3}, []float64{75, 85, 75}, []int{90, 91, 90}),
			[]string{"With 2 and 3 runs", "1 in 5 times for each figure", "3 figures were judged", "about 0.6 of them"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compare(tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := WriteText(&b, c); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in\n%s", want, out)
				}
			}
			if tc.not != "" && strings.Contains(out, tc.not) {
				t.Errorf("%q in\n%s", tc.not, out)
			}
		})
	}
}

func TestWriteStats(t *testing.T) {
	base := loadFast(t)
	stats, err := Stats(withTimes(base, "r-", 4, 3, 5))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteStats(&b, stats); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 1+len(stats) {
		t.Fatalf("%d lines, want a header and %d figures:\n%s", len(lines), len(stats), b.String())
	}
	fields := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for _, want := range []string{
		"figure runs median min max spread spread %",
		"total time 3 4.00 s 3.00 s 5.00 s 2.00 s 50.0%",
		"delivered 3 200 200 200 0 0.0%",
		"sender retries 3 0 0 0 0 -",
	} {
		found := false
		for _, l := range lines {
			found = found || fields(l) == want
		}
		if !found {
			t.Errorf("no line %q in\n%s", want, b.String())
		}
	}
}

func TestChanceApart(t *testing.T) {
	for _, tc := range []struct {
		n, m int
		want float64
	}{{2, 2, 3}, {3, 3, 10}, {4, 4, 35}, {5, 5, 126}, {2, 3, 5}} {
		if got := chanceApart(tc.n, tc.m); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("chanceApart(%d, %d) = %v, want %v", tc.n, tc.m, got, tc.want)
		}
	}
}

// Two sides of different workloads or paces are compared, with a warning
// naming each field that differs.
func TestCompareWarnsOfDifferentWorkloads(t *testing.T) {
	base := loadFast(t)
	a := withTimes(base, "a-", 5)
	b := withTimes(base, "b-", 3)
	other := *b[0]
	other.Scenario.Workload.Rounds = 50
	other.Scenario.Workload.Pace.Rate = 3
	b[0] = &other
	c, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, c); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("warning: A and B ran different workloads or paces, so their figures measure different things: workload.rounds %d (A) vs 50 (B); workload.pace.rate %v (A) vs 3 (B)",
		base.Scenario.Workload.Rounds, base.Scenario.Workload.Pace.Rate)
	if !strings.Contains(buf.String(), want) {
		t.Errorf("no %q in\n%s", want, buf.String())
	}
}
