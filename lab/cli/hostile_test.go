package cli

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// Every hostile scenario (lab/scenario/testdata/hostile) is bad input:
// `lab run` exits 2 with the file's name and line, before any engine is
// asked for anything.
func TestHostileScenariosExit2(t *testing.T) {
	files, err := filepath.Glob("../scenario/testdata/hostile/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no hostile scenarios: %v", err)
	}
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock") // nothing past validation may need it
	for _, f := range files {
		root := Root()
		root.SetArgs([]string{"run", f})
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.Execute()
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != ExitBadInput || !strings.Contains(ee.Msg, f+":") {
			t.Errorf("lab run %s: %v, want exit %d naming %s:LINE", f, err, ExitBadInput, f)
		}
	}
}
