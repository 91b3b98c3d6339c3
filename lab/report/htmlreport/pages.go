// The pages about more than one run: results/index.html, listing every
// run in a results folder (history.Scan); the page of a --repeat folder,
// with each figure's runs, median and spread; and the page of a
// comparison of two sets (lab compare --format html). They share the run
// page's style and, like it, open offline with no script.

package htmlreport

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot/vg/draw"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/compare"
	"github.com/smtplab/smtplab/lab/report/history"
)

var (
	//go:embed style.tmpl
	styleText string
	//go:embed index.html.tmpl
	indexText string
	//go:embed sets.html.tmpl
	setsText string

	indexTmpl = template.Must(template.Must(template.New("index").Parse(styleText)).Parse(indexText))
	setsTmpl  = template.Must(template.Must(template.New("sets").Parse(styleText)).Parse(setsText))
)

// IndexFile is the page of a results folder, and of a folder of
// repeated runs.
const IndexFile = "index.html"

type indexPage struct {
	Dir, Count string
	Runs       []indexRun
	Sets       []indexSet
}

type indexRun struct {
	RunID, Report, Scenario, Started, Status, Class, Why string
	Delivered, TotalTime, Connections, DNSQueries, Then  string
	Files                                                []link
}

type link struct{ Name, Href string }

type indexSet struct {
	Name, Page, Scenario, Medians string
	Runs                          []indexRun
}

// WriteIndex writes the list of the runs in a results folder.
func WriteIndex(w io.Writer, dir string, idx history.Index) error {
	pg := indexPage{Dir: dir}
	n := len(idx.Runs)
	for _, s := range idx.Sets {
		n += len(s.Runs)
	}
	pg.Count = fmt.Sprintf("%s, %s", plural(n, "run", "runs"), plural(len(idx.Sets), "set of repeated runs", "sets of repeated runs"))
	for _, r := range idx.Runs {
		pg.Runs = append(pg.Runs, indexRunOf(r))
	}
	for _, s := range idx.Sets {
		set := indexSet{Name: s.Dir, Page: s.Dir + "/" + IndexFile, Scenario: s.Scenario}
		var secs []float64
		for _, r := range s.Runs {
			set.Runs = append(set.Runs, indexRunOf(r))
			if r.Status != history.Incomplete && r.Status != history.Unreadable {
				secs = append(secs, r.Summary.TotalTime.Seconds())
			}
		}
		if len(secs) > 0 {
			set.Medians = fmt.Sprintf("total time %s over %s", compare.Format(compare.Median(secs), "s"), plural(len(secs), "complete run", "complete runs"))
		}
		pg.Sets = append(pg.Sets, set)
	}
	if err := indexTmpl.Execute(w, pg); err != nil {
		return fmt.Errorf("index page: %w", err)
	}
	return nil
}

func indexRunOf(r history.Run) indexRun {
	ir := indexRun{RunID: r.RunID, Scenario: r.Scenario, Status: string(r.Status), Why: r.Why, Class: statusClass(r.Status),
		Delivered: "-", TotalTime: "-", Connections: "-", DNSQueries: "-", Then: "-"}
	if !r.Started.IsZero() {
		ir.Started = r.Started.UTC().Format("2006-01-02 15:04:05")
	}
	for _, f := range r.Files {
		l := link{Name: f, Href: r.Dir + "/" + f}
		if f == report.HTMLFile {
			ir.Report = l.Href
			continue
		}
		ir.Files = append(ir.Files, l)
	}
	if r.Status == history.Incomplete || r.Status == history.Unreadable {
		return ir
	}
	s := r.Summary
	ir.Delivered = fmt.Sprintf("%d / %d", s.Delivered, s.Injected)
	ir.TotalTime = secs(s.TotalTime)
	ir.Connections = fmt.Sprint(s.Connections)
	ir.DNSQueries = fmt.Sprint(s.DNSQueries)
	if r.Not1999 == "" {
		ir.Then = secs(report.Seed1999.TotalTime)
	}
	return ir
}

func statusClass(s history.Status) string {
	switch s {
	case history.Passed:
		return "ok"
	case history.ExpectFailed, history.PaceNotHeld:
		return "warn"
	}
	return "bad"
}

// WriteIndexFile writes dir/index.html from the runs dir holds now.
func WriteIndexFile(dir string) error {
	idx, err := history.Scan(dir)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, IndexFile), func(w io.Writer) error { return WriteIndex(w, dir, idx) })
}

