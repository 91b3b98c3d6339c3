package lab

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/topology"
)

// RunCompose runs sc on roles that docker compose started
// (docker-compose.yml, generated from lab/topology): each service waits,
// with `lab role --await`, for its spec. RunCompose finds the services by
// name on the compose network, gives each the spec Run would give it
// (Plan.Spec) and the DNS stub its zone, then drives the run as Run does
// and writes the result. It leaves the containers to compose
// (docker-compose down -v).
func RunCompose(ctx context.Context, sc scenario.Scenario, opt Options) (*Result, error) {
	env := func() (report.Environment, error) {
		return report.Environment{LabVersion: "compose", Image: topology.ComposeImage, Network: "compose"}, nil
	}
	return runStarted(ctx, sc, opt, ComposeCan, env, configureCompose)
}

// runStarted runs sc on roles something else started (docker compose,
// the swarm engine), from inside their network: sc checked by can, the
// result's environment from env, the roles found and configured by
// configure, then driven as Run drives them, and the result written.
func runStarted(ctx context.Context, sc scenario.Scenario, opt Options, can func(scenario.Scenario) error,
	env func() (report.Environment, error), configure func(context.Context, Plan, func(string, ...any)) (running, error)) (res *Result, err error) {
	start := time.Now()
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	if err := can(sc); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	e, err := env()
	if err != nil {
		return nil, err
	}
	p := NewPlan(sc)
	res = newResult(sc, start, opt.ResultsDir, e)
	var lastDelivery time.Time
	defer func() { err = writeResult(res, lastDelivery, err) }()

	r, err := configure(ctx, p, opt.say)
	if err != nil {
		return res, err
	}
	lastDelivery, err = drive(ctx, r, p, opt, res, start, nil)
	return res, err
}

// ComposeCan says why docker-compose.yml cannot run sc, if it cannot: its
// services run the lab's Go roles only.
func ComposeCan(sc scenario.Scenario) error {
	for _, svc := range topology.Services() {
		if impl := implOf(sc, svc.Name); impl != scenario.ImplGo {
			return fmt.Errorf("%s.impl %s: docker compose runs the Go roles only; run real MTAs with go run ./cmd/lab run", svc.Name, impl)
		}
	}
	if n := sc.SenderHosts(); n > 1 {
		return errOneSender(n)
	}
	if len(sc.Faults) > 0 {
		return fmt.Errorf("faults: docker compose owns the containers, so the lab cannot kill, pause or partition them; run faults with go run ./cmd/lab run")
	}
	return nil
}

// configureCompose finds the compose services, waits until each awaits its
// spec, and gives it, in topology order; then dns its zone, once every
// address is known.
func configureCompose(ctx context.Context, p Plan, say func(string, ...any)) (running, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	a := Addrs{}
	say("compose: waiting for the services %s to have addresses (their containers started by docker compose)", serviceNames())
	for _, s := range topology.Services() {
		host := s.Name
		if s.NetNSOf != "" {
			host = s.NetNSOf
		}
		lctx, lcancel := context.WithTimeout(ctx, 30*time.Second) // depends_on: the services are started
		ips, err := lookupAll(lctx, string(host), 1)              // Docker's DNS, while compose still creates it
		lcancel()
		if err != nil {
			return running{}, err
		}
		a[s.Name] = ips[0]
	}
	say("compose: dns %s, receiver %s, sender %s (identd in its network)", a[topology.DNS], a[topology.Receiver], a[topology.Sender])
	say("compose: giving each service its spec, waiting for each to answer on its control port")
	var hs []Handle
	for _, s := range topology.Services() {
		h := role.NewHandle(s.Name, "http://"+net.JoinHostPort(a[s.Name], s.Control), nil)
		if err := h.Configure(ctx, p.Spec(s.Name, a)); err != nil {
			return running{}, fmt.Errorf("compose service %w", err)
		}
		hs = append(hs, h)
	}
	r, err := roles(hs)
	if err != nil {
		return r, err
	}
	return r, r.dns.SetZone(ctx, p.Zone(a))
}

// serviceNames lists the compose services, for what the runner waits on.
func serviceNames() string {
	var names []string
	for _, s := range topology.Services() {
		names = append(names, string(s.Name))
	}
	return strings.Join(names, ", ")
}
