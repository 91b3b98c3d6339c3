package stack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	mnet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	tc "github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/topology"
)

// Stack is one run's network and containers.
type Stack struct {
	eng    *Engine
	image  Image
	runID  string
	labels map[string]string
	net    *tc.DockerNetwork

	mu         sync.Mutex
	containers []*Container // in start order
	files      []string     // on this machine, bound into containers: removed by Close

	reaper     *Container // removes the run if the lab dies (reaper.go)
	reaperConn net.Conn   // held open for the run's life
}

// Container is one running role's container.
type Container struct {
	Role    topology.Role
	IP      string // on the lab network
	Control string // base URL of its control port, reachable from here; "" when it has none
	eng     *Engine
	c       *tc.DockerContainer
	st      *Stack
	spec    Spec
	mu      sync.Mutex // IP and Control, which a restart or reconnection may change
}

// New creates the run's bridge network. img is the lab's own image, what
// a Spec without an Image runs.
func New(ctx context.Context, eng *Engine, img Image, runID string) (*Stack, error) {
	configureTestcontainers()
	labels := map[string]string{LabelLab: "1", LabelRun: runID}
	s := &Stack{eng: eng, image: img, runID: runID, labels: labels}
	// The reaper first: from here on, a killed lab leaves nothing behind.
	if err := s.startReaper(ctx); err != nil {
		s.closeReaper()
		return nil, err
	}
	nw, err := network.New(ctx, network.WithLabels(labels), network.WithDriver("bridge"))
	if err != nil {
		s.closeReaper()
		return nil, fmt.Errorf("create network: %w", err)
	}
	s.net = nw
	return s, nil
}

// Network is the name of the run's network.
func (s *Stack) Network() string { return s.net.Name }

// Spec is one role's container: the same for the lab's Go roles and for
// a real MTA's image, which differ only in image, command and files.
type Spec struct {
	Role  topology.Role
	Image Image             // the lab's image when zero
	Cmd   []string          // the image's own when empty
	Files map[string][]byte // written into the container before it starts, mode 0644
	Env   map[string]string // its environment, over the image's
	Ready string            // the output line that says the role is up
	// ReadyRegexp reads Ready as a regular expression; ReadyPort, when
	// set, is the port whose accepting connections says the role is up
	// instead ("25"; it is published like Expose's).
	ReadyRegexp bool
	ReadyPort   string
	// ResolvConf, when set, is bound over the container's /etc/resolv.conf
	// (read only) before it starts, so that a program the lab did not
	// write asks the lab's DNS from its first lookup: the engine's own
	// resolver would answer the lab's names itself. Local engines only.
	ResolvConf []byte
	// Wait is how long Ready may take; 60 s when zero.
	Wait time.Duration
	// Control is the control port to publish ("8080"); "" for none.
	Control string
	// NetNSOf starts the container in that container's network namespace:
	// it shares its address, as a daemon on the same host would (identd on
	// the sending host). Its control port must be one NetNSOf exposes.
	NetNSOf *Container
	// Expose publishes more ports of the container's namespace, for a
	// container that will join it.
	Expose []string
	// Aliases are more names on the lab network besides the role's.
	Aliases []string
	// Labels are added to the run's labels.
	Labels map[string]string
	// Publish binds a port of the container to a fixed address of the
	// machine running Docker ("25" -> "127.0.0.1:2626"), for a server
	// outside Docker to reach it.
	Publish map[string]string
	// ExtraHosts are more /etc/hosts entries ("name:ip"; Docker's
	// "host-gateway" is the machine running Docker).
	ExtraHosts []string
	// Caps, when not nil, are the only capabilities the container keeps
	// (all others dropped; an empty list keeps none). Nil keeps the
	// engine's defaults.
	Caps []string
	// NoNewPrivileges: no process of the container gains a privilege by
	// running a setuid or file-capability program (for a program the
	// lab wrote; an MTA that re-executes itself setuid root to deliver,
	// as Exim does, needs them).
	NoNewPrivileges bool
	// User, when set, is who the container's processes run as ("uid:gid").
	// With no capability to bind ports under 1024, a container that owns
	// its network namespace (not NetNSOf) then gets the namespace's
	// net.ipv4.ip_unprivileged_port_start=0 (Docker sets it by default
	// since 20.10; the lab says so itself, so that an inspection shows it
	// and an engine that defaults otherwise behaves alike). A container
	// joining another's namespace shares that namespace's setting.
	User string
	// ReadOnly starts the container with a read-only root filesystem:
	// it writes only in Volumes.
	ReadOnly bool
	// Volumes are folders of the image given an anonymous volume each:
	// it starts as a copy of the image's folder (its owner included) and
	// is removed with the container. Volumes rather than tmpfs: a tmpfs
	// is charged to the container's memory limit, and the engine's
	// archive API (CopyDir, after a role is gone) cannot read one.
	Volumes []string
	// Limits bound the container's memory and processes.
	Limits Limits
}

