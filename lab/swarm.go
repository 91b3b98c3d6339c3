package lab

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// A run on Docker Swarm (lab run --engine swarm) has two halves:
//
//   - On the host, RunOnSwarm deploys the roles as services on an
//     attachable overlay network, the sender as sc.Sender.Replicas
//     replicas each serving its own identd, and starts the runner, a
//     one-shot container of the lab's image on that network (the host
//     cannot reach overlay addresses), with the results folder and the
//     scenario bound in. Its exit code is the run's. It removes them all
//     on every way out, and leaves the swarm if it made it.
//   - In the runner, RunSwarm finds each service by name on the overlay,
//     every sender replica by its task addresses, gives each its spec and
//     drives the run as Run does; the replicas play one sender (senders).

// swarmEnvironment names, in the runner, the run's environment as the
// host saw it (report.Environment as JSON: the engine, the image the
// services run), which the runner inside the swarm cannot ask the engine.
const swarmEnvironment = "SMTPLAB_ENVIRONMENT"

// DockerCan says why the docker engine (Run) cannot run sc, if it
// cannot: several sending hosts are the Go sender's (sender.replicas,
// checked by the scenario), and the mail-path faults act on one
// container of a role, so they run with one sending host.
func DockerCan(sc scenario.Scenario) error {
	if n := sc.SenderHosts(); n > 1 && len(sc.Faults) > 0 {
		return fmt.Errorf("sender.replicas %d with faults: a fault acts on one container of its role; run faults with one sending host", n)
	}
	return nil
}

// sendingHosts is the result's count of sending hosts: 0 (left out) for one.
func sendingHosts(sc scenario.Scenario) int {
	if n := sc.SenderHosts(); n > 1 {
		return n
	}
	return 0
}

// errOneSender is why docker compose cannot run n sending hosts.
func errOneSender(n int) error {
	return fmt.Errorf("sender.replicas %d: docker-compose.yml has one sender; run several sending hosts with go run ./cmd/lab run (or --engine swarm)", n)
}

// SwarmCan says why the swarm engine cannot run sc, if it cannot: as with
// docker compose, the services are the lab's Go roles, and the lab does
// not own their containers to kill, pause or cut off.
func SwarmCan(sc scenario.Scenario) error {
	for _, svc := range topology.Services() {
		if impl := implOf(sc, svc.Name); impl != scenario.ImplGo {
			return fmt.Errorf("%s.impl %s: the swarm engine runs the Go roles only; run real MTAs with go run ./cmd/lab run", svc.Name, impl)
		}
	}
	if sc.Receiver.Relay() {
		return fmt.Errorf("receiver.evidence relay: the swarm engine runs no final receiver; run the relay topology with go run ./cmd/lab run")
	}
	if len(sc.Faults) > 0 {
		return fmt.Errorf("faults: on the swarm engine the lab does not own the roles' containers to kill, pause or partition them; run faults with go run ./cmd/lab run")
	}
	return nil
}

// SwarmOptions are a swarm run's, on the host.
type SwarmOptions struct {
	ResultsDir string // bound into the runner; made when missing
	// ScenarioPath is the scenario's path as the user gave it (a file, or
	// a shipped scenario's name): the runner reads the run's copy of the
	// scenario there.
	ScenarioPath   string
	Stdout, Stderr io.Writer // the runner's output, as it comes
	Progress       io.Writer // the host's own status lines
}

