package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// The swarm a lab run makes when the engine is in none, on this node
// only: the manager listens on loopback (a multi-node swarm is the
// user's, joined before the run: docs/SWARM.md), and overlay subnets come
// from a pool apart from Docker's default bridges and the lab's own.
const (
	swarmListen  = "127.0.0.1:2377"
	swarmPool    = "10.199.0.0/16"
	gwBridge     = "docker_gwbridge" // made by the engine on init; outlives a leave
	swarmTimeout = 2 * time.Minute   // for tasks to run, and to be gone
)

// Swarm is one lab run's services on a Docker swarm: its overlay
// network, its services and the runner's container, all labelled with
// the run's id. Close removes them, and leaves the swarm when the run
// made it.
type Swarm struct {
	eng      *Engine
	runID    string
	made     bool // the run initialised the swarm: Close leaves it
	net      string
	services []string
	runner   string
}

// SwarmService is one role as a swarm service.
type SwarmService struct {
	Name     string   // the service's name, which resolves on the overlay
	Command  []string // the lab image's arguments
	Replicas int
	User     string
	Volumes  []string // writable folders, each an anonymous volume
	Limits   Limits
}

// Runner is a one-shot container on the run's overlay network: the lab
// inside the swarm, since the host cannot reach overlay addresses.
type Runner struct {
	Command []string
	User    string
	Dir     string
	Binds   []string // host:container[:ro]
	Env     []string
}

// NewSwarm makes the run's overlay network, first initialising a
// single-node swarm if the engine is in none. An engine in a swarm must be
// a manager of it.
func NewSwarm(ctx context.Context, eng *Engine, runID string) (*Swarm, error) {
	s := &Swarm{eng: eng, runID: runID}
	info, err := eng.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("swarm: %w", err)
	}
	switch st := info.Info.Swarm; {
	case st.LocalNodeState == swarm.LocalNodeStateInactive:
		pool := netip.MustParsePrefix(swarmPool)
		_, err := eng.SwarmInit(ctx, client.SwarmInitOptions{
			ListenAddr: swarmListen, AdvertiseAddr: "127.0.0.1",
			DefaultAddrPool: []netip.Prefix{pool}, SubnetSize: 24,
			Spec: swarm.Spec{Annotations: swarm.Annotations{Labels: map[string]string{LabelLab: "1", LabelRun: runID}}},
		})
		if err != nil {
			return nil, fmt.Errorf("swarm init: %w", err)
		}
		s.made = true
	case st.LocalNodeState == swarm.LocalNodeStateActive && st.ControlAvailable:
	case st.LocalNodeState == swarm.LocalNodeStateActive:
		return nil, fmt.Errorf("swarm: this engine is a worker of a swarm; run the lab on a manager")
	default:
		return nil, fmt.Errorf("swarm: this engine's swarm state is %q; wait, or leave it (docker swarm leave)", st.LocalNodeState)
	}
	nw, err := eng.NetworkCreate(ctx, "smtplab-"+runID, client.NetworkCreateOptions{
		Driver: "overlay", Scope: "swarm", Attachable: true, Labels: s.labels(""),
	})
	if err != nil {
		s.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("swarm network: %w", err)
	}
	s.net = nw.ID
	return s, nil
}

// Made says whether the run initialised the swarm.
func (s *Swarm) Made() bool { return s.made }

func (s *Swarm) labels(role string) map[string]string {
	l := map[string]string{LabelLab: "1", LabelRun: s.runID}
	if role != "" {
		l[LabelRole] = role
	}
	return l
}

