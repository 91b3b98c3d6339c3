package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/smtplab/smtplab/lab/dnsstub"
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
	// replicas are every host of a role played by several (sender.replicas:
	// the sender and the identd in its network namespace), in order.
	// Empty with one sending host.
	replicas map[topology.Role][]*stack.Container
	opt      Options // where it says what it starts and waits for
}

// player starts what plays one role (a topology service) and returns its
// container and its handle.
type player func(ctx context.Context, s *starter, svc topology.Service) (*stack.Container, Handle, error)

// players are what can play a role, by scenario impl. A new kind is a new
// entry (and a file), not a new branch in the run.
var players = map[string]player{
	scenario.ImplGo:       startGoRole,
	scenario.ImplCourier:  startMTA,
	scenario.ImplPostfix:  startMTA,
	scenario.ImplExim:     startMTA,
	scenario.ImplImage:    startImage,
	scenario.ImplExternal: startExternal,
}

// start starts every role and gives the DNS stub the live topology.
func (s *starter) start(ctx context.Context) (running, error) {
	s.addrs, s.cs, s.replicas = Addrs{}, map[topology.Role]*stack.Container{}, map[topology.Role][]*stack.Container{}
	n := s.plan.Scenario.SenderHosts()
	var hs []Handle
	for _, svc := range topology.Services() {
		if n > 1 && svc.NetNSOf == topology.Sender {
			continue // started with each sending host (startSenders)
		}
		if n > 1 && svc.Name == topology.Sender {
			more, err := s.startSenders(ctx, svc, n)
			if err != nil {
				return running{}, err
			}
			hs = append(hs, more...)
			continue
		}
		impl := s.plan.Impl(svc.Name)
		play, ok := players[impl]
		if !ok {
			return running{}, fmt.Errorf("%s: nothing here can play %q", svc.Name, impl)
		}
		var final *role.Handle
		if svc.Name == topology.Receiver && s.plan.Scenario.Receiver.Relay() {
			// Up before the receiver that relays to it.
			var err error
			if final, err = s.startFinal(ctx); err != nil {
				return running{}, err
			}
		}
		c, h, err := play(ctx, s, svc)
		if err != nil {
			return running{}, err
		}
		if c != nil { // nil: a receiver outside Docker
			s.addrs[svc.Name], s.cs[svc.Name] = c.IP, c
		}
		if final != nil {
			h = relayed(h.(ReceiverHandle), final)
		}
		hs = append(hs, h)
	}
	r, err := roles(hs)
	if err != nil {
		return r, err
	}
	r.mem = newMemoryWatch(s.cs, s.replicas, len(s.plan.Injection.Messages))
	return r, r.dns.SetZone(ctx, s.zone())
}

// zone is the DNS stub's zone of the live topology, with every sending
// host's address (nil: the one sender's).
func (s *starter) zone() dnsstub.Zone {
	var senders []string
	for _, c := range s.replicas[topology.Sender] {
		senders = append(senders, c.IP)
	}
	return s.plan.ZoneOf(s.addrs, senders)
}

// startSenders starts n sending hosts, each a Go sender with the services
// in its network namespace (its identd), all answering to the sender's
// name on the lab network, and plays them as one sender (senders.go).
// The first is the sender of the run's addresses; the zone has every one
// (Plan.ZoneOf).
func (s *starter) startSenders(ctx context.Context, svc topology.Service, n int) ([]Handle, error) {
	var sends []SenderHandle
	var rest []Handle
	for k := range n {
		s.opt.say("sending host %d of %d", k+1, n)
		c, h, err := startGoRole(ctx, s, svc)
		if err != nil {
			return nil, fmt.Errorf("%s-%d: %w", svc.Name, k+1, err)
		}
		sh, ok := h.(SenderHandle)
		if !ok {
			return nil, fmt.Errorf("%T cannot play %s", h, svc.Name)
		}
		sends = append(sends, sh)
		if k == 0 {
			s.addrs[svc.Name] = c.IP
		}
		s.cs[svc.Name] = c // what the services below join
		s.replicas[svc.Name] = append(s.replicas[svc.Name], c)
		for _, o := range svc.Sharing()[1:] {
			oc, oh, err := startGoRole(ctx, s, o)
			if err != nil {
				return nil, fmt.Errorf("%s-%d: %w", o.Name, k+1, err)
			}
			s.cs[o.Name] = oc
			s.replicas[o.Name] = append(s.replicas[o.Name], oc)
			rest = append(rest, oh)
		}
	}
	s.cs[svc.Name] = s.replicas[svc.Name][0]
	return append([]Handle{newSenders(sends)}, rest...), nil
}

