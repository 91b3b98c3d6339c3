package compare

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/smtplab/smtplab/lab/report"
)

// WriteBench writes runs in Go's benchmark format
// (golang.org/design/14313-benchmark-format), one line per run, for
// benchstat:
//
//	pkg: github.com/smtplab/smtplab
//	Unit msgs/s better=higher
//	goos: linux
//	goarch: amd64
//	BenchmarkLab/scenario=fast-2 1 200 delivered-msgs 3.757 total-sec 53.24 msgs/s ...
//
// The name ends in the run's CPUs as a Go benchmark's ends in GOMAXPROCS
// (1 when unknown); without it benchstat would read the 1999 of
// "courier-1999" as one. The iteration count is 1: a run is one
// measurement. Times are in seconds, named "sec" as benchstat names them.
// Unit lines tell the better direction where there is one. Configuration
// lines are only those that should split a comparison (goos, goarch): a
// lab version that differs between A and B is what is being compared.
//
// To compare two sets: write each to a file and run
// `benchstat a.txt b.txt`; for sets of different scenarios add
// `-ignore /scenario`. WriteBench refuses a run that did not complete.
func WriteBench(w io.Writer, runs []*report.Result) error {
	for _, r := range runs {
		if r == nil || !r.Complete {
			if r == nil {
				return errors.New("a run is missing (nil result)")
			}
			return fmt.Errorf("run %s did not complete: no figures to write", runName(r))
		}
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "pkg: github.com/smtplab/smtplab\n")
	for _, f := range figures {
		if f.Better != NoDirection {
			fmt.Fprintf(bw, "Unit %s better=%s\n", f.bench, f.Better)
		}
	}
	platform := ""
	for _, r := range runs {
		if r.Environment.OS != platform { // a configuration line holds for the lines after it
			platform = r.Environment.OS
			goos, goarch, _ := strings.Cut(platform, "/")
			fmt.Fprintf(bw, "goos: %s\ngoarch: %s\n", goos, goarch)
		}
		fmt.Fprintf(bw, "%s 1", benchName(r))
		for _, f := range Figures(r) {
			fmt.Fprintf(bw, " %s %s", strconv.FormatFloat(f.Value, 'g', -1, 64), f.bench)
		}
		fmt.Fprintln(bw)
	}
	return bw.Flush()
}

// benchName is BenchmarkLab/scenario=NAME-CPUS, the name with no space
// and no slash (a slash would start another level of sub-benchmark).
func benchName(r *report.Result) string {
	name := strings.Map(func(c rune) rune {
		if unicode.IsSpace(c) || c == '/' || !unicode.IsPrint(c) {
			return '_'
		}
		return c
	}, r.Scenario.Name)
	if name == "" {
		name = "unnamed"
	}
	return fmt.Sprintf("BenchmarkLab/scenario=%s-%d", name, max(r.Environment.CPUs, 1))
}
