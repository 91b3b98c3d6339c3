package topology

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The committed docker-compose.yml is exactly what Compose generates:
// change the topology, and this fails until the file is regenerated
// (go run ./cmd/lab compose --write).
func TestComposeFileMatchesTopology(t *testing.T) {
	want, err := Compose()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", ComposeFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from lab/topology; regenerate it with: go run ./cmd/lab compose --write", ComposeFile)
	}
	for _, s := range Services() {
		if !bytes.Contains(got, []byte("\n  "+s.Name+":\n")) {
			t.Errorf("service %s missing from %s", s.Name, ComposeFile)
		}
	}
}

// Debian's docker-compose 1.29 accepts the file (compose v2 reads the same
// format). Required where SMTPLAB_REQUIRE_DOCKER=1 (CI).
func TestComposeFileValid(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		if os.Getenv("SMTPLAB_REQUIRE_DOCKER") == "1" {
			t.Fatal("docker-compose not installed (apt-get install docker-compose)")
		}
		t.Skip("docker-compose not installed")
	}
	dir := t.TempDir()
	b, _ := Compose()
	os.WriteFile(filepath.Join(dir, ComposeFile), b, 0o644)
	out, err := exec.Command(bin, "--project-directory", dir, "-f", filepath.Join(dir, ComposeFile), "config").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	// Interpolation: the default scenario unless SMTPLAB_SCENARIO is set.
	if !strings.Contains(string(out), "SMTPLAB_SCENARIO: "+DefaultScenario) {
		t.Errorf("docker-compose config does not default the scenario to %s:\n%s", DefaultScenario, out)
	}
}

// Every service joining another's network comes after it, and that one
// exposes the joiner's control port.
func TestServicesOrder(t *testing.T) {
	seen := map[string]Service{}
	for _, s := range Services() {
		if s.NetNSOf != "" {
			host, ok := seen[s.NetNSOf]
			if !ok {
				t.Errorf("%s joins %s, which starts after it", s.Name, s.NetNSOf)
			}
			exposed := false
			for _, p := range host.Exposes {
				exposed = exposed || p == s.Control
			}
			if !exposed {
				t.Errorf("%s's control port %s is not exposed by %s", s.Name, s.Control, s.NetNSOf)
			}
		}
		seen[s.Name] = s
	}
}