// container is what every role's container has from the topology: its
// name, the namespace it joins, the ports it exposes for a service that
// joins it, and that service's name as an alias (the sender's host also
// answers as identd).
func (s *starter) container(svc topology.Service) stack.Spec {
	l := s.plan.Scenario.Limits
	spec := stack.Spec{Role: svc.Name, Expose: svc.Exposes,
		Limits: stack.Limits{MemoryBytes: int64(l.MemoryMB) << 20, Pids: int64(l.Pids)}}
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
	// A program the lab wrote needs no privilege: it runs as nobody with
	// every capability dropped, binds its port under 1024 (53, 25, 113)
	// by its namespace's sysctl (stack.Spec.User), and writes only its
	// volumes. (Real MTAs keep root, a writable root and MTACaps: the
	// lab writes their configuration into /etc before they start, and
	// they change users, chown their queues and bind as root. An image
	// the user brings keeps the engine's defaults: the lab knows nothing
	// of what it needs.)
	cs.Caps, cs.NoNewPrivileges = []string{}, true
	cs.User, cs.ReadOnly, cs.Volumes = topology.RoleUser, true, topology.Writable()
	if r := s.plan.Scenario.Receiver; svc.Name == topology.Sender && r.Impl == scenario.ImplExternal {
		// Its routes lead outside Docker, perhaps to the machine running it.
		cs.ExtraHosts = []string{scenario.HostDockerInternal + ":host-gateway"}
	}
	if svc.Name == topology.Final {
		if e := s.plan.Scenario.Receiver.External; e != nil {
			cs.Publish = map[string]string{svc.Port(): e.Final} // for the server outside to relay to
		}
	}
	c, err := s.run(ctx, cs, scenario.ImplGo)
	if err != nil {
		return nil, nil, err
	}
	return c, role.NewHandle(svc.Name, c.Control, c.Locate), nil
}

// run starts cs's container (what plays its role: impl), saying first
// what the start waits for, as it may take a while (a real MTA's start,
// a slow engine).
func (s *starter) run(ctx context.Context, cs stack.Spec, impl string) (*stack.Container, error) {
	up := fmt.Sprintf("it to print %q", cs.Ready)
	switch {
	case cs.ReadyPort != "":
		up = "its port " + cs.ReadyPort + " to take connections"
	case cs.ReadyRegexp:
		up = fmt.Sprintf("its output to match %q", cs.Ready)
	}
	s.opt.say("starting %s (%s): waiting for %s", cs.Role, impl, up)
	return s.st.Start(ctx, cs)
}

// MTACaps are the capabilities a real MTA keeps: the engine's defaults
// (moby's oci/caps/defaults.go) but raw sockets, device nodes, audit
// records and file capabilities, none of which an MTA uses. What it keeps
// it needs as root: binding port 25, changing to its users and to the
// recipient's, chown and chmod of its queue and Maildirs across owners,
// chroot (Postfix's services), signalling its children.
var MTACaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT"}

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
	// A writable root: its start script points /etc/resolv.conf at the
	// lab's DNS (images/*/smtplab-start.sh), which the engine mounts
	// read-only under a read-only root.
	cs.Caps = MTACaps
	cs.Labels = map[string]string{stack.LabelRole + ".mta": impl}
	c, err := s.run(ctx, cs, impl)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s)", err, impl)
	}
	return c, mta.NewHandle(svc.Name, impl, c, s.plan.Scenario.Receiver.Maildir), nil
}

// imageKey is where a run keeps the image the user brings for role
// (receiver.image, sender.image) among its images.
func imageKey(role topology.Role) string { return scenario.ImplImage + "/" + string(role) }

// startImage starts the receiver or the sender from the user's own image
// (impl image): its files, environment and command as the scenario gives
// them, the lab's DNS bound over its /etc/resolv.conf, up when its SMTP
// port (a sender's submission port) takes connections, or its output
// matches ready_log. The lab knows nothing of its internals: a
// receiver's evidence is the Maildir the scenario names (or the relay
// topology), read in the container as a real MTA's is (lab/mta), with no
// mail log; a sender is given the workload and the lab's injection loop
// runs in it (the image was built with the lab's /lab, stack.LabOver),
// through its sendmail or its submission port.
func startImage(ctx context.Context, s *starter, svc topology.Service) (*stack.Container, Handle, error) {
	sc := s.plan.Scenario
	im, key := sc.Receiver.Image, "receiver.image"
	if svc.Name == topology.Sender {
		im, key = sc.Sender.Image, "sender.image"
	}
	cs := s.container(svc)
	cs.Image, cs.Env, cs.Cmd, cs.Wait = s.images[imageKey(svc.Name)], im.Env, im.Cmd, 90*time.Second
	cs.Files = map[string][]byte{}
	for _, f := range im.Files {
		cs.Files[f.Path] = []byte(f.Content)
	}
	cs.ResolvConf = []byte("nameserver " + s.addrs[topology.DNS] + "\n")
	port := strconv.Itoa(im.SMTPPort())
	if im.Submission != 0 {
		port = strconv.Itoa(im.Submission)
	}
	if im.ReadyLog != "" {
		cs.Ready, cs.ReadyRegexp = im.ReadyLog, true
	} else {
		cs.ReadyPort = port
	}
	cs.Labels = map[string]string{stack.LabelRole + ".mta": scenario.ImplImage}
	if svc.Name == topology.Sender {
		cs.Files[topology.WorkloadPath] = s.plan.Workload()
	}
	c, err := s.run(ctx, cs, "image "+im.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s %s)", err, key, im.Name)
	}
	h := mta.NewHandle(svc.Name, scenario.ImplImage, c, sc.Receiver.Maildir).WithSMTPPort(im.SMTPPort())
	if svc.Name == topology.Receiver && sc.Receiver.Evidence == scenario.EvidenceMbox {
		h = h.WithMbox(sc.Receiver.Mbox)
	}
	if svc.Name == topology.Sender {
		h = h.WithInjection(im.Sendmail, im.Submission)
	}
	return c, h, nil
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
			return r.dns.SetZone(ctx, s.zone())
		}
		return nil
	}
	return newOutages(sched, targets, restored), nil
}
