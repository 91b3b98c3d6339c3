// Package lab runs one scenario end to end: it builds the lab's image,
// starts dns, receiver, sender and identd on a fresh bridge network,
// injects the workload, waits for delivery, collects every role's events
// and the receiver's Maildir, and returns the result. Run removes all it
// made, also on error and cancellation.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// Options are a run's settings that are not part of the scenario.
type Options struct {
	ResultsDir string    // where the run's folder is made; "results" when empty
	Progress   io.Writer // progress and status lines; nil for none
	Terminal   bool      // Progress is a terminal: redraw one line
}

// say prints one status line to Progress, if any.
func (o Options) say(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Result is everything a run produced (report.Result, written as
// result.json).
type Result = report.Result

// ErrNotDelivered is returned (wrapped) when some message was not
// delivered exactly once; the Result says which.
var ErrNotDelivered = errors.New("not every message was delivered exactly once")

// ErrExpectation is returned (wrapped) when every message was delivered
// but one of the scenario's expectations failed; Result.Expectations says
// which.
var ErrExpectation = errors.New("an expectation failed")

// ErrPaceNotHeld is returned (wrapped) when every message was delivered
// but the injection did not keep the workload's schedule (lab/pace): the
// run's figures were measured at another pace and are not comparable.
var ErrPaceNotHeld = pace.ErrNotHeld

const (
	queueDir     = "/var/spool/smtplab"
	workloadPath = "/etc/smtplab/workload.json"
	identdPort   = topology.IdentdControl
)

// Run runs sc. A Result is returned as soon as the run has an id, also
// with an error; its figures are meaningful only when Complete.
func Run(ctx context.Context, sc scenario.Scenario, opt Options) (res *Result, err error) {
	start := time.Now()
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	eng, err := stack.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	img, mtaImages, err := stack.BuildImages(ctx, eng, sc.MTAs(), opt.say)
	if err != nil {
		return nil, err
	}
	built := time.Since(start)
	res = newResult(sc, start, opt.ResultsDir, report.Environment{
		LabVersion: img.Version, EngineVersion: eng.Version, Image: img.Ref, ImageID: img.ID, ImageBuilt: img.Built,
		CPUs: eng.CPUs, MemoryBytes: eng.Memory,
	})
	runID := res.RunID
	res.Overhead.ImageBuild = built
	defer func() {
		// Whatever happened, nothing of this run stays: what Close did not
		// know of (a container or network whose creation an interrupt cut
		// short) is found by the run's label.
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, cerr := stack.Clean(cctx, eng, runID); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up run %s (try: go run ./cmd/lab clean): %w", runID, cerr))
		}
	}()

	st, err := stack.New(ctx, eng, img, runID)
	if err != nil {
		return res, err
	}
	var lastDelivery time.Time
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up run %s (try: go run ./cmd/lab clean): %w", runID, cerr))
		}
		// The result is written last, once the containers are gone, so the
		// lab's overhead after the last delivery is measured whole.
		err = writeResult(res, lastDelivery, err)
	}()
	res.Environment.Network = st.Network()
	opt.say("run %s: starting dns, receiver, sender, identd on network %s", runID, st.Network())
	msgs := sc.Workload.Messages()
	roles, err := startRoles(ctx, st, sc, msgs, mtaImages)
	if err != nil {
		return res, err
	}
	lastDelivery, err = drive(ctx, roles, sc, opt, res, start, func(ctx context.Context, mdir string) error {
		if err := roles.receiver.CopyDir(ctx, eng, sc.Receiver.Maildir, mdir); err != nil {
			return err
		}
		if roles.receiver.MTA != "" {
			if err := maildirTimes(ctx, roles.receiver, sc.Receiver.Maildir, mdir); err != nil {
				return err
			}
		}
		return saveMTALogs(ctx, roles, res.Dir)
	})
	return res, err
}

