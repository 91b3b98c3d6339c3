package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/htmlreport/pagetest"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// The CI gate end to end, on real runs: two runs, then `lab run --repeat
// 3`, of a scenario whose expectation cannot hold, each exit 3 with one
// line per failed expectation, the repeat with the median and spread of
// every figure; each run wrote its JSON (valid against the schema), JSONL
// and HTML; results/index.html lists all five runs with working links;
// `lab compare` of the repeat folder against one of the single runs works
// as text and as a page; the repeat folder's page and the comparison's
// render in headless Chromium with ink in every chart; a foreign file
// given to compare exits 2 naming it. The workload is a burst (queued
// whole before delivery starts), a pace every machine holds, so the exit
// code is the expectation's.
func TestGateRepeatCompare(t *testing.T) {
	stacktest.Engine(t)
	bin := buildLab(t)
	dir := t.TempDir()
	sc := filepath.Join(dir, "gate.yaml")
	os.WriteFile(sc, []byte("name: gate\ntimeout: 2m\ndns:\n  query_delay: 0s\nworkload:\n  rounds: 5\n  pace: {mode: burst}\n"+
		"expect:\n  delivered: 100\n  none_lost: true\n  max_connections: 1\n"), 0o644)
	results := filepath.Join(dir, "results")
	for range 2 {
		runExpecting(t, 3, bin, "run", sc, "--results", results)
	}
	singles, _ := filepath.Glob(filepath.Join(results, "gate-2*"))
	if len(singles) != 2 {
		t.Fatalf("single runs %v, want 2", singles)
	}
	stdout, stderr := runExpecting(t, 3, bin, "run", sc, "--repeat", "3", "--results", results)
	if n := strings.Count(stderr.String(), "expect FAILED max_connections <= 1"); n != 3 {
		t.Errorf("%d lines for the failed expectation on stderr, want one per run:\n%s", n, stderr.String())
	}
	for _, want := range []string{"gate, 3 runs: median and spread", "total time", "receiver connections"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	repeats, _ := filepath.Glob(filepath.Join(results, "gate-repeat-*"))
	if len(repeats) != 1 {
		t.Fatalf("repeat folders %v, want one", repeats)
	}
	runs, _ := filepath.Glob(filepath.Join(repeats[0], "gate-*", report.ResultFile))
	if len(runs) != 3 {
		t.Fatalf("runs %v, want 3", runs)
	}
	for _, f := range runs {
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := report.Validate(doc); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		for _, other := range []string{report.EventsFile, report.HTMLFile} {
			if st, err := os.Stat(filepath.Join(filepath.Dir(f), other)); err != nil || st.Size() == 0 {
				t.Errorf("%s beside %s: %v", other, f, err)
			}
		}
	}

	checkIndex(t, results, append(singles, filepath.Dir(runs[0]), filepath.Dir(runs[1]), filepath.Dir(runs[2])))

	out, err := exec.Command(bin, "compare", repeats[0], singles[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("lab compare: %v\n%s", err, out)
	}
	for _, want := range []string{"A: scenario gate, 3 runs", "B: scenario gate, 1 run", "delivered", "verdict"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lab compare output lacks %q:\n%s", want, out)
		}
	}
	page, err := exec.Command(bin, "compare", "--format", "html", repeats[0], singles[0]).Output()
	if err != nil {
		t.Fatalf("lab compare --format html: %v", err)
	}
	comparePage := filepath.Join(dir, "compare.html")
	os.WriteFile(comparePage, page, 0o644)
	browser := pagetest.Browser(t)
	pagetest.Check(t, browser, filepath.Join(repeats[0], "index.html"), "repeat", 2)
	pagetest.Check(t, browser, comparePage, "compare", 2)

	foreign := filepath.Join(dir, "package.json")
	os.WriteFile(foreign, []byte(`{"name": "left-pad", "version": "1.3.0"}`), 0o644)
	_, stderr = runExpecting(t, 2, bin, "compare", foreign, runs[0])
	if !strings.Contains(stderr.String(), foreign) {
		t.Errorf("lab compare of a foreign file: %s; want it named", stderr)
	}
}

// checkIndex checks results/index.html: every run folder in want is
// listed with a link to its report.html, and every link the page holds
// opens a file that is there.
func checkIndex(t *testing.T, results string, want []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(results, "index.html"))
	if err != nil {
		t.Fatalf("the results' index: %v", err)
	}
	page := string(b)
	for _, dir := range want {
		rel, _ := filepath.Rel(results, dir)
		if link := `href="` + filepath.ToSlash(rel) + `/report.html"`; !strings.Contains(page, link) {
			t.Errorf("index.html lacks %s", link)
		}
	}
	links := regexp.MustCompile(`href="([^"#]+)"`).FindAllStringSubmatch(page, -1)
	if len(links) < 3*len(want) {
		t.Errorf("index.html holds %d links, want at least 3 a run (page, result, events)", len(links))
	}
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(results, filepath.FromSlash(l[1]))); err != nil {
			t.Errorf("index.html links %s: %v", l[1], err)
		}
	}
}

// A pace the machine cannot hold is reported as not held everywhere: the
// exit code (4: every message delivered, but the figures are not the
// scenario's), the text report, result.json and report.html. 20,000
// messages a second with a 1 ms bound asks for 200 injections, each a
// `lab sendmail` process, within 10 ms: no machine forks that fast, so
// the outcome does not depend on how busy this one is.
func TestPaceNotHeld(t *testing.T) {
	stacktest.Engine(t)
	bin := buildLab(t)
	dir := t.TempDir()
	sc := filepath.Join(dir, "rush.yaml")
	os.WriteFile(sc, []byte("name: rush\ntimeout: 2m\ndns:\n  query_delay: 0s\n"+
		"workload:\n  pace: {mode: rate, rate: 20000, max_lag: 1ms}\n"), 0o644)
	results := filepath.Join(dir, "results")
	stdout, _ := runExpecting(t, 4, bin, "run", sc, "--results", results)
	if !strings.Contains(strings.ToLower(stdout.String()), "pace not held") {
		t.Errorf("the text report does not say the pace was not held:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "every injected message was delivered exactly once") {
		t.Errorf("exit 4 is for a run that delivered everything; this one did not:\n%s", stdout.String())
	}
	runs, _ := filepath.Glob(filepath.Join(results, "rush-*"))
	if len(runs) != 1 {
		t.Fatalf("runs %v, want one", runs)
	}
	res, err := report.Load(runs[0])
	if err != nil {
		t.Fatal(err)
	}
	p := res.Summary.Pace
	if p == nil || p.Held == nil || *p.Held || p.IntendedRate != 20000 || p.LagMax <= p.MaxLag || len(res.Injections) != 200 {
		t.Errorf("result.json pace %+v with %d injection records; want not held, intended 20000/s, max lag over 1 ms, 200 records", p, len(res.Injections))
	}
	html, err := os.ReadFile(filepath.Join(runs[0], report.HTMLFile))
	if err != nil || !strings.Contains(strings.ToLower(string(html)), "pace not held") {
		t.Errorf("report.html does not say the pace was not held (%v)", err)
	}
}

// runExpecting runs the lab binary from the repository's root and fails
// t unless it exits with code; it returns what it printed.
func runExpecting(t *testing.T, code int, bin string, args ...string) (stdout, stderr *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "../.."
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != code {
		t.Fatalf("exit %v, want %d\nstdout:\n%s\nstderr:\n%s", err, code, stdout, stderr)
	}
	return stdout, stderr
}
