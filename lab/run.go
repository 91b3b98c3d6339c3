// Package lab runs one scenario end to end: it translates the scenario
// into what each role is given (Plan), builds the images, starts dns,
// receiver, sender and identd on a fresh bridge network in topology order
// (start.go), and drives them through one Handle each, whatever plays the
// role (handle.go): injects the workload, waits for delivery, collects
// every role's events and evidence, and concludes the result (drive.go,
// result.go). Run removes all it made, also on error and cancellation;
// RunCompose drives roles docker compose started; Repeat runs a scenario
// several times. docs/ARCHITECTURE.md is the map.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
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

// Run runs sc. A Result is returned as soon as the run has an id, also
// with an error; its figures are meaningful only when Complete.
func Run(ctx context.Context, sc scenario.Scenario, opt Options) (res *Result, err error) {
	start := time.Now()
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	if err := DockerCan(sc); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	eng, err := stack.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	images := "the lab's image"
	if m := sc.MTAs(); len(m) > 0 {
		images = "the images of the lab and " + strings.Join(m, ", ")
	}
	opt.say("checking %s: compiling the lab, building an image only when it changed", images)
	img, mtaImages, err := stack.BuildImages(ctx, eng, sc.MTAs(), opt.say)
	if err != nil {
		return nil, err
	}
	if r := sc.Receiver; r.Impl == scenario.ImplImage {
		// Before any container starts: the user's image must be here.
		if mtaImages[imageKey(topology.Receiver)], err = stack.LocalImage(ctx, eng, r.Image.Name); err != nil {
			return nil, fmt.Errorf("scenario %s: receiver.image.name: %w", sc.Name, err)
		}
	}
	if sd := sc.Sender; sd.Impl == scenario.ImplImage {
		base, err := stack.LocalImage(ctx, eng, sd.Image.Name)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: sender.image.name: %w", sc.Name, err)
		}
		// The injection loop runs in it: the lab adds its own binary.
		if mtaImages[imageKey(topology.Sender)], err = stack.LabOver(ctx, eng, base, opt.say); err != nil {
			return nil, fmt.Errorf("scenario %s: sender.image: %w", sc.Name, err)
		}
	}
	built := time.Since(start)
	res = newResult(sc, start, opt.ResultsDir, report.Environment{
		LabVersion: img.Version, EngineVersion: eng.Version, Image: img.Ref, ImageID: img.ID, ImageBuilt: img.Built,
		CPUs: eng.CPUs, MemoryBytes: eng.Memory, Senders: sendingHosts(sc),
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

	opt.say("run %s: creating its network, after its reaper (which removes the run should the lab die)", runID)
	st, err := stack.New(ctx, eng, img, runID)
	if err != nil {
		return res, err
	}
	var lastDelivery time.Time
	defer func() {
		opt.say("run %s: removing its containers and network", runID)
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up run %s (try: go run ./cmd/lab clean): %w", runID, cerr))
		}
		// The result is written last, once the containers are gone, so the
		// lab's overhead after the last delivery is measured whole.
		err = writeResult(res, lastDelivery, err)
	}()
	res.Environment.Network = st.Network()
	roles := "dns, receiver, sender, identd"
	if sc.Receiver.Relay() {
		roles = "dns, the final receiver, receiver (relaying to it), sender, identd"
	}
	opt.say("run %s: starting %s on network %s", runID, roles, st.Network())
	p := NewPlan(sc)
	s := &starter{st: st, plan: p, images: mtaImages, opt: opt}
	r, err := s.start(ctx)
	if err != nil {
		return res, err
	}
	o, err := s.outages(r)
	if err != nil {
		return res, err
	}
	lastDelivery, err = drive(ctx, r, p, opt, res, start, o)
	return res, err
}
