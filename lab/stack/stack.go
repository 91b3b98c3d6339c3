package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/smtplab/smtplab/lab/maildir"

	"github.com/smtplab/smtplab/lab/topology"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	tc "github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/smtplab/smtplab/lab/role"
)

// SpecPath is where a role's container finds its role.Spec.
const SpecPath = "/etc/smtplab/role.json"

// ControlPort is the HTTP control port of every role but identd.
const ControlPort = topology.ControlPort

// Stack is one run's network and containers.
type Stack struct {
	eng    *Engine
	image  Image
	runID  string
	labels map[string]string
	net    *tc.DockerNetwork

	mu         sync.Mutex
	containers []*Container // in start order
}

// Container is one running role.
type Container struct {
	Role    string
	IP      string // on the lab network
	Control string // base URL of the control port, reachable from here; "" for a real MTA
	MTA     string // the real MTA in it ("courier", "postfix"); "" for a Go role
	c       *tc.DockerContainer
}

// New creates the run's bridge network.
func New(ctx context.Context, eng *Engine, img Image, runID string) (*Stack, error) {
	configureTestcontainers()
	labels := map[string]string{LabelLab: "1", LabelRun: runID}
	nw, err := network.New(ctx, network.WithLabels(labels), network.WithDriver("bridge"))
	if err != nil {
		return nil, fmt.Errorf("create network: %w", err)
	}
	return &Stack{eng: eng, image: img, runID: runID, labels: labels, net: nw}, nil
}

// Network is the name of the run's network.
func (s *Stack) Network() string { return s.net.Name }

// StartOption changes how a role's container starts.
type StartOption func(*startConfig)

type startConfig struct {
	netnsOf *Container
	files   []tc.ContainerFile
	control string
	expose  []string
	aliases []string
}

// InNetNS starts the container in other's network namespace: it shares
// other's address, as a daemon on the same host would (identd on the
// sending host). Its control port must be one other exposes (Expose).
func InNetNS(other *Container, controlPort string) StartOption {
	return func(c *startConfig) { c.netnsOf, c.control = other, controlPort }
}

// Alias gives the container more names on the lab network (the sender's
// host also answers as "identd": the identd runs in its namespace).
func Alias(names ...string) StartOption {
	return func(c *startConfig) { c.aliases = append(c.aliases, names...) }
}

// Expose publishes extra ports of the container's network namespace, for
// a container that will join it (InNetNS).
func Expose(ports ...string) StartOption {
	return func(c *startConfig) { c.expose = append(c.expose, ports...) }
}

// WithFile puts a file into the container before it starts.
func WithFile(path string, data []byte) StartOption {
	return func(c *startConfig) {
		c.files = append(c.files, tc.ContainerFile{Reader: bytes.NewReader(data), ContainerFilePath: path, FileMode: 0o644})
	}
}

