package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab/report"
)

// fastResult is a real run's result (scenario fast-expect).
const fastResult = "../report/testdata/fast-result.json"

// execute runs a command as lab would, returning what it printed and its
// error.
func execute(t *testing.T, c *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&errOut)
	c.SetArgs(args)
	err := c.Execute()
	return out.String(), err
}

// writeRuns writes one run of the real result per total time, as
// dir/<id>/result.json, the way a repeat folder holds them.
func writeRuns(t *testing.T, dir string, secs ...float64) string {
	t.Helper()
	base, err := report.Load(fastResult)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range secs {
		r := *base
		r.RunID = filepath.Base(dir) + "-" + string(rune('a'+i))
		r.Dir = filepath.Join(dir, r.RunID)
		r.Summary.TotalTime = time.Duration(s * float64(time.Second))
		if err := r.Write(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCompareCommand(t *testing.T) {
	tmp := t.TempDir()
	slower := writeRuns(t, filepath.Join(tmp, "slower"), 7.5)
	out, err := execute(t, compareCmd(), fastResult, slower)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"A: scenario fast-expect, 1 run: fast-expect-20261128-111820951",
		"B: scenario fast-expect, 1 run: slower-a",
		"figure", "verdict",
		"+3.74 s (+99.6%)", // 3.757 s to 7.5 s
		"single run: no spread known", "lab run --repeat N",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}

	// Repeats: ranges 3.0-3.4 s and 5.0-5.5 s do not overlap.
	a := writeRuns(t, filepath.Join(tmp, "repeat-a"), 3.2, 3.0, 3.4)
	b := writeRuns(t, filepath.Join(tmp, "repeat-b"), 5.5, 5.0, 5.2)
	out, err = execute(t, compareCmd(), b, a)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^total time .*$`).FindString(out)
	if !strings.Contains(line, "5.20 s (5.00 s .. 5.50 s)") || !strings.Contains(line, "3.20 s (3.00 s .. 3.40 s)") || !strings.HasSuffix(line, "better") {
		t.Errorf("total time line %q: want both ranges and better\n%s", line, out)
	}
	if !strings.Contains(out, "1 in 10 times") {
		t.Errorf("no chance note for 3 runs a side:\n%s", out)
	}
}

func TestCompareBench(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // where --bench makes its folder
	a := writeRuns(t, filepath.Join(t.TempDir(), "before"), 3, 4)
	out, err := execute(t, compareCmd(), "--bench", a, fastResult)
	if err != nil {
		t.Fatal(err)
	}
	cmdLine := regexp.MustCompile(`benchstat@latest before=(\S+) fast-result=(\S+)`).FindStringSubmatch(out)
	if cmdLine == nil {
		t.Fatalf("no benchstat command with the sides' names:\n%s", out)
	}
	for i, wantLines := range []int{2, 1} {
		b, err := os.ReadFile(cmdLine[i+1])
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\nBenchmarkLab/scenario=fast-expect-2 1 "); n != wantLines {
			t.Errorf("%s: %d benchmark lines, want %d:\n%s", cmdLine[i+1], n, wantLines, b)
		}
		if !strings.HasPrefix(cmdLine[i+1], os.Getenv("TMPDIR")) {
			t.Errorf("%s is not in the temporary folder", cmdLine[i+1])
		}
	}
}

// Named TestCompare... so that -run Compare runs every test of compare.go.
func TestCompareReportCommand(t *testing.T) {
	out, err := execute(t, reportCmd(), fastResult)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scenario fast-expect (run fast-expect-20261128-111820951)", "delivered / injected", "200 / 200",
		"expect ", "result: ../report/testdata/fast-result.json"} {
		if !strings.Contains(out, want) {
			t.Errorf("text: no %q in\n%s", want, out)
		}
	}

	out, err = execute(t, reportCmd(), "--format", "json", fastResult)
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.Parse([]byte(out))
	if err != nil || r.RunID != "fast-expect-20261128-111820951" || r.Summary.Delivered != 200 {
		t.Errorf("json does not read back as the result: %v", err)
	}

	out, err = execute(t, reportCmd(), "--format", "bench", fastResult)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\nBenchmarkLab/scenario=fast-expect-2 1 200 delivered-msgs 3.756915739 total-sec ") {
		t.Errorf("bench: no line for the run:\n%s", out)
	}

	repeat := writeRuns(t, filepath.Join(t.TempDir(), "fast-repeat"), 4, 3, 5)
	out, err = execute(t, reportCmd(), repeat)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"scenario fast-expect: 3 runs", "the scenario's expectations held in 0 of 3 runs",
		"figure runs median min max spread spread %", "total time 3 4.00 s 3.00 s 5.00 s 2.00 s 50.0%"} {
		if !strings.Contains(fields, want) {
			t.Errorf("repeat folder: no %q in\n%s", want, out)
		}
	}
	out, err = execute(t, reportCmd(), "--format", "json", repeat)
	if err != nil || !strings.Contains(out, `"key": "total_time_s"`) || !strings.Contains(out, `"better": "lower"`) || !strings.Contains(out, `"median": 4`) {
		t.Errorf("repeat folder as json (%v):\n%s", err, out)
	}
}

// TestCompareBadInput: every kind of bad input is exit code 2 with a
// message naming the file and what is wrong, from both commands.
func TestCompareBadInput(t *testing.T) {
	good, err := os.ReadFile(fastResult)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	emptyDir := filepath.Join(dir, "no-runs")
	os.Mkdir(emptyDir, 0o755)
	mixed := writeRuns(t, filepath.Join(dir, "mixed"), 3, 4)
	write("mixed/other/result.json", strings.Replace(string(good), `"name": "fast-expect"`, `"name": "courier-1999"`, 1))
	incomplete := write("failed/result.json", strings.Replace(string(good), `"complete": true`, `"complete": false`, 1))

	cases := []struct {
		name, path string
		want       string
	}{
		{"missing", filepath.Join(dir, "nope.json"), "no such file"},
		{"empty", write("empty.json", ""), "empty file"},
		{"truncated", write("truncated.json", string(good[:len(good)/3])), "truncated"},
		{"foreign", write("foo.json", `{"foo":1}`), "not an smtplab result"},
		{"package.json", write("package.json", `{"name": "x", "version": "1.0.0", "scripts": {"test": "jest"}}`), "not an smtplab result"},
		{"wrong version", write("v0.json", strings.Replace(string(good), `"smtplab/result/v1"`, `"smtplab/result/v0"`, 1)), `"smtplab/result/v0"`},
		{"not JSON", write("notes.txt", "delivered 200\n"), "not valid JSON"},
		{"folder without runs", emptyDir, "no result.json"},
		{"mixed scenarios", mixed, "courier-1999"},
		{"incomplete run", incomplete, "did not complete"},
	}
	for _, tc := range cases {
		for _, args := range [][]string{{tc.path, fastResult}, {fastResult, tc.path}, {"report", tc.path}} {
			c, which := compareCmd(), "compare"
			if args[0] == "report" {
				c, which, args = reportCmd(), "report", args[1:]
				if tc.name == "incomplete run" {
					continue // one incomplete run reports as such; tested below
				}
			}
			t.Run(tc.name+"/"+which, func(t *testing.T) {
				_, err := execute(t, c, args...)
				var ee *ExitError
				if !errors.As(err, &ee) || ee.Code != ExitBadInput {
					t.Fatalf("error %v, want exit code %d", err, ExitBadInput)
				}
				if !strings.Contains(ee.Msg, tc.want) || !strings.HasPrefix(ee.Msg, "lab "+which+": ") {
					t.Errorf("message %q, want lab %s: and %q", ee.Msg, which, tc.want)
				}
				if tc.name != "mixed scenarios" && !strings.Contains(ee.Msg, tc.path) {
					t.Errorf("message %q does not name %s", ee.Msg, tc.path)
				}
				if tc.name == "mixed scenarios" && !strings.Contains(ee.Msg, filepath.Join(mixed, "other", "result.json")) {
					t.Errorf("message %q does not name the odd run's file", ee.Msg)
				}
			})
		}
	}

	// A stored run that failed is reported as failed, not as zeros.
	out, err := execute(t, reportCmd(), incomplete)
	if err != nil || !strings.Contains(out, "did not complete") || strings.Contains(out, "delivered / injected") {
		t.Errorf("incomplete run (%v):\n%s", err, out)
	}
	for _, args := range [][]string{{}, {fastResult}, {fastResult, fastResult, fastResult}, {"--nope", fastResult, fastResult}} {
		_, err := execute(t, compareCmd(), args...)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != ExitBadInput {
			t.Errorf("compare %q: error %v, want exit code %d", args, err, ExitBadInput)
		}
	}
	for _, args := range [][]string{{}, {"--format", "xml", fastResult}, {"--format", "bench", incomplete}} {
		_, err := execute(t, reportCmd(), args...)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != ExitBadInput {
			t.Errorf("report %q: error %v, want exit code %d", args, err, ExitBadInput)
		}
	}
}
