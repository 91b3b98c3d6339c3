package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
)

type runFunc = func(context.Context, scenario.Scenario, lab.Options) (*lab.Result, error)

// runCompared runs sc; when it asks for a comparison with the Go model
// (compare_model, with a real MTA in a role) it first runs the same
// scenario with the Go models (its own run and results folder) and
// returns that run too. A failed model run does not stop the real one:
// the comparison then shows what the model run got.
func runCompared(ctx context.Context, sc scenario.Scenario, opt lab.Options, run runFunc) (res, model *lab.Result, err error) {
	if sc.CompareModel {
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "compare_model: running %s with the Go models first\n", sc.Model().Name)
		}
		var merr error
		model, merr = run(ctx, sc.Model(), opt)
		if merr != nil && opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "model run: %v\n", merr)
		}
		if ctx.Err() != nil {
			return nil, model, ctx.Err()
		}
	}
	res, err = run(ctx, sc, opt)
	return res, model, err
}

// printThreeWay says what a real MTA leaves unmeasured, then prints the
// Go model, the real MTAs and 1999 side by side (with compare_model).
func printThreeWay(out io.Writer, sc scenario.Scenario, res, model *lab.Result) error {
	if notes := report.RealMTANotes(sc.Receiver.Impl, sc.Sender.Impl); len(notes) > 0 {
		fmt.Fprintln(out)
		for _, n := range notes {
			fmt.Fprintln(out, "note: "+n)
		}
	}
	if res == nil || model == nil || !res.Complete || !model.Complete {
		return nil
	}
	fmt.Fprintln(out)
	title := fmt.Sprintf("scenario %s: the Go model (run %s), the real MTAs (run %s), 1999", sc.Name, model.RunID, res.RunID)
	return report.WriteThreeWay(out, title,
		report.Side{Receiver: scenario.ImplGo, Sender: scenario.ImplGo, Summary: model.Summary},
		report.Side{Receiver: sc.Receiver.Impl, Sender: sc.Sender.Impl, Summary: res.Summary})
}