// Limits are a container's resource bounds; 0 is the engine's default
// (none).
type Limits struct {
	MemoryBytes int64
	Pids        int64
}

// Start runs spec's container with an init (the role's finished children
// are reaped: sendmail processes, couriertcpd's sessions) and waits for its
// ready line. Its network alias is the role's name.
func (s *Stack) Start(ctx context.Context, spec Spec) (*Container, error) {
	img := spec.Image
	if img.Ref == "" {
		img = s.image
	}
	labels := map[string]string{LabelRole: string(spec.Role)}
	maps.Copy(labels, spec.Labels)
	maps.Copy(labels, s.labels)
	paths := slices.Sorted(maps.Keys(spec.Files))
	files := make([]tc.ContainerFile, 0, len(paths))
	for _, p := range paths {
		files = append(files, tc.ContainerFile{Reader: bytes.NewReader(spec.Files[p]), ContainerFilePath: p, FileMode: 0o644})
	}
	startup := spec.Wait
	if startup == 0 {
		startup = 60 * time.Second
	}
	var ready wait.Strategy
	switch {
	case spec.ReadyPort != "":
		ready = wait.ForListeningPort(spec.ReadyPort + "/tcp").WithStartupTimeout(startup)
	case spec.ReadyRegexp:
		ready = wait.ForLog(spec.Ready).AsRegexp().WithStartupTimeout(startup)
	default:
		ready = wait.ForLog(spec.Ready).WithStartupTimeout(startup)
	}
	custom := []tc.ContainerCustomizer{
		tc.WithLabels(labels),
		tc.WithWaitStrategy(ready),
	}
	if spec.ReadOnly {
		// testcontainers copies its files at the root, which a read-only
		// root refuses: each goes into its folder, which must be a volume.
		custom = append(custom, tc.WithAdditionalLifecycleHooks(tc.ContainerLifecycleHooks{
			PostCreates: []tc.ContainerHook{func(ctx context.Context, c tc.Container) error {
				return s.copyIntoVolumes(ctx, c.GetContainerID(), spec)
			}},
		}))
	} else {
		custom = append(custom, tc.WithFiles(files...))
	}
	if len(spec.Cmd) > 0 {
		custom = append(custom, tc.WithCmd(spec.Cmd...))
	}
	if spec.User != "" {
		custom = append(custom, tc.WithConfigModifier(func(c *container.Config) { c.User = spec.User }))
	}
	if len(spec.Env) > 0 {
		custom = append(custom, tc.WithEnv(spec.Env))
	}
	var resolv string
	if spec.ResolvConf != nil {
		if !localEngine() {
			return nil, fmt.Errorf("start %s: its resolver is pointed at the lab's DNS by binding a file over /etc/resolv.conf, which needs a local engine (DOCKER_HOST %s)", spec.Role, os.Getenv("DOCKER_HOST"))
		}
		f, err := os.CreateTemp("", "smtplab-resolv-*.conf")
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Role, err)
		}
		resolv = f.Name()
		// Kept while the container lives: the engine mounts binds again to
		// copy files out of it (CopyDir). Close removes it.
		s.mu.Lock()
		s.files = append(s.files, resolv)
		s.mu.Unlock()
		_, werr := f.Write(spec.ResolvConf)
		if cerr := f.Close(); werr != nil || cerr != nil {
			return nil, fmt.Errorf("start %s: write its resolv.conf: %w", spec.Role, errors.Join(werr, cerr))
		}
		if err := os.Chmod(resolv, 0o644); err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Role, err)
		}
	}
	var ports []string
	if spec.Control != "" && spec.NetNSOf == nil {
		ports = append(ports, spec.Control+"/tcp")
	}
	for _, p := range spec.Expose {
		ports = append(ports, p+"/tcp")
	}
	if spec.ReadyPort != "" && !slices.Contains(spec.Expose, spec.ReadyPort) {
		ports = append(ports, spec.ReadyPort+"/tcp")
	}
	fixed := mnet.PortMap{}
	for p, at := range spec.Publish {
		host, hp, err := net.SplitHostPort(at)
		ip, perr := netip.ParseAddr(host)
		if err != nil || perr != nil {
			return nil, fmt.Errorf("start %s: publish port %s at %q: want ip:port", spec.Role, p, at)
		}
		fixed[mnet.MustParsePort(p+"/tcp")] = []mnet.PortBinding{{HostIP: ip, HostPort: hp}}
		ports = append(ports, p+"/tcp")
	}
	custom = append(custom, tc.WithHostConfigModifier(func(hc *container.HostConfig) {
		init := true
		hc.Init = &init
		if spec.NetNSOf != nil {
			hc.NetworkMode = container.NetworkMode("container:" + spec.NetNSOf.c.GetContainerID())
		}
		if resolv != "" {
			hc.Binds = append(hc.Binds, resolv+":/etc/resolv.conf:ro")
		}
		// On a local engine, published on the loopback address only: the
		// control ports have no authentication, and nothing outside this
		// host needs them. (A remote engine's ports must be reached from
		// here, so they are published as the engine does by default.)
		if localEngine() {
			hc.PortBindings = mnet.PortMap{}
			for _, p := range ports {
				hc.PortBindings[mnet.MustParsePort(p)] = []mnet.PortBinding{{HostIP: loopbackAddr()}}
			}
		}
		if len(fixed) > 0 {
			if hc.PortBindings == nil {
				hc.PortBindings = mnet.PortMap{}
			}
			maps.Copy(hc.PortBindings, fixed)
		}
		hc.ExtraHosts = append(hc.ExtraHosts, spec.ExtraHosts...)
		if spec.Caps != nil {
			hc.CapDrop = []string{"ALL"}
			hc.CapAdd = spec.Caps
		}
		if spec.NoNewPrivileges {
			hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges")
		}
		if spec.User != "" && spec.NetNSOf == nil {
			if hc.Sysctls == nil {
				hc.Sysctls = map[string]string{}
			}
			hc.Sysctls[topology.UnprivilegedPortStart] = "0"
		}
		hc.ReadonlyRootfs = spec.ReadOnly
		for _, v := range spec.Volumes {
			hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Target: v})
		}
		if l := spec.Limits; l.MemoryBytes > 0 {
			hc.Memory, hc.MemorySwap = l.MemoryBytes, l.MemoryBytes // no swap beyond it
		}
		if l := spec.Limits; l.Pids > 0 {
			hc.PidsLimit = &l.Pids
		}
	}))
	if spec.NetNSOf == nil {
		aliases := append([]string{string(spec.Role)}, spec.Aliases...)
		custom = append(custom, network.WithNetwork(aliases, s.net))
		if len(ports) > 0 {
			custom = append(custom, tc.WithExposedPorts(ports...))
		}
	}
	c, err := tc.Run(ctx, img.Ref, custom...)
	var out *Container
	if c != nil {
		out = &Container{Role: spec.Role, eng: s.eng, c: c, st: s, spec: spec}
		s.mu.Lock()
		s.containers = append(s.containers, out)
		s.mu.Unlock()
	}
	// A program that exits at once either fails the wait or passes one
	// that only watched for it to stop being up: either way, say that it
	// exited, with what it printed.
	if c != nil {
		if st, serr := c.State(ctx); serr == nil && !st.Running && st.Status == "exited" {
			return nil, fmt.Errorf("start %s: it exited (code %d) before it was up%s", spec.Role, st.ExitCode, s.logsOf(ctx, c))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w%s", spec.Role, err, s.logsOf(ctx, c))
	}
	if err := s.address(ctx, out, spec); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Role, err)
	}
	return out, nil
}

