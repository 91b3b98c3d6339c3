package stack

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/moby/moby/api/types/container"
	tc "github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// MTASpec is a real MTA's container in one role of a run.
type MTASpec struct {
	Role  string            // "receiver" or "sender": its name on the lab network
	MTA   string            // "courier", "postfix"
	Image Image             // from BuildImages
	Files map[string][]byte // written into the container before it starts (lab/mta)
}

// ReadyLine is what images/<mta>/smtplab-start.sh prints once the MTA is up.
func (m MTASpec) ReadyLine() string { return fmt.Sprintf("smtplab %s %s ready", m.MTA, m.Role) }

// StartMTA runs a real MTA's image in a role, with its configuration
// files, and waits for its start script's ready line. The container runs
// with an init (couriertcpd's finished children are reaped) and has no
// control port: the lab reads it with Exec and CopyDir. Expose and Alias
// apply as for Start (the sender's host also answers as identd).
func (s *Stack) StartMTA(ctx context.Context, spec MTASpec, opts ...StartOption) (*Container, error) {
	var cfg startConfig
	for _, o := range opts {
		o(&cfg)
	}
	labels := map[string]string{LabelRole: spec.Role, LabelRole + ".mta": spec.MTA}
	for k, v := range s.labels {
		labels[k] = v
	}
	paths := make([]string, 0, len(spec.Files))
	for p := range spec.Files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	files := slices.Clone(cfg.files)
	for _, p := range paths {
		files = append(files, WithFileMode(p, spec.Files[p], 0o644))
	}
	var ports []string
	for _, p := range cfg.expose {
		ports = append(ports, p+"/tcp")
	}
	custom := []tc.ContainerCustomizer{
		tc.WithLabels(labels),
		tc.WithFiles(files...),
		tc.WithWaitStrategy(wait.ForLog(spec.ReadyLine()).WithStartupTimeout(90 * time.Second)),
		tc.WithHostConfigModifier(func(hc *container.HostConfig) {
			init := true
			hc.Init = &init
		}),
		network.WithNetwork(append([]string{spec.Role}, cfg.aliases...), s.net),
	}
	if len(ports) > 0 {
		custom = append(custom, tc.WithExposedPorts(ports...))
	}
	c, err := tc.Run(ctx, spec.Image.Ref, custom...)
	var out *Container
	if c != nil {
		out = &Container{Role: spec.Role, MTA: spec.MTA, c: c}
		s.mu.Lock()
		s.containers = append(s.containers, out)
		s.mu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("start %s (%s): %w%s", spec.Role, spec.MTA, err, s.logsOf(ctx, c))
	}
	insp, err := c.Inspect(ctx)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Role, err)
	}
	if ep := insp.NetworkSettings.Networks[s.net.Name]; ep != nil && ep.IPAddress.IsValid() {
		out.IP = ep.IPAddress.String()
	}
	if out.IP == "" {
		return nil, fmt.Errorf("start %s: no address on network %s", spec.Role, s.net.Name)
	}
	return out, nil
}

// WithFileMode is a file put into a container before it starts.
func WithFileMode(path string, data []byte, mode int64) tc.ContainerFile {
	return tc.ContainerFile{Reader: bytes.NewReader(data), ContainerFilePath: path, FileMode: mode}
}
