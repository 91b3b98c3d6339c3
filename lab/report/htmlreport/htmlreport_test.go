package htmlreport

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/report"
)

// load reads a real run's result from ../testdata.
func load(t testing.TB, name string) *report.Result {
	t.Helper()
	r, err := report.Load(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const (
	fastResult    = "fast-result.json"         // no DNS line, an expectation failed
	courierResult = "courier-1999-result.json" // dial-up DNS line, one stalled query
)

func writePage(t testing.TB, r *report.Result) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var figureID = regexp.MustCompile(`<figure id="([^"]+)"`)

// chartIDs lists the page's charts in order, each checked to hold one
// inline SVG.
func chartIDs(t *testing.T, page string) []string {
	t.Helper()
	var ids []string
	for _, m := range figureID.FindAllStringSubmatch(page, -1) {
		ids = append(ids, m[1])
	}
	if n := strings.Count(page, "<svg"); n != len(ids) {
		t.Errorf("%d <svg> elements for %d chart figures %v", n, len(ids), ids)
	}
	return ids
}

var allCharts = []string{"chart-phases", "chart-deliveries", "chart-connections", "chart-dns",
	"chart-latency-histogram", "chart-latency-cdf"}

func TestChartsDrawnFromWhatTheResultHolds(t *testing.T) {
	without := func(ids ...string) []string {
		var out []string
		for _, id := range allCharts {
			if !strings.Contains(strings.Join(ids, " "), id) {
				out = append(out, id)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		file   string
		change func(*report.Result)
		want   []string
	}{
		{"fast run, no DNS line", fastResult, nil, allCharts},
		{"courier-1999, DNS line and a stall", courierResult, nil, allCharts},
		{"no DNS queries", fastResult, func(r *report.Result) { r.Queries, r.Faults = nil, nil }, without("chart-dns")},
		{"nothing delivered", fastResult, func(r *report.Result) {
			for i := range r.Messages {
				r.Messages[i].Delivered, r.Messages[i].Latency = time.Time{}, 0
			}
		}, without("chart-latency-histogram", "chart-latency-cdf")},
		{"no phases", courierResult, func(r *report.Result) { r.Summary.Phases = nil }, without("chart-phases")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := load(t, tc.file)
			if tc.change != nil {
				tc.change(r)
			}
			got := chartIDs(t, writePage(t, r))
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("charts %v, want %v", got, tc.want)
			}
		})
	}
}

// svgNamespaces are the only URLs a page may hold: names, never fetched.
var svgNamespaces = regexp.MustCompile(`xmlns(:xlink)?="http://www\.w3\.org/(2000/svg|1999/xlink)"`)

func TestPageReferencesNothingOutside(t *testing.T) {
	for _, file := range []string{fastResult, courierResult} {
		t.Run(file, func(t *testing.T) {
			page := writePage(t, load(t, file))
			if n := len(svgNamespaces.FindAllString(page, -1)); n == 0 {
				t.Fatal("no SVG namespace attribute: the check below would prove nothing")
			}
			rest := strings.ToLower(svgNamespaces.ReplaceAllString(page, ""))
			for _, bad := range []string{"http://", "https://", "<script", "<link", "<iframe", "@import", "url(", " src=", "@font-face"} {
				if i := strings.Index(rest, bad); i >= 0 {
					t.Errorf("page holds %q: ...%s...", bad, rest[max(0, i-60):min(len(rest), i+60)])
				}
			}
		})
	}
}

func TestResultStringsAreEscaped(t *testing.T) {
	const evil = `<script>alert("x")</script>`
	r := load(t, courierResult)
	r.Scenario.Name = evil
	r.Scenario.Description = "desc " + evil
	r.Error = "error " + evil
	r.Environment.Image = `<img src=x onerror=alert(1)>`
	r.Messages[len(r.Messages)-1].MessageID = "<" + evil + "@x>"
	r.Expectations = []report.Verdict{{Name: evil, Want: evil, Got: evil}}
	r.Outcome.Lost = []string{evil}
	page := writePage(t, r)
	low := strings.ToLower(page)
	for _, bad := range []string{"<script", "<img"} {
		if strings.Contains(low, bad) {
			t.Errorf("page holds %q unescaped", bad)
		}
	}
	// The name is the page's heading; the description, error, outcome
	// and expectation are shown as text.
	if n := strings.Count(page, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`); n < 5 {
		t.Errorf("the escaped string appears %d times, want at least 5 (name, description, error, expectation, outcome)", n)
	}
	if !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Error("the environment's image is not shown escaped")
	}
}

func TestIncompleteResult(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*report.Result)
	}{
		// As the lab writes it: records empty, summary zero.
		{"records empty", func(r *report.Result) {
			r.Summary, r.Outcome, r.Records, r.Expectations = report.Summary{}, report.Outcome{}, report.Records{}, nil
		}},
		// Records present all the same: Complete false still means
		// they say nothing, so no chart.
		{"records present", func(*report.Result) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := load(t, fastResult)
			r.Complete = false
			r.Error = "start receiver: container exited (code 1) <see log>"
			tc.change(r)
			page := writePage(t, r)
			if n := strings.Count(page, "<svg"); n != 0 {
				t.Errorf("%d charts in an incomplete result's page", n)
			}
			for _, want := range []string{
				"This run is incomplete",
				"start receiver: container exited (code 1) &lt;see log&gt;",
				r.RunID,
				`id="scenario"`,
				`id="environment"`,
			} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			for _, absent := range []string{`id="summary"`, `id="charts"`, `id="slowest"`} {
				if strings.Contains(page, absent) {
					t.Errorf("incomplete page has section %s", absent)
				}
			}
		})
	}
}

func TestSlowestMessagesTellTheirStory(t *testing.T) {
	r := load(t, courierResult)
	pg, err := build(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Slowest) != slowest {
		t.Fatalf("%d slowest messages, want %d", len(pg.Slowest), slowest)
	}
	lat := map[string]time.Duration{}
	for _, m := range r.Messages {
		lat[m.MessageID] = m.Latency
	}
	for i := 1; i < len(pg.Slowest); i++ {
		if a, b := lat[pg.Slowest[i-1].MessageID], lat[pg.Slowest[i].MessageID]; a < b {
			t.Errorf("slowest #%d (%v) is faster than #%d (%v)", i, a, i+1, b)
		}
	}
	first := pg.Slowest[0]
	if first.Conn == nil || len(first.Conn.Checks) == 0 {
		t.Fatalf("the slowest message has no receiver connection story: %+v", first)
	}
	// In this run the slowest message came over the connection whose
	// DNSBL check waited on the stalled query.
	faulted := 0
	for _, c := range first.Conn.Checks {
		if c.Faulted {
			faulted++
		}
	}
	if !first.HeldByFault || faulted != 1 {
		t.Errorf("slowest message: held by fault %v, %d faulted checks; want true, 1", first.HeldByFault, faulted)
	}
	// Its latency splits at the accept and the greeting, and the parts
	// add up to it.
	var sum time.Duration
	for _, s := range first.Went {
		sum += s.d
	}
	if want := lat[first.MessageID]; len(first.Went) < 2 || sum != want {
		t.Errorf("%d segments add up to %v, latency %v", len(first.Went), sum, want)
	}
	page := writePage(t, r)
	if !strings.Contains(page, first.MessageID[1:len(first.MessageID)-1]) || !strings.Contains(page, `badge bad">faulted`) {
		t.Error("the page does not show the slowest message and its faulted check")
	}
}

func TestWriteFile(t *testing.T) {
	r := load(t, fastResult)
	r.Dir = t.TempDir()
	if err := WriteFile(r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r.Dir, report.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("<!DOCTYPE html>")) || !bytes.HasSuffix(bytes.TrimSpace(b), []byte("</html>")) {
		t.Errorf("%s is not a whole HTML page (%d bytes)", report.HTMLFile, len(b))
	}
	entries, err := os.ReadDir(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("folder holds %d files, want only %s", len(entries), report.HTMLFile)
	}

	r.Dir = ""
	if err := WriteFile(r); err == nil {
		t.Error("WriteFile without a folder: no error")
	}
}

func TestSteps(t *testing.T) {
	var ch []step
	ch = interval(ch, 1, 3)
	ch = interval(ch, 2, 3) // ends with the first: one point at 3
	ch = append(ch, step{2.5, +1})
	got := steps(ch, 5)
	want := []struct{ x, y float64 }{{0, 0}, {1, 1}, {2, 2}, {2.5, 3}, {3, 1}, {5, 1}}
	if len(got) != len(want) {
		t.Fatalf("steps = %v, want %v", got, want)
	}
	for i, w := range want {
		if got[i].X != w.x || got[i].Y != w.y {
			t.Errorf("point %d = (%g, %g), want (%g, %g)", i, got[i].X, got[i].Y, w.x, w.y)
		}
	}
}

func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   string
	}{
		{0, 250, "0 50 100 150 200 250"},
		{0, 1, "0.0 0.2 0.4 0.6 0.8 1.0"},
		{-1e-12, 13.7, "0 5 10"},
		{0, 0.012, "0.000 0.005 0.010"},
	} {
		var labels []string
		for _, tk := range ticks.Ticks(tc.lo, tc.hi) {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		if got := strings.Join(labels, " "); got != tc.want {
			t.Errorf("ticks(%g, %g) = %q, want %q", tc.lo, tc.hi, got, tc.want)
		}
	}
}

// BenchmarkWrite renders the courier-1999 result, the larger of the two.
func BenchmarkWrite(b *testing.B) {
	r := load(b, courierResult)
	var size int
	for b.Loop() {
		var buf bytes.Buffer
		if err := Write(&buf, r); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size), "page-bytes")
}

