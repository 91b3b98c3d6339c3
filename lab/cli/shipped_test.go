package cli

import (
	"os"
	"strings"
	"testing"
)

// In a folder without the scenario files, a shipped scenario is found by
// its name; a file of that name in the folder wins; a path elsewhere is
// never replaced by a shipped one; an unknown name lists the shipped ones.
func TestLoadShippedScenario(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, name := range []string{"fast.yaml", "scenarios/fast.yaml", "fast", "./fast.yaml"} {
		sc, err := loadScenario(name)
		if err != nil || sc.Name != "fast" {
			t.Errorf("%s: %q, %v; want the shipped fast", name, sc.Name, err)
		}
	}
	if sc, err := loadScenario("courier-1999.yaml"); err != nil || sc.Workload.Rounds*sc.Workload.Recipients != 200 {
		t.Errorf("courier-1999.yaml: %+v, %v", sc.Workload, err)
	}
	if err := os.WriteFile("fast.yaml", []byte("name: mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if sc, err := loadScenario("fast.yaml"); err != nil || sc.Name != "mine" {
		t.Errorf("a local fast.yaml: %q, %v; want it, not the shipped one", sc.Name, err)
	}
	if _, err := loadScenario("/nonexistent/fast.yaml"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("/nonexistent/fast.yaml: %v; want the file's error", err)
	}
	_, err := loadScenario("nope.yaml")
	if err == nil || !strings.Contains(err.Error(), "no shipped scenario of that name") || !strings.Contains(err.Error(), "courier-1999.yaml") {
		t.Errorf("nope.yaml: %v; want the shipped ones listed", err)
	}
}
