package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/compare"
	"github.com/smtplab/smtplab/lab/scenario"
)

// runRepeated runs one scenario n times into one folder and prints the
// median and spread of every figure. It goes on after a run that failed
// its checks (that is a figure too) but stops at a run the lab could not
// finish, or at Ctrl-C; that run's folder is moved out of the repeat
// folder, which keeps complete runs only. The exit code is the worst of
// the runs'.
func runRepeated(cmd *cobra.Command, path, results string, n int) error {
	sc, err := scenario.Load(path)
	if err != nil {
		return &ExitError{Code: ExitBadInput, Msg: err.Error()}
	}
	dir := filepath.Join(results, fmt.Sprintf("%s-repeat-%s", sc.Name, time.Now().UTC().Format("20060102-150405")))
	stderr := cmd.ErrOrStderr()
	out := cmd.OutOrStdout()
	var runs []*report.Result
	var failures []string
	code := 0
	for i := 1; i <= n; i++ {
		fmt.Fprintf(stderr, "repeat %d of %d\n", i, n)
		res, err := lab.Run(cmd.Context(), sc, lab.Options{ResultsDir: dir, Progress: stderr, Terminal: isTerminal(stderr)})
		if res == nil || !res.Complete {
			if err == nil {
				err = errors.New("the run ended without a result")
			}
			// The repeat folder keeps complete runs only, so lab compare and
			// lab report can take it as it is; the broken run goes beside it.
			if res != nil && res.Dir != "" {
				aside := filepath.Join(results, filepath.Base(res.Dir))
				if rerr := os.Rename(res.Dir, aside); rerr == nil {
					err = fmt.Errorf("%w (its result: %s)", err, aside)
				}
			}
			return fmt.Errorf("repeat %d of %d: %w", i, n, err)
		}
		runs = append(runs, res)
		s := res.Summary
		fmt.Fprintf(out, "run %d: %s  delivered %d/%d in %.2f s, %d connections, %d DNS queries\n",
			i, res.RunID, s.Delivered, s.Injected, s.TotalTime.Seconds(), s.Connections, s.DNSQueries)
		switch {
		case errors.Is(err, lab.ErrNotDelivered):
			code = 1
			failures = append(failures, fmt.Sprintf("run %d: %v", i, err))
		case errors.Is(err, lab.ErrPaceNotHeld):
			if code != 1 {
				code = ExitPaceNotHeld
			}
			failures = append(failures, fmt.Sprintf("run %d: %v", i, err))
		case errors.Is(err, lab.ErrExpectation):
			if code == 0 {
				code = ExitExpectation
			}
			for _, v := range report.Failed(res.Expectations) {
				failures = append(failures, fmt.Sprintf("run %d: %s", i, v))
			}
		case err != nil:
			return fmt.Errorf("repeat %d of %d: %w", i, n, err)
		}
	}
	held, notHeld := compare.PaceHeld(runs)
	if len(held) == 0 {
		return &ExitError{Code: ExitPaceNotHeld, Msg: "lab: no run held its pace: no medians\n" + strings.Join(failures, "\n")}
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
	fmt.Fprintf(out, "\nruns: %s (lab compare takes this folder as one side)\n", dir)
	if code != 0 {
		return &ExitError{Code: code, Msg: "lab: " + strings.Join(failures, "\n")}
	}
	return nil
}
