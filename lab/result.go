package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/htmlreport"
	"github.com/smtplab/smtplab/lab/scenario"
)

// newResult is a run's result before anything ran: its id (the scenario's
// name and the start time), the scenario, and where it will be written.
func newResult(sc scenario.Scenario, start time.Time, resultsDir string, env report.Environment) *Result {
	runID := strings.ReplaceAll(fmt.Sprintf("%s-%s", sc.Name, start.UTC().Format("20060102-150405.000")), ".", "")
	env.GoVersion = runtime.Version()
	env.OS = runtime.GOOS + "/" + runtime.GOARCH
	if env.CPUs == 0 {
		env.CPUs = runtime.NumCPU()
	}
	if resultsDir == "" {
		resultsDir = "results"
	}
	return &Result{
		Schema: report.SchemaVersion, RunID: runID, Scenario: sc, Started: start, Seed1999: report.Seed1999,
		Expectations: []report.Verdict{}, Records: report.BuildRecords(report.Inputs{}),
		Environment: env, Dir: filepath.Join(resultsDir, runID),
	}
}

// conclude builds res's figures, records and verdicts from the run's
// evidence (its events and the Maildir on disk) and says how the run
// ended: nil, or an error wrapping ErrNotDelivered, ErrPaceNotHeld or
// ErrExpectation (the first that applies, in that order).
func conclude(res *Result, p Plan, r running, log *runLog, onDisk []maildir.Message, inj injection) error {
	sc := p.Scenario
	in := report.Inputs{Stream: log.each(), Maildir: onDisk, NotQueued: inj.Errors, Blacklists: p.Blacklists(),
		Expected: len(p.Injection.Messages), Line: p.Line(),
		SenderLogPartial: !r.sender.FullLog(), ReceiverLogPartial: !r.receiver.FullLog()}
	if n, ok := r.receiver.(interface{ LogNone() bool }); ok {
		in.ReceiverLogNone = n.LogNone() // an image the user brings
	}
	if rl, ok := r.receiver.(interface{ Relay() bool }); ok {
		in.Relay = rl.Relay() // relay.go: the final receiver's Maildir
	}
	res.Summary, res.Outcome = report.Build(in)
	if sc.Receiver.EvidenceKind() == scenario.EvidenceMbox {
		res.Summary.Evidence = scenario.EvidenceMbox // its times are whole seconds
	}
	kept := pace.Judge(p.Injection.Pace, inj.Starts)
	if inj.Cut != "" && kept.Held != nil {
		// The schedule was broken by the fault, not by the machine.
		kept.Held, kept.NotJudged = nil, "the injection loop runs in the sender, which "+inj.Cut+" hit"
	}
	kept.Injection = sc.Workload.InjectionOf()
	if n := sc.SenderHosts(); n > 1 {
		kept.Senders = n
	}
	res.Summary.Pace = &kept
	res.Injections = inj.Starts
	res.Records = report.BuildRecords(in)
	if log.err != nil {
		return fmt.Errorf("run %s: %w", res.RunID, log.err)
	}
	res.Expectations = report.Check(sc.Expect, res.Summary, res.Outcome)
	res.Complete = true
	if !res.Outcome.OK() {
		return fmt.Errorf("run %s: %w", res.RunID, ErrNotDelivered)
	}
	if msg := kept.NotHeld(); msg != "" {
		return fmt.Errorf("run %s: %s: %w", res.RunID, msg, ErrPaceNotHeld)
	}
	if f := report.Failed(res.Expectations); len(f) > 0 {
		return fmt.Errorf("run %s: %d of %d expectations failed: %w", res.RunID, len(f), len(res.Expectations), ErrExpectation)
	}
	return nil
}

// writeResult puts res in its folder, whatever happened: report.html,
// then result.json (with err's text and the report's time) and
// events.jsonl. It returns err with any failure to write joined.
func writeResult(res *Result, lastDelivery time.Time, err error) error {
	res.Overhead.DeliveryToExit = time.Since(lastDelivery)
	if err != nil {
		res.Error = err.Error()
	}
	if merr := os.MkdirAll(res.Dir, 0o755); merr != nil {
		return errors.Join(err, fmt.Errorf("write result: %w", merr))
	}
	began := time.Now()
	if werr := htmlreport.WriteFile(res); werr != nil {
		err = errors.Join(err, werr)
	}
	if res.Complete {
		res.Overhead.Report += time.Since(began)
	}
	if werr := res.Write(); werr != nil {
		err = errors.Join(err, werr)
	}
	return err
}