// setsPage is the page of one set of runs, or of two compared.
type setsPage struct {
	Title, Sub, Index, Warning, TableTitle string
	Notes                                  []string
	Head                                   []cell
	Rows                                   [][]cell
	Charts                                 []*chart
	Runs                                   []setRun
}

type cell struct {
	Text string
	Num  bool
}

type setRun struct {
	Side, RunID, Href, Status, Class, Why, Delivered, TotalTime string
}

// WriteRepeat writes the page of a set of repeated runs of one scenario:
// every figure run by run with its median and spread, and the charts.
// Runs that did not hold their pace are listed but left out of the
// medians, as lab run --repeat leaves them out. Links go from the set's
// folder (where lab run --repeat makes index.html) to each run's page.
func WriteRepeat(w io.Writer, runs []*report.Result) error {
	held, notHeld := compare.PaceHeld(runs)
	if len(held) == 0 {
		return fmt.Errorf("repeat page: no run held its pace (%s): no medians", strings.Join(notHeld, ", "))
	}
	stats, err := compare.Stats(held)
	if err != nil {
		return fmt.Errorf("repeat page: %w", err)
	}
	name := held[0].Scenario.Name
	pg := setsPage{
		Title:      fmt.Sprintf("%s: %s", name, plural(len(runs), "run", "runs")),
		Sub:        fmt.Sprintf("The scenario %s run %s; every figure's median, range and spread over the runs that held its pace.", name, plural(len(runs), "time", "times")),
		Index:      "../" + IndexFile,
		TableTitle: "Every figure, run by run",
	}
	if len(notHeld) > 0 {
		pg.Notes = append(pg.Notes, "Left out of the medians, they did not hold the scenario's pace: "+strings.Join(notHeld, ", ")+".")
	}
	no1999 := held[0].Scenario.Workload.Not1999()
	if no1999 != "" {
		pg.Notes = append(pg.Notes, "No 1999 column or line: "+no1999+".")
	}
	pg.Head = []cell{{Text: "figure"}}
	for i := range held {
		pg.Head = append(pg.Head, cell{Text: fmt.Sprintf("run %d", i+1), Num: true})
	}
	pg.Head = append(pg.Head, cell{"median", true}, cell{"min .. max", true}, cell{"spread", true})
	if no1999 == "" {
		pg.Head = append(pg.Head, cell{"1999", true})
	}
	for _, s := range stats {
		row := []cell{{Text: s.Label}}
		for _, r := range held {
			row = append(row, cell{figureOf(r, s.Key, s.Unit), true})
		}
		spread := compare.Format(s.Spread, s.Unit)
		if s.Median != 0 {
			spread += fmt.Sprintf(" (%.1f%%)", 100*s.RelSpread)
		}
		row = append(row, cell{compare.Format(s.Median, s.Unit), true},
			cell{compare.Format(s.Min, s.Unit) + " .. " + compare.Format(s.Max, s.Unit), true}, cell{spread, true})
		if no1999 == "" {
			row = append(row, cell{then1999(s.Key, s.Unit), true})
		}
		pg.Rows = append(pg.Rows, row)
	}
	sides := []side{{runs: held, col: colSideA, glyph: draw.CircleGlyph{}}}
	if err := pg.addCharts(sides); err != nil {
		return err
	}
	for _, r := range runs {
		pg.Runs = append(pg.Runs, setRunOf("", r, filepath.Base(r.Dir)+"/"+report.HTMLFile))
	}
	return setsTmpl.Execute(w, pg)
}

// WriteRepeatFile writes dir/index.html for the set of runs in dir.
func WriteRepeatFile(dir string, runs []*report.Result) error {
	return writeAtomic(filepath.Join(dir, IndexFile), func(w io.Writer) error { return WriteRepeat(w, runs) })
}

