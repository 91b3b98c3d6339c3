package cli

import (
	"fmt"
	"io"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
)

// printThreeWay says what a real MTA leaves unmeasured, then prints the
// Go model, the real MTAs and 1999 side by side (with compare_model).
func printThreeWay(out io.Writer, sc scenario.Scenario, res, model *lab.Result) error {
	if notes := report.RealMTANotes(sc.Receiver.Impl, sc.Sender.Impl, sc.Receiver.EvidenceKind()); len(notes) > 0 {
		fmt.Fprintln(out)
		for _, n := range notes {
			fmt.Fprintln(out, "note: "+n)
		}
	}
	if res == nil || model == nil || !res.Complete || !model.Complete {
		return nil
	}
	fmt.Fprintln(out)
	not1999 := sc.Workload.Not1999()
	title := fmt.Sprintf("scenario %s: the Go model (run %s), the real MTAs (run %s)", sc.Name, model.RunID, res.RunID)
	if not1999 == "" {
		title += ", 1999"
	}
	return report.WriteThreeWay(out, title,
		report.Side{Receiver: scenario.ImplGo, Sender: scenario.ImplGo, Summary: model.Summary},
		report.Side{Receiver: sc.Receiver.Impl, Sender: sc.Sender.Impl, Summary: res.Summary}, not1999)
}