// Service creates svc, hardened as the lab's containers are (lab/stack
// Start): its user, a read-only root but for its volumes, no capability,
// the unprivileged-port sysctl, memory and pids limits, no restart. Each
// replica resolves by the service's name (DNS round robin: no virtual IP
// between sender and receiver, whose checks read the client's address).
// The engine drops no-new-privileges from a service: a service cannot
// ask for it.
func (s *Swarm) Service(ctx context.Context, svc SwarmService, image string) error {
	cs := &swarm.ContainerSpec{
		Image: image, Args: svc.Command, Labels: s.labels(svc.Name), User: svc.User,
		ReadOnly: true, CapabilityDrop: []string{"ALL"},
		Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
	}
	for _, v := range svc.Volumes {
		cs.Mounts = append(cs.Mounts, mount.Mount{Type: mount.TypeVolume, Target: v,
			VolumeOptions: &mount.VolumeOptions{Labels: s.labels(svc.Name)}})
	}
	n := uint64(max(1, svc.Replicas))
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: svc.Name, Labels: s.labels(svc.Name)},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: cs,
			Resources:     &swarm.ResourceRequirements{Limits: &swarm.Limit{MemoryBytes: svc.Limits.MemoryBytes, Pids: svc.Limits.Pids}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: s.net}},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
	// No registry is asked: the image is this node's own (and each other
	// node's, loaded there: docs/SWARM.md).
	res, err := s.eng.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: spec, QueryRegistry: false})
	if err != nil && (strings.Contains(err.Error(), "already exists") || strings.Contains(err.Error(), "name conflicts")) {
		return fmt.Errorf("swarm service %s: %w (one lab run at a time on a swarm: the services are named for their roles; if no run is going on, go run ./cmd/lab clean removes what a killed one left)", svc.Name, err)
	}
	if err != nil {
		return fmt.Errorf("swarm service %s: %w", svc.Name, err)
	}
	s.services = append(s.services, res.ID)
	return nil
}

// WaitRunning waits until the service called name has n tasks running;
// a task the swarm failed or rejected (a missing image, a bad mount) is
// an error naming why.
func (s *Swarm) WaitRunning(ctx context.Context, name string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, swarmTimeout)
	defer cancel()
	f := make(client.Filters).Add("service", name).Add("label", LabelRun+"="+s.runID)
	for {
		list, err := s.eng.TaskList(ctx, client.TaskListOptions{Filters: f})
		if err != nil {
			return fmt.Errorf("swarm service %s: %w", name, err)
		}
		running := 0
		for _, t := range list.Items {
			switch t.Status.State {
			case swarm.TaskStateRunning:
				running++
			case swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateShutdown, swarm.TaskStateComplete, swarm.TaskStateOrphaned:
				return fmt.Errorf("swarm service %s: a task is %s: %s %s", name, t.Status.State, t.Status.Message, t.Status.Err)
			}
		}
		if running >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("swarm service %s: %d of %d tasks running: %w", name, running, n, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Run runs r's container on the run's overlay network until it exits,
// its output copied to stdout and stderr as it comes, and returns its
// exit code. Ending ctx stops it.
func (s *Swarm) Run(ctx context.Context, r Runner, image string, stdout, stderr io.Writer) (int, error) {
	c, err := s.eng.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Cmd: r.Command, User: r.User, WorkingDir: r.Dir, Env: r.Env, Labels: s.labels("runner")},
		HostConfig: &container.HostConfig{Binds: r.Binds},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			s.net: {Aliases: []string{"runner"}},
		}},
		Name: "smtplab-" + s.runID + "-runner",
	})
	if err != nil {
		return -1, fmt.Errorf("swarm runner: %w", err)
	}
	s.runner = c.ID
	if _, err := s.eng.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return -1, fmt.Errorf("swarm runner: %w", err)
	}
	logs, err := s.eng.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return -1, fmt.Errorf("swarm runner: %w", err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		defer logs.Close()
		stdcopy.StdCopy(stdout, stderr, logs)
	}()
	// Ending ctx (Ctrl-C) stops the runner as it stops the lab: SIGTERM,
	// on which it writes what it measured, then SIGKILL after a minute.
	wctx := context.WithoutCancel(ctx)
	wait := s.eng.ContainerWait(wctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			timeout := 60
			s.eng.ContainerStop(wctx, c.ID, client.ContainerStopOptions{Signal: "SIGTERM", Timeout: &timeout})
		case <-stopped:
		}
	}()
	defer close(stopped)
	select {
	case res := <-wait.Result:
		<-copied
		if ctx.Err() != nil {
			return int(res.StatusCode), ctx.Err()
		}
		if res.Error != nil {
			return -1, fmt.Errorf("swarm runner: %s", res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-wait.Error:
		return -1, fmt.Errorf("swarm runner: %w", err)
	}
}

// Close removes the run from the swarm: the runner, the services, and,
// once their tasks' containers are gone, the network and the volumes;
// then leaves the swarm if the run made it. It goes on past errors and
// returns them all.
func (s *Swarm) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), swarmTimeout)
	defer cancel()
	var errs []error
	if s.runner != "" {
		if _, err := s.eng.ContainerRemove(ctx, s.runner, client.ContainerRemoveOptions{Force: true}); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, removeSwarmRun(ctx, s.eng, s.runID))
	if s.made {
		errs = append(errs, leaveSwarm(ctx, s.eng))
	}
	return errors.Join(errs...)
}