// copyIntoVolumes copies spec's files into container id, created but not
// started, each into the volume it is under (one of spec's Volumes: the
// engine writes nothing else of a read-only root), its folders made as
// needed. They are owned by root, and readable by every user.
func (s *Stack) copyIntoVolumes(ctx context.Context, id string, spec Spec) error {
	for _, p := range slices.Sorted(maps.Keys(spec.Files)) {
		vol := volumeOf(spec.Volumes, p)
		if vol == "" {
			return fmt.Errorf("copy %s into %s: its root is read-only and %s is under none of its volumes %v", p, spec.Role, p, spec.Volumes)
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		data := spec.Files[p]
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, strings.TrimSuffix(vol, "/")+"/"), Mode: 0o644, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
			return err
		}
		tw.Write(data)
		if err := tw.Close(); err != nil {
			return err
		}
		if _, err := s.eng.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: vol, Content: &buf}); err != nil {
			return fmt.Errorf("copy %s into %s: %w", p, spec.Role, err)
		}
	}
	return nil
}

// volumeOf is the volume of vols that file is under, the deepest one; ""
// when none.
func volumeOf(vols []string, file string) string {
	best := ""
	for _, v := range vols {
		if strings.HasPrefix(file, strings.TrimSuffix(v, "/")+"/") && len(v) > len(best) {
			best = v
		}
	}
	return best
}