func (o SwarmOptions) say(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// swarmServices are the topology's services as swarm services: identd is
// served by the sender's process (a service has a network namespace of
// its own, so the two cannot share one as containers do), the sender's
// control port first, whose spec `lab sendmail` reads.
func swarmServices(sc scenario.Scenario) []stack.SwarmService {
	l := sc.Limits // as the docker engine's containers have them (start.go)
	lim := stack.Limits{MemoryBytes: int64(l.MemoryMB) << 20, Pids: int64(l.Pids)}
	var out []stack.SwarmService
	for _, s := range topology.Services() {
		if s.NetNSOf != "" {
			continue // served by the host it shares a network with
		}
		svc := stack.SwarmService{Name: string(s.Name), Command: s.AwaitCommand(), Replicas: 1, User: topology.RoleUser, Volumes: topology.Writable(), Limits: lim}
		if s.Name == topology.Sender {
			svc.Replicas = sc.SenderHosts()
		}
		out = append(out, svc)
	}
	return out
}

// ScenarioCopies is the pattern (filepath.Glob, in os.TempDir()) of the
// folders holding swarm runs' copies of their scenario, or of one run's
// when runID is not empty: what `lab clean` removes after a killed run.
func ScenarioCopies(runID string) string {
	return filepath.Join(os.TempDir(), "smtplab-"+cmp.Or(runID, "swarm")+"-*")
}

// RunOnSwarm runs the scenario whose text is text (opt.ScenarioPath
// names it) on Docker Swarm and returns the runner's exit code (the run's:
// lab/cli's exit codes). The runner reads a copy of text, which the run
// writes to a folder of its own (ScenarioCopies) and removes last: what
// was checked here is what runs, a shipped scenario included, and a
// killed run's copy is found by `lab clean`. The engine's swarm is used
// if it is in one, as a manager; else a single-node swarm is made for the
// run and left after it.
func RunOnSwarm(ctx context.Context, text []byte, sc scenario.Scenario, opt SwarmOptions) (code int, err error) {
	if err := sc.Validate(); err != nil {
		return -1, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	if err := SwarmCan(sc); err != nil {
		return -1, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	results, err := filepath.Abs(cmp.Or(opt.ResultsDir, "results"))
	if err != nil {
		return -1, err
	}
	if err := os.MkdirAll(results, 0o755); err != nil {
		return -1, fmt.Errorf("results: %w", err)
	}
	eng, err := stack.Connect(ctx)
	if err != nil {
		return -1, err
	}
	defer eng.Close()
	opt.say("swarm: checking the lab's image: compiling the lab, building an image only when it changed")
	img, err := stack.BuildLabImage(ctx, eng, func(f string, a ...any) { opt.say(f, a...) })
	if err != nil {
		return -1, err
	}
	runID := "swarm-" + time.Now().UTC().Format("20060102-150405")
	copyDir, err := os.MkdirTemp("", "smtplab-"+runID+"-") // as ScenarioCopies(runID) says
	if err != nil {
		return -1, err
	}
	defer os.RemoveAll(copyDir) // after the swarm's objects (deferred below): the runner reads it to the end
	scenarioFile := filepath.Join(copyDir, "scenario.yaml")
	if err := os.WriteFile(scenarioFile, text, 0o644); err != nil {
		return -1, err
	}
	opt.say("swarm run %s: creating its overlay network", runID)
	sw, err := stack.NewSwarm(ctx, eng, runID)
	if err != nil {
		return -1, err
	}
	if sw.Made() {
		opt.say("swarm: this engine was in no swarm; made a single-node swarm for run %s (left after it)", runID)
	}
	defer func() {
		opt.say("swarm: removing run %s's services, network and volumes", runID)
		if cerr := sw.Close(ctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up swarm run %s (try: go run ./cmd/lab clean): %w", runID, cerr))
		}
	}()
	svcs := swarmServices(sc)
	for _, s := range svcs {
		opt.say("swarm: creating service %s (%d replica(s))", s.Name, s.Replicas)
		if err := sw.Service(ctx, s, img.Ref); err != nil {
			return -1, err
		}
	}
	for _, s := range svcs {
		opt.say("swarm: waiting for service %s's tasks to run", s.Name)
		if err := sw.WaitRunning(ctx, s.Name, s.Replicas); err != nil {
			return -1, err
		}
	}
	env, _ := json.Marshal(report.Environment{LabVersion: img.Version, EngineVersion: eng.Version, Image: img.Ref, ImageID: img.ID,
		ImageBuilt: img.Built, CPUs: eng.CPUs, MemoryBytes: eng.Memory})
	// The runner sees the scenario and the results folder at the paths
	// they have here, in this folder, so that the report it prints names
	// them as a run on this engine would.
	cwd, err := os.Getwd()
	if err != nil {
		return -1, err
	}
	asGiven, err := filepath.Abs(opt.ScenarioPath)
	if err != nil {
		return -1, err
	}
	r := stack.Runner{
		Command: []string{"runner", "--engine", "swarm", "--scenario", opt.ScenarioPath, "--results", cmp.Or(opt.ResultsDir, "results")},
		User:    fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()), Dir: cwd,
		Binds: []string{scenarioFile + ":" + asGiven + ":ro", results + ":" + results},
		Env:   []string{swarmEnvironment + "=" + string(env)},
	}
	opt.say("swarm: starting the runner on the overlay network (results to %s)", results)
	return sw.Run(ctx, r, img.Ref, opt.Stdout, opt.Stderr)
}

// RunSwarm runs sc on roles that the swarm engine started (RunOnSwarm),
// from the runner's container on their overlay network: as RunCompose,
// with every sender replica found and played as one sender.
func RunSwarm(ctx context.Context, sc scenario.Scenario, opt Options) (*Result, error) {
	env := func() (report.Environment, error) {
		env := report.Environment{LabVersion: "swarm"}
		if e := os.Getenv(swarmEnvironment); e != "" {
			if err := json.Unmarshal([]byte(e), &env); err != nil {
				return env, fmt.Errorf("%s: %w", swarmEnvironment, err)
			}
		}
		env.Network, env.Senders = "swarm overlay", sendingHosts(sc)
		return env, nil
	}
	return runStarted(ctx, sc, opt, SwarmCan, env, configureSwarm)
}

// configureSwarm finds the swarm services, each sender replica by the
// service's task addresses, gives each role its spec, in topology order,
// then the DNS stub the zone with every sender's address.
func configureSwarm(ctx context.Context, p Plan, say func(string, ...any)) (running, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	n := p.Scenario.SenderHosts()
	a := Addrs{}
	var senderIPs []string
	for _, s := range topology.Services() {
		if s.NetNSOf != "" {
			continue
		}
		want := 1
		if s.Name == topology.Sender {
			want = n
		}
		ips, err := lookupAll(ctx, "tasks."+string(s.Name), want)
		if err != nil {
			return running{}, err
		}
		a[s.Name] = ips[0]
		if s.Name == topology.Sender {
			senderIPs = ips
		}
	}
	say("swarm: dns %s, receiver %s, %d sender(s) %v, each serving its identd", a[topology.DNS], a[topology.Receiver], n, senderIPs)
	var hs []Handle
	var sends []SenderHandle
	for _, s := range topology.Services() {
		hosts := []string{a[s.Name]}
		if s.Name == topology.Sender || s.NetNSOf == topology.Sender {
			hosts = senderIPs
		}
		for _, ip := range hosts {
			h := role.NewHandle(s.Name, "http://"+net.JoinHostPort(ip, s.Control), nil)
			if err := h.Configure(ctx, p.Spec(s.Name, a)); err != nil {
				return running{}, fmt.Errorf("swarm service %w", err)
			}
			if s.Name == topology.Sender {
				sends = append(sends, h)
				continue
			}
			hs = append(hs, h)
		}
		if s.Name == topology.Sender {
			hs = append(hs, newSenders(sends))
		}
	}
	r, err := roles(hs)
	if err != nil {
		return r, err
	}
	return r, r.dns.SetZone(ctx, p.ZoneOf(a, senderIPs))
}

// lookupAll resolves a service's name to want addresses (Docker's DNS:
// a compose service's name, a swarm service's tasks as "tasks.NAME"),
// waiting while the service starts; sorted, so that the first is the
// same on every call.
func lookupAll(ctx context.Context, host string, want int) ([]string, error) {
	var got []string
	for {
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", host)
		got = got[:0]
		for _, ip := range ips {
			got = append(got, ip.String())
		}
		if err == nil && len(got) >= want {
			slices.Sort(got)
			return got[:want], nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("service %s: %d of %d addresses (%v); is it defined and up?", host, len(got), want, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