// removeSwarmRun removes the services, networks and volumes labelled
// with the run's id (every run's with runID empty), waiting for the
// services' task containers to go first: a network or a volume in use
// cannot be removed.
func removeSwarmRun(ctx context.Context, eng *Engine, runID string) error {
	f := make(client.Filters).Add("label", LabelLab+"=1")
	if runID != "" {
		f.Add("label", LabelRun+"="+runID)
	}
	var errs []error
	if services, err := eng.ServiceList(ctx, client.ServiceListOptions{Filters: f}); err == nil {
		for _, svc := range services.Items {
			if _, err := eng.ServiceRemove(ctx, svc.ID, client.ServiceRemoveOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("remove service %s: %w", svc.Spec.Name, err))
			}
		}
	} else if !notInSwarm(err) {
		errs = append(errs, fmt.Errorf("list services: %w", err))
	}
	// A runner still running holds the overlay network: it goes first.
	runners := make(client.Filters).Add("label", LabelLab+"=1").Add("label", LabelRole+"=runner")
	if runID != "" {
		runners.Add("label", LabelRun+"="+runID)
	}
	if list, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: runners}); err == nil {
		for _, c := range list.Items {
			if _, err := eng.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
				errs = append(errs, fmt.Errorf("remove the runner: %w", err))
			}
		}
	}
	tasks := make(client.Filters).Add("label", LabelLab+"=1").Add("label", "com.docker.swarm.service.id")
	if runID != "" {
		tasks.Add("label", LabelRun+"="+runID)
	}
	for {
		list, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: tasks})
		if err != nil || len(list.Items) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%d task containers of the swarm services still there: %w", len(list.Items), ctx.Err()))
			return errors.Join(errs...)
		case <-time.After(250 * time.Millisecond):
		}
	}
	if nets, err := eng.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range nets.Items {
			if n.Driver != "overlay" {
				continue // a docker engine run's bridge: Clean's
			}
			if err := retry(ctx, func() error {
				_, err := eng.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
				return err
			}); err != nil {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			}
		}
	}
	if vols, err := eng.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err == nil {
		for _, v := range vols.Items {
			if err := retry(ctx, func() error {
				_, err := eng.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{})
				return err
			}); err != nil {
				errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// retry calls f until it succeeds, for up to 10 s: the engine frees a
// task's network endpoint a moment after its container is gone.
func retry(ctx context.Context, f func() error) error {
	var err error
	for range 40 {
		if err = f(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}

// notInSwarm says err is the engine's "not a swarm manager" answer.
func notInSwarm(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not a swarm manager")
}

// leaveSwarm leaves the swarm and removes the gateway bridge the engine
// made for it (which a leave does not).
func leaveSwarm(ctx context.Context, eng *Engine) error {
	if _, err := eng.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err != nil {
		return fmt.Errorf("swarm leave: %w", err)
	}
	err := retry(ctx, func() error {
		_, err := eng.NetworkRemove(ctx, gwBridge, client.NetworkRemoveOptions{})
		if err != nil && strings.Contains(err.Error(), "not found") {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("remove %s: %w", gwBridge, err)
	}
	return nil
}

// CleanSwarm removes what swarm runs left (a run killed before its Close):
// every service, overlay network and volume with the lab's label (with
// runID set, only that run's), then leaves the swarm if a run of the lab
// made it and nothing else runs in it. It says whether it left.
func CleanSwarm(ctx context.Context, eng *Engine, runID string) (left bool, err error) {
	info, err := eng.Info(ctx, client.InfoOptions{})
	if err != nil {
		return false, fmt.Errorf("clean swarm: %w", err)
	}
	if info.Info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || !info.Info.Swarm.ControlAvailable {
		return false, nil
	}
	if err := removeSwarmRun(ctx, eng, runID); err != nil {
		return false, fmt.Errorf("clean swarm: %w", err)
	}
	sw, err := eng.SwarmInspect(ctx, client.SwarmInspectOptions{})
	if err != nil {
		return false, fmt.Errorf("clean swarm: %w", err)
	}
	if sw.Swarm.Spec.Labels[LabelLab] != "1" {
		return false, nil // the user's swarm
	}
	if others, err := eng.ServiceList(ctx, client.ServiceListOptions{}); err != nil || len(others.Items) > 0 {
		return false, err // someone's services run in it
	}
	return true, leaveSwarm(ctx, eng)
}
