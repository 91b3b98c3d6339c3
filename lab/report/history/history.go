// Package history finds the runs in a results folder: each run's folder
// (<results>/<run>/result.json) and each folder of repeated runs
// (<results>/<scenario>-repeat-<time>/<run>/result.json), with what a
// list of runs shows of each: scenario, start, outcome and headline
// figures. htmlreport draws it as results/index.html.
package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
)

// Status is how a run ended, as the lab's exit code tells it (lab/cli):
// the worst that applies.
type Status string

const (
	Passed       Status = "passed"                     // exit 0
	ExpectFailed Status = "expectation failed"         // exit 3
	PaceNotHeld  Status = "pace not held"              // exit 4
	NotDelivered Status = "not delivered exactly once" // exit 1
	Incomplete   Status = "incomplete"                 // exit 1: the run ended before its figures
	Unreadable   Status = "unreadable"                 // its result.json does not load
)

// Run is one run as a list of runs shows it.
type Run struct {
	// Dir is the run's folder relative to the results folder, with
	// forward slashes (a link from results/index.html).
	Dir      string
	RunID    string
	Scenario string
	Started  time.Time
	Status   Status
	// Why says more than Status where there is more: the error of an
	// incomplete run, the failed expectations, what was lost.
	Why     string
	Summary report.Summary
	// Not1999 is why the 1999 figures do not stand beside this run's
	// ("" when they do: scenario.Workload.Not1999).
	Not1999 string
	// Files are the run's files that are there, by name (result.json,
	// report.html, events.jsonl).
	Files []string
}

// OK reports whether the run passed.
func (r Run) OK() bool { return r.Status == Passed }

// Set is a folder of repeated runs (lab run --repeat N).
type Set struct {
	Dir      string // relative to the results folder
	Scenario string
	Runs     []Run // in name order, the order they ran
}

// Index is what a results folder holds: its runs and its sets of
// repeated runs, newest first.
type Index struct {
	Runs []Run
	Sets []Set
}

// Scan lists the runs in dir. A folder that holds neither a result.json
// nor run folders is passed over; a result.json that does not load is
// listed as Unreadable with its error, so one bad file hides nothing
// else.
func Scan(dir string) (Index, error) {
	var idx Index
	entries, err := os.ReadDir(dir)
	if err != nil {
		return idx, fmt.Errorf("results %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		if exists(filepath.Join(sub, report.ResultFile)) {
			idx.Runs = append(idx.Runs, load(dir, sub))
			continue
		}
		set := Set{Dir: e.Name()}
		inner, err := os.ReadDir(sub)
		if err != nil {
			continue
		}
		for _, in := range inner {
			if run := filepath.Join(sub, in.Name()); in.IsDir() && exists(filepath.Join(run, report.ResultFile)) {
				set.Runs = append(set.Runs, load(dir, run))
			}
		}
		if len(set.Runs) == 0 {
			continue
		}
		for _, r := range set.Runs {
			if r.Scenario != "" {
				set.Scenario = r.Scenario
				break
			}
		}
		idx.Sets = append(idx.Sets, set)
	}
	newest := func(a, b time.Time) int { return b.Compare(a) }
	slices.SortStableFunc(idx.Runs, func(a, b Run) int { return newest(a.Started, b.Started) })
	slices.SortStableFunc(idx.Sets, func(a, b Set) int { return newest(a.Runs[0].Started, b.Runs[0].Started) })
	return idx, nil
}

// head is the part of result.json a list of runs reads; encoding/json
// passes over the records without keeping them.
type head struct {
	RunID    string `json:"run_id"`
	Scenario struct {
		Name     string            `json:"name"`
		Workload scenario.Workload `json:"workload"`
	} `json:"scenario"`
	Started      time.Time        `json:"started"`
	Complete     bool             `json:"complete"`
	Summary      report.Summary   `json:"summary"`
	Outcome      report.Outcome   `json:"outcome"`
	Expectations []report.Verdict `json:"expectations"`
	Error        string           `json:"error"`
}

// load reads one run's folder; what it cannot read makes an Unreadable
// run that names the file.
func load(results, dir string) Run {
	rel, err := filepath.Rel(results, dir)
	if err != nil {
		rel = dir
	}
	run := Run{Dir: filepath.ToSlash(rel), RunID: filepath.Base(dir)}
	for _, f := range []string{report.ResultFile, report.HTMLFile, report.EventsFile} {
		if exists(filepath.Join(dir, f)) {
			run.Files = append(run.Files, f)
		}
	}
	file := filepath.Join(dir, report.ResultFile)
	b, err := os.ReadFile(file)
	if err == nil && len(b) == 0 {
		err = errors.New("empty")
	}
	var h head
	if err == nil {
		err = json.Unmarshal(b, &h)
	}
	if err != nil {
		run.Status, run.Why = Unreadable, fmt.Sprintf("%s: %v", file, err)
		return run
	}
	if h.RunID != "" {
		run.RunID = h.RunID
	}
	run.Scenario, run.Started, run.Summary = h.Scenario.Name, h.Started, h.Summary
	run.Not1999 = h.Scenario.Workload.Not1999()
	run.Status, run.Why = judge(h)
	return run
}

// Judge says how the run r ended, as the results' index says it (and
// the lab's exit code): its status, and why when it did not pass.
func Judge(r *report.Result) (Status, string) {
	return judge(head{Complete: r.Complete, Summary: r.Summary, Outcome: r.Outcome, Expectations: r.Expectations, Error: r.Error})
}

// judge says how a run ended, in the order of the lab's exit codes: not
// delivered exactly once, then the pace not held, then an expectation.
func judge(h head) (Status, string) {
	if !h.Complete {
		return Incomplete, h.Error
	}
	if !h.Outcome.OK() {
		var parts []string
		for _, l := range []struct {
			name string
			ids  []string
		}{{"lost", h.Outcome.Lost}, {"duplicated", h.Outcome.Duplicated}, {"unexpected", h.Outcome.Unexpected},
			{"failed", h.Outcome.Failed}, {"not queued", h.Outcome.NotQueued}} {
			if len(l.ids) > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", len(l.ids), l.name))
			}
		}
		return NotDelivered, strings.Join(parts, ", ")
	}
	if p := h.Summary.Pace; p != nil {
		if msg := p.NotHeld(); msg != "" {
			return PaceNotHeld, msg
		}
	}
	if f := report.Failed(h.Expectations); len(f) > 0 {
		var names []string
		for _, v := range f {
			names = append(names, v.Name)
		}
		return ExpectFailed, fmt.Sprintf("%d of %d failed: %s", len(f), len(h.Expectations), strings.Join(names, ", "))
	}
	return Passed, ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
