package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// `go install ./cmd/lab` into an empty GOBIN, then that executable run
// from an empty folder, runs the shipped fast.yaml to exit 0: built with
// cgo (the default here), it compiles its role image from the source it
// carries; built static (CGO_ENABLED=0), it is the image's binary itself
// and needs no go command. `lab version` says what result.json records.
func TestInstalledLabRunsAnywhere(t *testing.T) {
	stacktest.Engine(t)
	for _, c := range []struct {
		name, cgo string
		noGo      bool
	}{{"cgo default", "", false}, {"static", "0", true}} {
		t.Run(c.name, func(t *testing.T) {
			gobin := t.TempDir()
			install := exec.Command("go", "install", "./cmd/lab")
			install.Dir = "../.."
			install.Env = append(os.Environ(), "GOBIN="+gobin)
			if c.cgo != "" {
				install.Env = append(install.Env, "CGO_ENABLED="+c.cgo)
			}
			if out, err := install.CombinedOutput(); err != nil {
				t.Fatalf("go install ./cmd/lab: %v\n%s", err, out)
			}
			bin := filepath.Join(gobin, "lab")
			env := os.Environ()
			if c.noGo {
				// No go command on PATH: the executable itself goes in.
				env = append(env, "PATH="+labtest.PathWithout("go"))
			}
			dir := t.TempDir()
			version := exec.Command(bin, "version")
			version.Dir, version.Env = dir, env
			vout, err := version.Output()
			if err != nil || !strings.HasPrefix(string(vout), "smtplab ") {
				t.Fatalf("lab version: %q, %v", vout, err)
			}
			// Exit 4 (the pace not held: a sendmail held up by a busy
			// disk) says the figures are not the scenario's; the run is
			// made again from a new empty folder, up to twice.
			out, err := untilPaceHeld(t, func() (string, error) {
				dir = t.TempDir()
				run := exec.Command(bin, "run", "fast.yaml")
				run.Dir, run.Env = dir, env
				out, err := run.CombinedOutput()
				return string(out), err
			})
			if err != nil {
				t.Fatalf("lab run fast.yaml from an empty folder: %v\n%s", err, out)
			}
			runs, _ := filepath.Glob(filepath.Join(dir, "results", "fast-*", report.ResultFile))
			if len(runs) != 1 {
				t.Fatalf("results: %v\n%s", runs, out)
			}
			b, err := os.ReadFile(runs[0])
			if err != nil {
				t.Fatal(err)
			}
			var res report.Result
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			if want := strings.Fields(string(vout))[1]; res.Environment.LabVersion != want || !res.Outcome.OK() {
				t.Errorf("result: version %q (lab version says %q), outcome %+v", res.Environment.LabVersion, want, res.Outcome)
			}
		})
	}
}