// The page says whether the workload's pace was held, in its banner and
// its summary table: not held turns the banner to a warning; a loop pace
// is labelled machine-dependent; a held pace adds nothing to the banner.
func TestPaceInBanner(t *testing.T) {
	held, notHeld := true, false
	for _, tc := range []struct {
		name   string
		kept   pace.Kept
		status string
		says   string
	}{
		{"held", pace.Kept{Mode: pace.Rate, IntendedRate: 10, AchievedRate: 10, MaxLag: 500 * time.Millisecond, Held: &held}, "", "pace held"},
		{"not held", pace.Kept{Mode: pace.Rate, IntendedRate: 2000, AchievedRate: 180, LagMax: 2 * time.Second, MaxLag: time.Millisecond, Held: &notHeld}, `class="banner warn"`, "pace not held: an injection started 2s late"},
		{"loop", pace.Kept{Mode: pace.Loop, MachineDependent: true, AchievedRate: 4}, "", "the pace was this machine&#39;s speed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := load(t, fastResult)
			r.Summary.Pace = &tc.kept
			page := writePage(t, r)
			status := tc.status
			if status == "" { // as the same run without a pace
				status = regexp.MustCompile(`class="banner \w+"`).FindString(writePage(t, load(t, fastResult)))
			}
			if !strings.Contains(page, status) {
				t.Errorf("banner is not %s", status)
			}
			if !strings.Contains(strings.ToLower(page), strings.ToLower(tc.says)) {
				t.Errorf("page does not say %q", tc.says)
			}
			if tc.name == "held" && strings.Contains(page, "not comparable") {
				t.Error("a held pace is called not comparable")
			}
		})
	}
}

