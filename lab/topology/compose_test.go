package topology_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/topology"
)

// Debian's docker-compose 1.29 accepts the file (compose v2 reads the same
// format). Required where SMTPLAB_REQUIRE_DOCKER=1 (CI).
func TestComposeFileValid(t *testing.T) {
	bin := labtest.Tool(t, "docker-compose", labtest.DockerEnv)
	dir := t.TempDir()
	b, _ := topology.Compose()
	os.WriteFile(filepath.Join(dir, topology.ComposeFile), b, 0o644)
	out, err := exec.Command(bin, "--project-directory", dir, "-f", filepath.Join(dir, topology.ComposeFile), "config").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	// Interpolation: the default scenario unless SMTPLAB_SCENARIO is set.
	if !strings.Contains(string(out), "SMTPLAB_SCENARIO: "+topology.DefaultScenario) {
		t.Errorf("docker-compose config does not default the scenario to %s:\n%s", topology.DefaultScenario, out)
	}
}
