// Package lab runs one scenario end to end: it builds the lab's image,
// starts dns, receiver, sender and identd on a fresh bridge network,
// injects the workload, waits for delivery, collects every role's events
// and the receiver's Maildir, and returns the result. Run removes all it
// made, also on error and cancellation.
package lab

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/htmlreport"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/stack"
)

// Options are a run's settings that are not part of the scenario.
type Options struct {
	ResultsDir string    // where the run's folder is made; "results" when empty
	Progress   io.Writer // progress and status lines; nil for none
	Terminal   bool      // Progress is a terminal: redraw one line
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

const (
	queueDir     = "/var/spool/smtplab"
	workloadPath = "/etc/smtplab/workload.json"
	identdPort   = "8113"
)

// Run runs sc. A Result is returned as soon as the run has an id, also
// with an error; its figures are meaningful only when Complete.
func Run(ctx context.Context, sc scenario.Scenario, opt Options) (res *Result, err error) {
	start := time.Now()
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	say := func(format string, args ...any) {
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, format+"\n", args...)
		}
	}
	eng, err := stack.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	img, mtaImages, err := stack.BuildImages(ctx, eng, sc.MTAs(), say)
	if err != nil {
		return nil, err
	}
	built := time.Since(start)
	runID := fmt.Sprintf("%s-%s", sc.Name, start.UTC().Format("20060102-150405.000"))
	runID = strings.ReplaceAll(runID, ".", "")
	res = &Result{
		Schema: report.SchemaVersion, RunID: runID, Scenario: sc, Started: start, Seed1999: report.Seed1999,
		Expectations: []report.Verdict{}, Records: report.BuildRecords(report.Inputs{}),
		Environment: report.Environment{
			LabVersion: img.Version, GoVersion: runtime.Version(), EngineVersion: eng.Version,
			Image: img.Ref, ImageID: img.ID, ImageBuilt: img.Built,
			CPUs: cmp.Or(eng.CPUs, runtime.NumCPU()), MemoryBytes: eng.Memory, OS: runtime.GOOS + "/" + runtime.GOARCH,
		},
	}
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
		if res != nil && res.Dir != "" {
			res.Overhead.DeliveryToExit = time.Since(lastDelivery)
			if err != nil {
				res.Error = err.Error()
			}
			if werr := res.Write(); werr != nil {
				err = errors.Join(err, werr)
			}
			if werr := htmlreport.WriteFile(res); werr != nil {
				err = errors.Join(err, werr)
			}
		}
	}()
	res.Environment.Network = st.Network()
	say("run %s: starting dns, receiver, sender, identd on network %s", runID, st.Network())
	msgs := sc.Workload.Messages()
	roles, err := startRoles(ctx, st, sc, msgs, mtaImages)
	if err != nil {
		return res, err
	}
	res.Dir = filepath.Join(orDefault(opt.ResultsDir, "results"), runID)
	injStart := time.Now()
	res.Overhead.StartToInjection = injStart.Sub(start)
	runCtx, cancel := context.WithTimeout(ctx, sc.Timeout.D())
	defer cancel()
	injected := make(chan sender.InjectResult, 1)
	go func() {
		injected <- inject(runCtx, roles.sender)
	}()
	inj, waitErr := waitForDelivery(runCtx, roles, len(msgs), injected, opt)
	lastDelivery = time.Now()

	// Collect whatever happened, also after a timeout or Ctrl-C.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer ccancel()
	evs, cerr := collectEvents(cctx, roles)
	if cerr != nil {
		return res, errors.Join(waitErr, cerr)
	}
	evs = withInjected(evs, inj)
	res.Events = evs
	mdir := filepath.Join(res.Dir, "maildir")
	if err := roles.receiver.CopyDir(cctx, eng, sc.Receiver.Maildir, mdir); err != nil {
		return res, errors.Join(waitErr, err)
	}
	if roles.receiver.MTA != "" {
		if err := maildirTimes(cctx, roles.receiver, sc.Receiver.Maildir, mdir); err != nil {
			return res, errors.Join(waitErr, err)
		}
	}
	if err := saveMTALogs(cctx, roles, res.Dir); err != nil {
		return res, errors.Join(waitErr, err)
	}
	onDisk, err := maildir.Dir(mdir).List()
	if err != nil {
		return res, errors.Join(waitErr, err)
	}
	zones := make([]string, len(sc.DNS.Blacklists))
	for i, b := range sc.DNS.Blacklists {
		zones[i] = b.Zone
	}
	in := report.Inputs{Events: evs, Maildir: onDisk, NotQueued: inj.Errors, Blacklists: zones, Expected: len(msgs)}
	if sc.DNS.Line.Enabled {
		lc := sc.LineConfig()
		in.Line = &lc
	}
	res.Summary, res.Outcome = report.Build(in)
	res.Records = report.BuildRecords(in)
	res.Expectations = report.Check(sc.Expect, res.Summary, res.Outcome)
	res.Complete = true
	if d := res.Summary.TotalTime; d > 0 {
		lastDelivery = firstQueued(evs).Add(d)
	}
	if waitErr != nil {
		return res, waitErr
	}
	if !res.Outcome.OK() {
		return res, fmt.Errorf("run %s: %w", runID, ErrNotDelivered)
	}
	if f := report.Failed(res.Expectations); len(f) > 0 {
		return res, fmt.Errorf("run %s: %d of %d expectations failed: %w", runID, len(f), len(res.Expectations), ErrExpectation)
	}
	return res, nil
}

