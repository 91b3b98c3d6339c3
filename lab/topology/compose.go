package topology

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
)

// ComposeImage is the image docker-compose.yml runs: `lab images` tags the
// lab's current image with it (images are built locally, never pulled).
const ComposeImage = "smtplab/lab:compose"

// ComposeFile is the generated file, at the top of the repository.
const ComposeFile = "docker-compose.yml"

// Labels every compose container and network carries, as the lab's own
// runs do, so `lab clean` and CI's leftover check find them.
const composeRun = "compose"

const header = `# The same lab as ` + "`go run ./cmd/lab`" + `, for Compose (v2 and Debian's docker-compose 1.29).
# Generated from lab/topology by ` + "`go run ./cmd/lab compose --write`" + `: do not edit;
# a test fails when this file and the Go topology differ.
#
#   go run ./cmd/lab images --mta none   # build the lab's image locally (nothing is pulled)
#   docker-compose up --abort-on-container-exit --exit-code-from runner
#   SMTPLAB_SCENARIO=scenarios/fast.yaml docker-compose up --abort-on-container-exit --exit-code-from runner
#   docker-compose down -v      # leaves no container, network or volume
#
# The runner writes results/ as root unless SMTPLAB_UID and SMTPLAB_GID say
# whom to write as (mkdir -p results; SMTPLAB_UID=$(id -u) SMTPLAB_GID=$(id -g)).
#
# (with Compose v2: docker compose ...). The runner gives each role its
# configuration over its control port, injects the scenario's workload, and
# writes results/<run>/ (result.json, events.jsonl, report.html, maildir/);
# its exit code is the run's: 0 pass, 1 not delivered exactly once, 2 bad
# scenario, 3 an expectation failed.
`

type composeFile struct {
	Services yaml.MapSlice             `yaml:"services"`
	Networks map[string]composeNetwork `yaml:"networks"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	User        string            `yaml:"user,omitempty"`
	WorkingDir  string            `yaml:"working_dir,omitempty"`
	Environment map[string]string `yaml:"environment,omitempty"`
	Volumes     []string          `yaml:"volumes,omitempty"`
	NetworkMode string            `yaml:"network_mode,omitempty"`
	Networks    []string          `yaml:"networks,omitempty"`
	Expose      []string          `yaml:"expose,omitempty"`
	Ports       []string          `yaml:"ports,omitempty"`
	DependsOn   []string          `yaml:"depends_on,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	// The Go roles' least privilege, as `go run ./cmd/lab` gives it
	// (lab/start.go): nobody, no capability, a read-only root and a
	// volume for each folder it writes.
	ReadOnly     bool              `yaml:"read_only,omitempty"`
	CapDrop      []string          `yaml:"cap_drop,omitempty"`
	SecurityOpt  []string          `yaml:"security_opt,omitempty"`
	Sysctls      map[string]string `yaml:"sysctls,omitempty"`
	MemLimit     string            `yaml:"mem_limit,omitempty"`
	MemswapLimit string            `yaml:"memswap_limit,omitempty"`
	PidsLimit    int               `yaml:"pids_limit,omitempty"`
}

type composeNetwork struct {
	Labels map[string]string `yaml:"labels"`
}

// MetricsPort is where docker-compose.yml publishes role's control port
// (its /metrics) on the host's loopback unless MetricsPortVar says
// otherwise: 19080 and up, in Services' order.
func MetricsPort(role Role) int {
	for i, s := range Services() {
		if s.Name == role {
			return 19080 + i
		}
	}
	return 0
}

// MetricsPortVar is the environment variable that moves role's metrics
// port under docker compose (SMTPLAB_METRICS_PORT_DNS, ...).
func MetricsPortVar(role Role) string {
	return "SMTPLAB_METRICS_PORT_" + strings.ToUpper(string(role))
}

// Compose returns docker-compose.yml for the topology.
func Compose() ([]byte, error) {
	f := composeFile{Networks: map[string]composeNetwork{"lab": {Labels: map[string]string{"smtplab": "1", "smtplab.run": composeRun}}}}
	var all []string
	for _, s := range Services() {
		cs := composeService{
			Image:   ComposeImage,
			Command: []string{"role", "--await", ":" + s.Control},
			Expose:  s.Exposes,
			Labels:  map[string]string{"smtplab": "1", "smtplab.run": composeRun, "smtplab.role": string(s.Name)},
			User:    RoleUser, ReadOnly: true, Volumes: Writable(),
			CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges:true"},
			MemLimit: fmt.Sprintf("%dm", DefaultMemoryMB), MemswapLimit: fmt.Sprintf("%dm", DefaultMemoryMB), PidsLimit: DefaultPids,
		}
		// Each role's control port (its /metrics) on the host's loopback,
		// at a fixed port a Prometheus there can scrape; a service sharing
		// another's namespace is published by that one.
		for _, o := range Services() {
			if o.Name == s.Name && o.NetNSOf == "" || o.NetNSOf == s.Name {
				cs.Ports = append(cs.Ports, fmt.Sprintf("127.0.0.1:${%s:-%d}:%s", MetricsPortVar(o.Name), MetricsPort(o.Name), o.Control))
			}
		}
		if s.NetNSOf != "" {
			cs.NetworkMode = "service:" + string(s.NetNSOf)
			cs.DependsOn = []string{string(s.NetNSOf)}
		} else {
			cs.Networks = []string{"lab"}
			cs.Sysctls = map[string]string{UnprivilegedPortStart: "0"}
		}
		f.Services = append(f.Services, yaml.MapItem{Key: string(s.Name), Value: cs})
		all = append(all, string(s.Name))
	}
	f.Services = append(f.Services, yaml.MapItem{Key: "runner", Value: composeService{
		Image:       ComposeImage,
		Command:     []string{"runner", "--results", "results"},
		User:        "${SMTPLAB_UID:-0}:${SMTPLAB_GID:-0}",
		WorkingDir:  "/smtplab",
		Environment: map[string]string{"SMTPLAB_SCENARIO": "${SMTPLAB_SCENARIO:-" + DefaultScenario + "}"},
		Volumes:     []string{"./scenarios:/smtplab/scenarios:ro", "./results:/smtplab/results"},
		Networks:    []string{"lab"},
		DependsOn:   all,
		Labels:      map[string]string{"smtplab": "1", "smtplab.run": composeRun, "smtplab.role": "runner"},
	}})
	body, err := yaml.MarshalWithOptions(f, yaml.IndentSequence(true))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(header)
	b.Write(body)
	return b.Bytes(), nil
}