// WriteCompare writes a comparison of set B against set A as a page:
// the table lab compare prints, the warning when the workloads or paces
// differ, and the charts. names are what A and B were given as.
func WriteCompare(w io.Writer, c compare.Comparison, a, b []*report.Result, names [2]string) error {
	a, _ = compare.PaceHeld(a)
	b, _ = compare.PaceHeld(b)
	pg := setsPage{
		Title:      fmt.Sprintf("smtplab: %s against %s", c.B.Scenario, c.A.Scenario),
		Sub:        fmt.Sprintf("A: %s (scenario %s, %s). B: %s (scenario %s, %s).", names[0], c.A.Scenario, plural(len(c.A.Runs), "run", "runs"), names[1], c.B.Scenario, plural(len(c.B.Runs), "run", "runs")),
		TableTitle: "Figure by figure",
	}
	if len(c.Differs) > 0 {
		var ds []string
		for _, d := range c.Differs {
			ds = append(ds, fmt.Sprintf("%s %s (A) vs %s (B)", d.Field, d.A, d.B))
		}
		pg.Warning = "A and B ran different workloads or paces, so their figures measure different things: " + strings.Join(ds, "; ")
	}
	for _, sd := range []struct {
		name string
		s    compare.Side
	}{{"A", c.A}, {"B", c.B}} {
		if len(sd.s.NotHeld) > 0 {
			pg.Notes = append(pg.Notes, sd.name+": left out, did not hold the scenario's pace: "+strings.Join(sd.s.NotHeld, ", ")+".")
		}
		if sd.s.MachineDependent {
			pg.Notes = append(pg.Notes, sd.name+": paced by the machine (pace mode loop): its figures depend on the machine and its load.")
		}
	}
	if len(c.A.Runs) < 2 || len(c.B.Runs) < 2 {
		pg.Notes = append(pg.Notes, fmt.Sprintf("%s: with one run on a side the change is shown, not judged; repeat each side (lab run --repeat N) to know the noise.", compare.SingleRun))
	}
	with1999 := a[0].Scenario.Workload.Not1999() == "" && b[0].Scenario.Workload.Not1999() == ""
	pg.Head = []cell{{Text: "figure"}, {"A", true}, {"B", true}, {"change", true}, {Text: "verdict"}}
	if with1999 {
		pg.Head = append(pg.Head, cell{"1999", true})
	}
	for _, r := range c.Rows {
		row := []cell{{Text: r.Label}, {r.A.String(), true}, {r.B.String(), true}, {r.ChangeText(), true}, {Text: string(r.Verdict)}}
		if with1999 {
			row = append(row, cell{then1999(r.Key, r.Unit), true})
		}
		pg.Rows = append(pg.Rows, row)
	}
	sides := []side{
		{label: "A", runs: a, col: colSideA, glyph: draw.CircleGlyph{}},
		{label: "B", runs: b, col: colSideB, glyph: draw.TriangleGlyph{}},
	}
	if err := pg.addCharts(sides); err != nil {
		return err
	}
	for i, runs := range [][]*report.Result{a, b} {
		for _, r := range runs {
			pg.Runs = append(pg.Runs, setRunOf("AB"[i:i+1], r, ""))
		}
	}
	return setsTmpl.Execute(w, pg)
}

func (pg *setsPage) addCharts(sides []side) error {
	title := "Every figure, run by run"
	if len(sides) > 1 {
		title = "Every figure, B's runs beside A's"
	}
	spread, err := spreadChart("chart-spread", title, sides)
	if err != nil {
		return fmt.Errorf("spread chart: %w", err)
	}
	total, err := totalTimeChart("chart-total-time", sides)
	if err != nil {
		return fmt.Errorf("total time chart: %w", err)
	}
	pg.Charts = []*chart{spread, total}
	return nil
}

func setRunOf(sideName string, r *report.Result, href string) setRun {
	sr := setRun{Side: sideName, RunID: r.RunID, Href: href, Status: "passed", Class: "ok",
		Delivered: fmt.Sprintf("%d / %d", r.Summary.Delivered, r.Summary.Injected), TotalTime: secs(r.Summary.TotalTime)}
	if href != "" && r.Dir != "" {
		if _, err := os.Stat(filepath.Join(r.Dir, report.HTMLFile)); err != nil {
			sr.Href = ""
		}
	}
	status, why := history.Judge(r)
	sr.Status, sr.Why = string(status), why
	switch status {
	case history.Passed:
	case history.NotDelivered, history.Incomplete:
		sr.Class = "bad"
	default:
		sr.Class = "warn"
	}
	return sr
}

// figureOf is the run's value of the figure key, or "-".
func figureOf(r *report.Result, key, unit string) string {
	for _, f := range compare.Figures(r) {
		if f.Key == key {
			return compare.Format(f.Value, unit)
		}
	}
	return "-"
}

// then1999 is 1999's value of the figure, or "not reported".
func then1999(key, unit string) string {
	if v, ok := compare.Figure1999(key); ok {
		return compare.Format(v, unit)
	}
	return "not reported"
}

// writeAtomic writes path through a temporary file renamed over it, so a
// reader never sees half a page.
func writeAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
