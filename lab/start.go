package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/smtplab/smtplab/lab/mta"
	"github.com/smtplab/smtplab/lab/outage"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// starter starts a run's roles on its stack, one per topology service, in
// topology order, each by what plays it.
type starter struct {
	st     *stack.Stack
	plan   Plan
	images map[string]stack.Image // the real MTAs' images, by name
	addrs  Addrs
	cs     map[topology.Role]*stack.Container
}

// player starts what plays one role (a topology service) and returns its
// container and its handle.
type player func(ctx context.Context, s *starter, svc topology.Service) (*stack.Container, Handle, error)

// players are what can play a role, by scenario impl. A new kind is a new
// entry (and a file), not a new branch in the run.
var players = map[string]player{
	scenario.ImplGo:      startGoRole,
	scenario.ImplCourier: startMTA,
	scenario.ImplPostfix: startMTA,
}

// start starts every role and gives the DNS stub the live topology.
func (s *starter) start(ctx context.Context) (running, error) {
	s.addrs, s.cs = Addrs{}, map[topology.Role]*stack.Container{}
	var hs []Handle
	for _, svc := range topology.Services() {
		impl := s.plan.Impl(svc.Name)
		play, ok := players[impl]
		if !ok {
			return running{}, fmt.Errorf("%s: nothing here can play %q", svc.Name, impl)
		}
		c, h, err := play(ctx, s, svc)
		if err != nil {
			return running{}, err
		}
		s.addrs[svc.Name], s.cs[svc.Name] = c.IP, c
		hs = append(hs, h)
	}
	r, err := roles(hs)
	if err != nil {
		return r, err
	}
	return r, r.dns.SetZone(ctx, s.plan.Zone(s.addrs))
}

// container is what every role's container has from the topology: its
// name, the namespace it joins, the ports it exposes for a service that
// joins it, and that service's name as an alias (the sender's host also
// answers as identd).
func (s *starter) container(svc topology.Service) stack.Spec {
	spec := stack.Spec{Role: svc.Name, Expose: svc.Exposes}
	if svc.NetNSOf != "" {
		spec.NetNSOf = s.cs[svc.NetNSOf]
	}
	for _, o := range topology.Services() {
		if o.NetNSOf == svc.Name {
			spec.Aliases = append(spec.Aliases, string(o.Name))
		}
	}
	return spec
}

// startGoRole starts one of the lab's Go roles from the lab's image with
// its spec, and drives it over its control port.
func startGoRole(ctx context.Context, s *starter, svc topology.Service) (*stack.Container, Handle, error) {
	spec, err := json.Marshal(s.plan.Spec(svc.Name, s.addrs))
	if err != nil {
		return nil, nil, err
	}
	cs := s.container(svc)
	cs.Cmd = []string{"role", "--spec", topology.SpecPath}
	cs.Files = map[string][]byte{topology.SpecPath: spec}
	cs.Ready = role.ReadyLine(svc.Name)
	cs.Control = svc.Control
	c, err := s.st.Start(ctx, cs)
	if err != nil {
		return nil, nil, err
	}
	return c, role.NewHandle(svc.Name, c.Control, c.Locate), nil
}

// startMTA starts a real MTA's image (lab/stack/debian.go) in a role,
// configured by lab/mta, and reads it in its container.
func startMTA(ctx context.Context, s *starter, svc topology.Service) (*stack.Container, Handle, error) {
	impl := s.plan.Impl(svc.Name)
	files, ready, err := mta.Setup(impl, svc.Name, s.plan.Scenario, s.addrs[topology.DNS], s.addrs[topology.Receiver], s.plan.Workload())
	if err != nil {
		return nil, nil, err
	}
	cs := s.container(svc)
	cs.Image, cs.Files, cs.Ready, cs.Wait = s.images[impl], files, ready, 90*time.Second
	cs.Labels = map[string]string{stack.LabelRole + ".mta": impl}
	c, err := s.st.Start(ctx, cs)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s)", err, impl)
	}
	return c, mta.NewHandle(svc.Name, impl, c, s.plan.Scenario.Receiver.Maildir), nil
}

// outages are the run's faults on the mail path (nil when it has none),
// acting on the roles' containers. A role back from one is given again
// what start gave it: the DNS stub its zone.
func (s *starter) outages(r running) (*outages, error) {
	specs := s.plan.Scenario.OutageSpecs()
	if len(specs) == 0 {
		return nil, nil
	}
	sched, err := outage.New(specs, s.plan.Scenario.Seed)
	if err != nil {
		return nil, err
	}
	targets := map[topology.Role]outage.Target{}
	for role, c := range s.cs {
		targets[role] = c
	}
	restored := func(ctx context.Context, role topology.Role) error {
		if role == topology.DNS {
			return r.dns.SetZone(ctx, s.plan.Zone(s.addrs))
		}
		return nil
	}
	return newOutages(sched, targets, restored), nil
}