// address finds out's address on the lab network and its control port's
// endpoint on this machine.
func (s *Stack) address(ctx context.Context, out *Container, spec Spec) error {
	at := out.c
	if spec.NetNSOf != nil {
		out.IP, at = spec.NetNSOf.Addr(), spec.NetNSOf.c
	} else {
		insp, err := out.c.Inspect(ctx)
		if err != nil {
			return err
		}
		if ep := insp.NetworkSettings.Networks[s.net.Name]; ep != nil && ep.IPAddress.IsValid() {
			out.IP = ep.IPAddress.String()
		}
	}
	if out.IP == "" {
		return fmt.Errorf("no address on network %s", s.net.Name)
	}
	if spec.Control == "" {
		return nil
	}
	ep, err := at.PortEndpoint(ctx, spec.Control+"/tcp", "http")
	if err != nil {
		return fmt.Errorf("control port %s: %w", spec.Control, err)
	}
	out.Control = ep
	return nil
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
	// Its last 8 KB: the end of a log says why a program stopped.
	b, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
	if len(b) == 0 {
		return ""
	}
	head := "\ncontainer output:\n"
	if len(b) > 8192 {
		b, head = b[len(b)-8192:], "\ncontainer output, its last 8 KB:\n"
	}
	return head + string(b)
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

// CopyDir copies folder src out of c into dst on this machine (a real copy
// of the files, through the engine's archive API).
func (c *Container) CopyDir(ctx context.Context, src, dst string) error {
	res, err := c.eng.CopyFromContainer(ctx, c.c.GetContainerID(), client.CopyFromContainerOptions{SourcePath: src})
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
	s.mu.Lock()
	for _, f := range s.files {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	s.files = nil
	s.mu.Unlock()
	if err := s.closeReaper(); err != nil {
		errs = append(errs, fmt.Errorf("remove the run's reaper: %w", err))
	}
	return errors.Join(errs...)
}

// closeReaper lets the reaper go, once the run has removed all it made.
func (s *Stack) closeReaper() error {
	if s.reaperConn != nil {
		s.reaperConn.Close()
	}
	if s.reaper == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return s.reaper.c.Terminate(ctx, tc.StopTimeout(0))
}

func loopbackAddr() netip.Addr { return netip.MustParseAddr(Loopback) }

// Loopback is the host address the lab publishes its own ports on (a
// scenario's receiver.external.final chooses the final receiver's).
const Loopback = "127.0.0.1"
