package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/compare"
	"github.com/smtplab/smtplab/lab/report/htmlreport"
)

// runRepeated runs one scenario n times into one folder (lab.Repeat) and
// prints each run's line and then the median and spread of every figure.
// The exit code is the worst of the runs'.
func runRepeated(cmd *cobra.Command, path, results string, n int) error {
	sc, err := loadScenario(path)
	if err != nil {
		return &ExitError{Code: ExitBadInput, Msg: err.Error()}
	}
	stderr, out := cmd.ErrOrStderr(), cmd.OutOrStdout()
	opt := lab.Options{ResultsDir: results, Progress: stderr, Terminal: isTerminal(stderr)}
	var done []*report.Result
	rep, runErr := lab.Repeat(cmd.Context(), sc, n, opt, func(i int, res *lab.Result) {
		s := res.Summary
		fmt.Fprintf(out, "run %d: %s  delivered %d/%d in %.2f s, %d connections, %d DNS queries\n",
			i, res.RunID, s.Delivered, s.Injected, s.TotalTime.Seconds(), s.Connections, s.DNSQueries)
		// The set's page and the results' index, after every run: a
		// long repeat can be followed in the browser.
		done = append(done, res)
		writeRepeatPage(stderr, filepath.Dir(res.Dir), done)
		writeIndex(stderr, results)
	})
	writeIndex(stderr, results) // also after a run the lab could not finish
	code := exitCode(runErr)
	if runErr != nil && code == 1 && !errors.Is(runErr, lab.ErrNotDelivered) {
		return runErr // the lab could not finish a run
	}
	held, notHeld := compare.PaceHeld(rep.Runs)
	if len(held) == 0 {
		return &ExitError{Code: ExitPaceNotHeld, Msg: "lab: no run held its pace: no medians\n" + failures(runErr)}
	}
	stats, err := compare.Stats(held)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s, %d runs: median and spread\n\n", sc.Name, len(held))
	if len(notHeld) > 0 {
		fmt.Fprintf(out, "left out, did not hold the scenario's pace: %s\n\n", strings.Join(notHeld, ", "))
	}
	if err := compare.WriteStats(out, stats); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nruns: %s (lab compare takes this folder as one side)\n", rep.Dir)
	if runErr != nil {
		return &ExitError{Code: code, Msg: "lab: " + failures(runErr)}
	}
	return nil
}

// writeRepeatPage rewrites a repeat folder's index.html; like
// writeIndex, a failure is said and changes no exit code.
func writeRepeatPage(w io.Writer, dir string, runs []*report.Result) {
	held, _ := compare.PaceHeld(runs)
	if len(held) == 0 {
		return // no medians yet
	}
	if err := htmlreport.WriteRepeatFile(dir, runs); err != nil {
		fmt.Fprintf(w, "lab: the repeat's page: %v\n", err)
	}
}

// failures is err's text, one failed run a line.
func failures(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// exitCode is the exit code a run's error asks for: 0 none; 1 a message
// not delivered exactly once (or the lab failed); 4 the pace not held; 3
// an expectation failed, in that order.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, lab.ErrNotDelivered):
		return 1
	case errors.Is(err, lab.ErrPaceNotHeld):
		return ExitPaceNotHeld
	case errors.Is(err, lab.ErrExpectation):
		return ExitExpectation
	}
	return 1
}