type running struct {
	dns, receiver, sender, identd *stack.Container
	maildir                       string // the receiver's Maildir, in its container
}

func (r running) all() []*stack.Container {
	return []*stack.Container{r.dns, r.receiver, r.sender, r.identd}
}

// startRoles starts the four roles in dependency order and gives the DNS
// stub the live topology.
func startRoles(ctx context.Context, st *stack.Stack, sc scenario.Scenario, msgs []scenario.Message, mtaImages map[string]stack.Image) (running, error) {
	r := running{maildir: sc.Receiver.Maildir}
	var err error
	bls := make([]dnsstub.Blacklist, len(sc.DNS.Blacklists))
	for i, b := range sc.DNS.Blacklists {
		bls[i] = dnsstub.Blacklist{Zone: b.Zone, Listed: b.Listed, Code: b.Code, Reason: b.Reason}
	}
	dcfg := &dnsstub.Config{QueryDelay: sc.DNS.QueryDelay.D(), Blacklists: bls, Faults: sc.FaultSpecs(), Seed: sc.Seed,
		Origins: []string{sc.DNS.LabDomain, "example.com"}}
	if sc.DNS.Line.Enabled {
		lc := sc.LineConfig()
		dcfg.Line = &lc
	}
	r.dns, err = st.Start(ctx, role.Spec{Role: role.DNS, Listen: ":53", Control: ":" + stack.ControlPort, DNS: dcfg})
	if err != nil {
		return r, err
	}
	r.receiver, err = startReceiver(ctx, st, sc, r.dns.IP, mtaImages)
	if err != nil {
		return r, err
	}
	wl, err := json.Marshal(msgs)
	if err != nil {
		return r, err
	}
	r.sender, err = startSender(ctx, st, sc, r.receiver.IP, r.dns.IP, wl, mtaImages)
	if err != nil {
		return r, err
	}
	r.identd, err = st.Start(ctx, role.Spec{Role: role.Identd, Listen: ":113", Control: ":" + identdPort,
		Identd: ptr(sc.IdentdConfig())}, stack.InNetNS(r.sender, identdPort))
	if err != nil {
		return r, err
	}
	zone := dnsstub.Zone{A: map[string][]string{}, PTR: map[string]string{}, Extra: sc.DNS.Records}
	for _, c := range []*stack.Container{r.dns, r.receiver, r.sender} {
		name := c.Role + "." + sc.DNS.LabDomain
		zone.A[name] = []string{c.IP}
		zone.PTR[c.IP] = name
	}
	zone.A[sc.Receiver.Hostname] = []string{r.receiver.IP}
	zone.A[sc.Sender.Hostname] = []string{r.sender.IP}
	zone.PTR[r.receiver.IP] = sc.Receiver.Hostname
	zone.PTR[r.sender.IP] = sc.Sender.Hostname
	for _, h := range sc.Workload.Hosts() {
		zone.A[h] = []string{r.receiver.IP}
	}
	// The envelope sender's domain resolves too (a receiver with
	// BOFHCHECKDNS on asks): to the sending host.
	if from := sc.Workload.From; strings.Contains(from, "@") {
		if d := strings.ToLower(from[strings.LastIndexByte(from, '@')+1:]); zone.A[d] == nil {
			zone.A[d] = []string{r.sender.IP}
		}
	}
	body, _ := json.Marshal(zone)
	if err := r.dns.Post(ctx, "/zone", body); err != nil {
		return r, fmt.Errorf("give dns the topology: %w", err)
	}
	return r, nil
}

func ptr[T any](v T) *T { return &v }
