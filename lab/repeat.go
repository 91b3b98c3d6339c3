package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
)

// Runner runs one scenario: Run, or RunCompose in the compose runner.
type Runner func(context.Context, scenario.Scenario, Options) (*Result, error)

// RunWithModel runs sc with run; when sc asks for a comparison with the Go
// model (compare_model, with a real MTA in a role) it first runs the same
// scenario with the Go models (its own run and results folder) and
// returns that run too. A failed model run does not stop the real one:
// the comparison then shows what the model run got.
func RunWithModel(ctx context.Context, sc scenario.Scenario, opt Options, run Runner) (res, model *Result, err error) {
	if sc.CompareModel {
		opt.say("compare_model: running %s with the Go models first", sc.Model().Name)
		var merr error
		model, merr = run(ctx, sc.Model(), opt)
		if merr != nil {
			opt.say("model run: %v", merr)
		}
		if ctx.Err() != nil {
			return nil, model, ctx.Err()
		}
	}
	res, err = run(ctx, sc, opt)
	return res, model, err
}

// Repeated is what Repeat did: the complete runs, in order, in one folder.
type Repeated struct {
	Dir  string
	Runs []*Result
}

// Repeat runs sc n times into one folder under opt.ResultsDir
// (<scenario>-repeat-<time>), calling each with every complete run. It
// goes on after a run that failed its checks (that is a figure too) but
// stops at a run the lab could not finish, or at Ctrl-C; that run's
// folder is moved out beside the repeat folder, which keeps complete runs
// only (lab compare and lab report take it as it is). The error joins the
// failed runs' errors, so errors.Is finds the worst: ErrNotDelivered, then
// ErrPaceNotHeld, then ErrExpectation.
func Repeat(ctx context.Context, sc scenario.Scenario, n int, opt Options, each func(i int, res *Result)) (Repeated, error) {
	results := opt.ResultsDir
	if results == "" {
		results = "results"
	}
	rep := Repeated{Dir: filepath.Join(results, fmt.Sprintf("%s-repeat-%s", sc.Name, time.Now().UTC().Format("20060102-150405")))}
	opt.ResultsDir = rep.Dir
	var failed []error
	for i := 1; i <= n; i++ {
		opt.say("repeat %d of %d", i, n)
		res, err := Run(ctx, sc, opt)
		if res == nil || !res.Complete {
			if err == nil {
				err = errors.New("the run ended without a result")
			}
			if res != nil && res.Dir != "" {
				aside := filepath.Join(results, filepath.Base(res.Dir))
				if rerr := os.Rename(res.Dir, aside); rerr == nil {
					err = fmt.Errorf("%w (its result: %s)", err, aside)
				}
			}
			return rep, fmt.Errorf("repeat %d of %d: %w", i, n, err)
		}
		rep.Runs = append(rep.Runs, res)
		if each != nil {
			each(i, res)
		}
		switch {
		case errors.Is(err, ErrExpectation):
			for _, v := range report.Failed(res.Expectations) {
				failed = append(failed, fmt.Errorf("run %d: %s: %w", i, v, ErrExpectation))
			}
		case errors.Is(err, ErrNotDelivered), errors.Is(err, ErrPaceNotHeld):
			failed = append(failed, fmt.Errorf("run %d: %w", i, err))
		case err != nil:
			return rep, fmt.Errorf("repeat %d of %d: %w", i, n, err)
		}
	}
	return rep, errors.Join(failed...)
}
