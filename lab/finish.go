package lab

import (
	"fmt"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
)

// conclude builds res's figures, records and verdicts from the run's
// evidence (its events and the Maildir on disk) and says how the run
// ended: nil, or an error wrapping ErrNotDelivered, ErrPaceNotHeld or
// ErrExpectation (the first that applies, in that order).
func conclude(res *Result, sc scenario.Scenario, evs []events.Event, onDisk []maildir.Message, inj sender.InjectResult, expected int) error {
	zones := make([]string, len(sc.DNS.Blacklists))
	for i, b := range sc.DNS.Blacklists {
		zones[i] = b.Zone
	}
	in := report.Inputs{Events: evs, Maildir: onDisk, NotQueued: inj.Errors, Blacklists: zones, Expected: expected,
		RealSender: realMTA(sc.Sender.Impl), RealReceiver: realMTA(sc.Receiver.Impl)}
	if sc.DNS.Line.Enabled {
		lc := sc.LineConfig()
		in.Line = &lc
	}
	res.Events = evs
	res.Summary, res.Outcome = report.Build(in)
	kept := pace.Judge(sc.PaceSpec(), inj.Starts)
	res.Summary.Pace = &kept
	res.Injections = inj.Starts
	res.Records = report.BuildRecords(in)
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

// realMTA reports whether impl names a real MTA (lab/real.go starts one
// for these) rather than the Go model: the report leaves unmeasured what
// its mail log cannot tell (report.Inputs).
func realMTA(impl string) bool {
	return impl == scenario.ImplCourier || impl == scenario.ImplPostfix
}