// Start runs one role from the lab image with spec, and waits for its
// ready line. The network alias is the role's name.
func (s *Stack) Start(ctx context.Context, spec role.Spec, opts ...StartOption) (*Container, error) {
	cfg := startConfig{control: ControlPort}
	for _, o := range opts {
		o(&cfg)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Role, err)
	}
	labels := map[string]string{LabelRole: spec.Role}
	for k, v := range s.labels {
		labels[k] = v
	}
	custom := []tc.ContainerCustomizer{
		tc.WithCmd("role", "--spec", SpecPath),
		tc.WithLabels(labels),
		tc.WithFiles(append(cfg.files, tc.ContainerFile{Reader: bytes.NewReader(specJSON), ContainerFilePath: SpecPath, FileMode: 0o644})...),
		tc.WithWaitStrategy(wait.ForLog(role.ReadyLine(spec.Role)).WithStartupTimeout(60 * time.Second)),
		tc.WithHostConfigModifier(func(hc *container.HostConfig) {
			init := true
			hc.Init = &init
		}),
	}
	if cfg.netnsOf != nil {
		other := cfg.netnsOf.c.GetContainerID()
		custom = append(custom, tc.WithHostConfigModifier(func(hc *container.HostConfig) {
			init := true
			hc.Init = &init // the run's init reaps the role's children (the sendmail processes)
			hc.NetworkMode = container.NetworkMode("container:" + other)
		}))
	} else {
		ports := []string{cfg.control + "/tcp"}
		for _, p := range cfg.expose {
			ports = append(ports, p+"/tcp")
		}
		custom = append(custom, network.WithNetwork(append([]string{spec.Role}, cfg.aliases...), s.net), tc.WithExposedPorts(ports...))
	}
	c, err := tc.Run(ctx, s.image.Ref, custom...)
	if c != nil {
		s.mu.Lock()
		s.containers = append(s.containers, &Container{Role: spec.Role, c: c})
		s.mu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w%s", spec.Role, err, s.logsOf(ctx, c))
	}
	out := s.containers[len(s.containers)-1]
	if cfg.netnsOf != nil {
		out.IP = cfg.netnsOf.IP
		ep, err := cfg.netnsOf.c.PortEndpoint(ctx, cfg.control+"/tcp", "http")
		if err != nil {
			return nil, fmt.Errorf("start %s: control port %s not exposed by %s: %w", spec.Role, cfg.control, cfg.netnsOf.Role, err)
		}
		out.Control = ep
	} else {
		insp, err := c.Inspect(ctx)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Role, err)
		}
		if ep := insp.NetworkSettings.Networks[s.net.Name]; ep != nil && ep.IPAddress.IsValid() {
			out.IP = ep.IPAddress.String()
		}
		ep, err := c.PortEndpoint(ctx, cfg.control+"/tcp", "http")
		if err != nil {
			return nil, fmt.Errorf("start %s: control port: %w", spec.Role, err)
		}
		out.Control = ep
	}
	if out.IP == "" {
		return nil, fmt.Errorf("start %s: no address on network %s", spec.Role, s.net.Name)
	}
	return out, nil
}

// logsOf returns the tail of a failed container's output, for errors.
func (s *Stack) logsOf(ctx context.Context, c *tc.DockerContainer) string {
	if c == nil {
		return ""
	}
	rc, err := c.Logs(ctx)
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 8192))
	if len(b) == 0 {
		return ""
	}
	return "\ncontainer output:\n" + string(b)
}

// Exec runs cmd in c and returns its exit code and output.
func (c *Container) Exec(ctx context.Context, cmd ...string) (int, []byte, error) {
	code, r, err := c.c.Exec(ctx, cmd, tcexec.Multiplexed())
	if err != nil {
		return code, nil, fmt.Errorf("exec in %s: %w", c.Role, err)
	}
	out, err := io.ReadAll(r)
	return code, out, err
}

// Client talks to c's control port.
func (c *Container) Client() role.Client { return role.Client{Role: c.Role, Base: c.Control} }

// Get fetches path from c's control port.
func (c *Container) Get(ctx context.Context, path string) ([]byte, error) {
	return c.Client().Get(ctx, path)
}

// Post sends body to path on c's control port.
func (c *Container) Post(ctx context.Context, path string, body []byte) error {
	_, err := c.Client().Post(ctx, path, body)
	return err
}

// CopyDir copies folder src out of c into dst on this machine (a real copy
// of the files, through the engine's archive API).
func (c *Container) CopyDir(ctx context.Context, eng *Engine, src, dst string) error {
	res, err := eng.CopyFromContainer(ctx, c.c.GetContainerID(), client.CopyFromContainerOptions{SourcePath: src})
	if err != nil {
		return fmt.Errorf("copy %s from %s: %w", src, c.Role, err)
	}
	defer res.Content.Close()
	if err := maildir.Extract(res.Content, dst); err != nil {
		return fmt.Errorf("copy %s from %s: %w", src, c.Role, err)
	}
	return nil
}

// Close removes every container (newest first: identd leaves the sender's
// namespace before the sender goes) and the network. It uses its own
// deadline, so it also runs after the run's context was cancelled.
func (s *Stack) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s.mu.Lock()
	cs := s.containers
	s.containers = nil
	s.mu.Unlock()
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		t := time.Duration(0)
		if err := cs[i].c.Terminate(ctx, tc.StopTimeout(t)); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", cs[i].Role, err))
		}
	}
	if err := s.net.Remove(ctx); err != nil {
		errs = append(errs, fmt.Errorf("remove network: %w", err))
	}
	return errors.Join(errs...)
}
