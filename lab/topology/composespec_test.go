package topology_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/smtplab/smtplab/lab/topology"
)

// TestComposeFileV2: docker-compose.yml loads, validated against the
// Compose Specification, with compose-go, the loader of the Compose v2
// plugin (`docker compose`); Debian's docker-compose 1.29 runs it in
// TestComposeUp. Loaded as v2 reads it, each role keeps what the lab
// gives it: its user, a read-only root, no capability, no new
// privileges, its control port on the host's loopback at its metrics
// port (moved by its variable), and the identd in the sender's network.
func TestComposeFileV2(t *testing.T) {
	path, err := filepath.Abs(filepath.Join("..", "..", topology.ComposeFile))
	if err != nil {
		t.Fatal(err)
	}
	load := func(env ...string) *types.Project {
		t.Helper()
		opts, err := cli.NewProjectOptions([]string{path}, cli.WithName("smtplabspec"), cli.WithEnv(env))
		if err != nil {
			t.Fatal(err)
		}
		p, err := opts.LoadProject(context.Background())
		if err != nil {
			t.Fatalf("%s does not load as Compose v2 reads it: %v", path, err)
		}
		return p
	}
	p := load()
	var names []string
	for _, s := range topology.Services() {
		names = append(names, string(s.Name))
	}
	names = append(names, "runner")
	if got := p.ServiceNames(); !sameSet(got, names) {
		t.Fatalf("services %v, want %v", got, names)
	}
	for _, s := range topology.Services() {
		svc := p.Services[string(s.Name)]
		if svc.User != "65534:65534" || !svc.ReadOnly || !slices.Equal(svc.CapDrop, []string{"ALL"}) || len(svc.CapAdd) != 0 ||
			!slices.Contains(svc.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: user %q, read_only %v, cap_drop %v, cap_add %v, security_opt %v; want nobody, read-only, no capability, no new privileges",
				s.Name, svc.User, svc.ReadOnly, svc.CapDrop, svc.CapAdd, svc.SecurityOpt)
		}
		if s.NetNSOf != "" {
			if want := "service:" + string(s.NetNSOf); svc.NetworkMode != want {
				t.Errorf("%s: network_mode %q, want %q", s.Name, svc.NetworkMode, want)
			}
			continue
		}
		if svc.Sysctls["net.ipv4.ip_unprivileged_port_start"] != "0" {
			t.Errorf("%s: sysctls %v, want ip_unprivileged_port_start 0", s.Name, svc.Sysctls)
		}
	}
	published := func(p *types.Project) map[string]bool {
		out := map[string]bool{}
		for _, svc := range p.Services {
			for _, port := range svc.Ports {
				out[fmt.Sprintf("%s %s:%s->%d", svc.Name, port.HostIP, port.Published, port.Target)] = true
			}
		}
		return out
	}
	moved := load(topology.MetricsPortVar(topology.DNS) + "=29080")
	for _, s := range topology.Services() {
		owner := s.Name
		if s.NetNSOf != "" {
			owner = s.NetNSOf
		}
		var control uint32
		fmt.Sscan(s.Control, &control)
		want := fmt.Sprintf("%s 127.0.0.1:%d->%d", owner, topology.MetricsPort(s.Name), control)
		if !published(p)[want] {
			t.Errorf("%s's control port: want %q among %v", s.Name, want, published(p))
		}
		if s.Name == topology.DNS {
			want = fmt.Sprintf("%s 127.0.0.1:29080->%d", owner, control)
		}
		if !published(moved)[want] {
			t.Errorf("with %s=29080: want %q among %v", topology.MetricsPortVar(topology.DNS), want, published(moved))
		}
	}
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}
