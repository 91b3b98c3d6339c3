package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sender.replicas: how many sending hosts run the Go sender. Absent or 0
// is one host; 2 to MaxReplicas are that many; a negative number, more
// than MaxReplicas, or several hosts of a real MTA are refused at the
// file and line of sender.replicas.
func TestSenderReplicas(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		hosts      int    // when accepted
		err        string // when refused
	}{
		{"absent", "name: x\n", 1, ""},
		{"zero", "name: x\nsender:\n  replicas: 0\n", 1, ""},
		{"one", "name: x\nsender:\n  replicas: 1\n", 1, ""},
		{"two", "name: x\nsender:\n  replicas: 2\n", 2, ""},
		{"two of the Go sender named", "name: x\nsender:\n  impl: go\n  replicas: 2\n", 2, ""},
		{"the most", fmt.Sprintf("name: x\nsender:\n  replicas: %d\n", MaxReplicas), MaxReplicas, ""},
		{"negative", "name: x\nsender:\n  max_per_host: 4\n  replicas: -1\n", 0,
			fmt.Sprintf("x.yaml:4: sender.replicas: must be between 1 and %d sending hosts (0 or absent: 1), got -1", MaxReplicas)},
		{"too many", fmt.Sprintf("name: x\nsender:\n  replicas: %d\n", MaxReplicas+1), 0,
			fmt.Sprintf("x.yaml:3: sender.replicas: must be between 1 and %d sending hosts (0 or absent: 1), got %d", MaxReplicas, MaxReplicas+1)},
		{"a real sender", "name: x\nsender:\n  impl: postfix\n  replicas: 2\n", 0,
			"x.yaml:4: sender.replicas: 2 sending hosts run the Go sender only; sender.impl postfix is one host: use 1"},
		{"a real sender, flow style", "name: x\nsender: {impl: courier, replicas: 3}\n", 0,
			"x.yaml:2: sender.replicas: 3 sending hosts run the Go sender only; sender.impl courier is one host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("x.yaml", []byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.SenderHosts(); got != tc.hosts {
				t.Errorf("SenderHosts %d, want %d", got, tc.hosts)
			}
		})
	}
	// A real MTA as one host is still one host.
	s, err := Parse("x.yaml", []byte("name: x\nsender:\n  impl: postfix\n  replicas: 1\n"))
	if err != nil || s.SenderHosts() != 1 {
		t.Errorf("postfix, replicas 1: %d hosts, %v; want 1 host", s.SenderHosts(), err)
	}
}

// Load names the file it read and the line of sender.replicas.
func TestSenderReplicasFileLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "many.yaml")
	if err := os.WriteFile(path, []byte("name: many\ndescription: too many senders\nsender:\n  hostname: sender.lab.example.net\n  replicas: 65\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + ":5: sender.replicas: "; err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "got 65") {
		t.Errorf("error %v, want it to start %q and say got 65", err, want)
	}
}

// The shipped swarm scenario runs two sending hosts.
func TestSwarmScenarioHasTwoSenders(t *testing.T) {
	s, err := Load("../../scenarios/swarm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.SenderHosts() != 2 || s.Sender.Impl != ImplGo {
		t.Errorf("swarm.yaml: %d sending hosts of sender.impl %q, want 2 of go", s.SenderHosts(), s.Sender.Impl)
	}
}
