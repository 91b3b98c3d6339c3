package htmlreport

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/compare"
	"github.com/smtplab/smtplab/lab/report/history"
	"github.com/smtplab/smtplab/lab/report/htmlreport/pagetest"
)

// resultsFolder makes a results folder from the testdata's real runs:
// the two as single runs, a folder of three repeated courier-1999 runs
// whose total times differ (as repeated runs' do), and a run whose
// result.json is cut short. It returns the folder and the repeat
// folder in it.
func resultsFolder(t *testing.T) (dir, set string) {
	t.Helper()
	dir = t.TempDir()
	put := func(r *report.Result, sub string) {
		r.Dir = filepath.Join(dir, sub)
		if err := r.Write(); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(r); err != nil {
			t.Fatal(err)
		}
	}
	fast, courier := load(t, fastResult), load(t, courierResult)
	put(fast, fast.RunID)
	put(courier, courier.RunID)
	set = "courier-1999-repeat-20261206-101500"
	var runs []*report.Result
	for i, extra := range []time.Duration{0, 3 * time.Second, -2 * time.Second} {
		r := load(t, courierResult)
		r.RunID = r.RunID[:len(r.RunID)-1] + string(rune('1'+i))
		r.Started = r.Started.Add(time.Duration(i+1) * time.Minute)
		r.Summary.TotalTime += extra
		put(r, filepath.Join(set, r.RunID))
		runs = append(runs, r)
	}
	if err := WriteRepeatFile(filepath.Join(dir, set), runs); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut-20261206-120000000")
	os.MkdirAll(cut, 0o755)
	os.WriteFile(filepath.Join(cut, report.ResultFile), []byte(`{"schema": "smtplab/result/v1", "run_id": `), 0o644)
	return dir, set
}

var hrefRE = regexp.MustCompile(`href="([^"#]+)"`)

// TestIndexListsEveryRun: results/index.html names every run, in its
// own folder or in a repeat folder, links each one's page and files and
// the repeat folder's page, every link to a file that is there, and
// lists a result.json that does not load as unreadable without hiding
// the others.
func TestIndexListsEveryRun(t *testing.T) {
	dir, set := resultsFolder(t)
	if err := WriteIndexFile(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	idx, err := history.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Runs) != 3 || len(idx.Sets) != 1 || len(idx.Sets[0].Runs) != 3 {
		t.Fatalf("scan found %d runs and %d sets, want 3 runs (one unreadable) and 1 set of 3", len(idx.Runs), len(idx.Sets))
	}
	for _, r := range append(idx.Runs, idx.Sets[0].Runs...) {
		if !strings.Contains(page, `id="run-`+r.RunID+`"`) {
			t.Errorf("run %s not listed", r.RunID)
		}
	}
	for _, want := range []string{"unreadable", "cut-20261206-120000000", set + "/" + IndexFile, "expectation failed", "3 runs"} {
		if !strings.Contains(page, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	links := hrefRE.FindAllStringSubmatch(page, -1)
	if len(links) < 5*3+1 { // each readable run: page, result, events; the set's page
		t.Errorf("%d links, want at least 16", len(links))
	}
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(l[1]))); err != nil {
			t.Errorf("link %s: %v", l[1], err)
		}
	}
}

// TestSetPagesSay1999OnlyFor1999: the repeat page of the 1999 workload
// has a 1999 column and line; of another workload, neither, and says
// why.
func TestSetPagesSay1999OnlyFor1999(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rounds int
		want   []string
		not    []string
	}{
		{"1999", 0, []string{"<th class=\"num\">1999</th>", "1999: 65 s"}, []string{"No 1999 column"}},
		{"bigger", 50, []string{"No 1999 column or line: this workload is not 1999&#39;s: workload.rounds 50 (1999: 10)", "No 1999 line"}, []string{"<th class=\"num\">1999</th>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var runs []*report.Result
			for range 2 {
				r := load(t, courierResult)
				if tc.rounds > 0 {
					r.Scenario.Workload.Rounds = tc.rounds
				}
				runs = append(runs, r)
			}
			var b strings.Builder
			if err := WriteRepeat(&b, runs); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}

// TestSetPagesInChromium: the results' index, a repeat folder's page and
// a comparison's page render in headless Chromium with ink in every
// chart, and every link of the index opens a file that is there.
func TestSetPagesInChromium(t *testing.T) {
	ctx := pagetest.Browser(t)
	dir, set := resultsFolder(t)
	if err := WriteIndexFile(dir); err != nil {
		t.Fatal(err)
	}
	tab := pagetest.Check(t, ctx, filepath.Join(dir, IndexFile), "index", 0)
	for _, l := range pagetest.Links(t, tab) {
		path, ok := strings.CutPrefix(l, "file://")
		if !ok {
			t.Errorf("link %s is not to a file", l)
			continue
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("link %s: %v", l, err)
		}
	}
	pagetest.Check(t, ctx, filepath.Join(dir, set, IndexFile), "repeat", 2)

	a, err := compare.LoadSet(filepath.Join(dir, set))
	if err != nil {
		t.Fatal(err)
	}
	b, err := compare.LoadSet(filepath.Join(dir, load(t, fastResult).RunID))
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := compare.Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "compare.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCompare(f, cmp, a, b, [2]string{"A", "B"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pagetest.Check(t, ctx, path, "compare", 2)
}

// TestDeliveriesChartMarks1999: the run page's deliveries chart marks
// where 1999's run ended for the 1999 workload, and says why not for
// another.
func TestDeliveriesChartMarks1999(t *testing.T) {
	r := load(t, courierResult)
	if page := writePage(t, r); !strings.Contains(page, "where 1999&#39;s run of the same workload ended: 196 of 200 delivered at 65.00 s") {
		t.Error("1999 workload: the deliveries chart has no 1999 mark")
	}
	r.Scenario.Workload.Rounds = 50
	if page := writePage(t, r); !strings.Contains(page, "No 1999 mark: this workload is not 1999&#39;s: workload.rounds 50 (1999: 10)") || strings.Contains(page, "1999&#39;s run of the same workload") {
		t.Error("another workload: the deliveries chart marks 1999, or does not say why not")
	}
}