// drive runs the measured part on roles that are up and configured:
// injects the workload, waits for delivery (or the scenario's timeout, or
// Ctrl-C), collects every role's events and the Maildir (copyOut writes
// it into the folder it is given), and concludes res. It returns when the
// last delivery was, for the overhead figures.
func drive(ctx context.Context, r running, sc scenario.Scenario, opt Options, res *Result, start time.Time,
	copyOut func(ctx context.Context, dir string) error) (lastDelivery time.Time, err error) {
	msgs := sc.Workload.Messages()
	res.Overhead.StartToInjection = time.Since(start)
	runCtx, cancel := context.WithTimeout(ctx, sc.Timeout.D())
	defer cancel()
	injected := make(chan sender.InjectResult, 1)
	go func() {
		injected <- inject(runCtx, r.sender, r.workload)
	}()
	inj, waitErr := waitForDelivery(runCtx, r, len(msgs), injected, opt)
	lastDelivery = time.Now()

	// Collect whatever happened, also after a timeout or Ctrl-C.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer ccancel()
	if r.sender.MTA != "" {
		if err := stopInjection(cctx, r.sender); err != nil {
			return lastDelivery, errors.Join(waitErr, err)
		}
	}
	evs, cerr := collectEvents(cctx, r)
	if cerr != nil {
		return lastDelivery, errors.Join(waitErr, cerr)
	}
	evs = withInjected(cctx, r, evs, inj)
	mdir := filepath.Join(res.Dir, "maildir")
	if err := copyOut(cctx, mdir); err != nil {
		return lastDelivery, errors.Join(waitErr, err)
	}
	onDisk, err := maildir.Dir(mdir).List()
	if err != nil {
		return lastDelivery, errors.Join(waitErr, err)
	}
	end := conclude(res, sc, evs, onDisk, inj, len(msgs))
	if d := res.Summary.TotalTime; d > 0 {
		lastDelivery = firstQueued(evs).Add(d)
	}
	if waitErr != nil {
		return lastDelivery, waitErr
	}
	return lastDelivery, end
}

type running struct {
	dns, receiver, sender, identd *stack.Container
	maildir                       string // the receiver's Maildir, in its container
	workload                      []byte // the injection (sender.Injection: pace and messages), as JSON
}

func (r running) all() []*stack.Container {
	return []*stack.Container{r.dns, r.receiver, r.sender, r.identd}
}

// startRoles starts the roles in topology order (dns, receiver, sender,
// identd in the sender's network) and gives the DNS stub the live
// topology.
func startRoles(ctx context.Context, st *stack.Stack, sc scenario.Scenario, msgs []scenario.Message, mtaImages map[string]stack.Image) (running, error) {
	r := running{maildir: sc.Receiver.Maildir}
	var a addrs
	var err error
	r.dns, err = st.Start(ctx, roleSpec(sc, role.DNS, a))
	if err != nil {
		return r, err
	}
	a.dns = r.dns.IP
	r.receiver, err = startReceiver(ctx, st, sc, a, mtaImages)
	if err != nil {
		return r, err
	}
	a.receiver = r.receiver.IP
	r.workload, err = json.Marshal(sender.Injection{Pace: sc.PaceSpec(), Messages: msgs})
	if err != nil {
		return r, err
	}
	r.sender, err = startSender(ctx, st, sc, a, r.workload, mtaImages)
	if err != nil {
		return r, err
	}
	a.sender = r.sender.IP
	identd, _ := topology.ByName(role.Identd)
	r.identd, err = st.Start(ctx, roleSpec(sc, role.Identd, a), stack.InNetNS(r.sender, identd.Control))
	if err != nil {
		return r, err
	}
	body, _ := json.Marshal(zoneFor(sc, a))
	if err := r.dns.Post(ctx, "/zone", body); err != nil {
		return r, fmt.Errorf("give dns the topology: %w", err)
	}
	return r, nil
}

func ptr[T any](v T) *T { return &v }