// The slowest messages' stories show each stalled check's tries: the
// kept courier-1999 run's stalled question was asked three times.
func TestStoryShowsTries(t *testing.T) {
	page := writePage(t, load(t, courierResult))
	if !strings.Contains(page, "<small>3 tries: ") || !strings.Contains(page, " stall; last ") {
		t.Error("the page shows no stalled check's tries")
	}
}

// The 1999 figures stand on the page only beside 1999's workload; for
// another the page says why they are absent.
func TestNo1999ColumnForAnotherWorkload(t *testing.T) {
	r := load(t, fastResult)
	page := writePage(t, r)
	if !strings.Contains(page, "Summary beside 1999") || !strings.Contains(page, "1999: 196 / 200") {
		t.Errorf("1999's workload without the 1999 figures")
	}
	r.Scenario.Workload.Rounds = 50
	page = writePage(t, r)
	if strings.Contains(page, "Summary beside 1999") || strings.Contains(page, "1999: 196 / 200") || strings.Contains(page, `class="then"`) {
		t.Errorf("another workload beside 1999's figures")
	}
	if !strings.Contains(page, "No 1999 column: this workload is not 1999&#39;s: workload.rounds 50 (1999: 10).") {
		t.Errorf("no reason for the missing 1999 figures")
	}
}
