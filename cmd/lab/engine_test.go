package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
	"github.com/smtplab/smtplab/lab/topology"
)

// With DOCKER_HOST pointing at a second engine, `lab run` builds its
// image there and starts every role's container there, none on the
// engine it would use otherwise, and the run passes.
func TestRunOnSecondEngine(t *testing.T) {
	first := stacktest.Engine(t) // the default engine, from the environment
	bin := buildLab(t)
	host, second := stacktest.SecondEngine(t)
	ctx := context.Background()
	if first.DaemonHost() == host {
		t.Fatalf("the first engine is at %s too", host)
	}

	// Each run from scratch, in a results folder of its own; one whose
	// pace was not held is made again (untilPaceHeld).
	var results, id string
	printed, err := untilPaceHeld(t, func() (string, error) {
		results = t.TempDir()
		cmd := exec.Command(bin, "run", "--results", results, "scenarios/fast.yaml")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
		out, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var printed strings.Builder
		runID, scanned := make(chan string, 1), make(chan struct{})
		go func() {
			defer close(scanned)
			sc := bufio.NewScanner(out)
			re := regexp.MustCompile(`run (\S+): starting`)
			sent := false
			for sc.Scan() {
				printed.WriteString(sc.Text() + "\n")
				if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
					runID <- m[1]
					sent = true
				}
			}
			close(runID)
		}()
		var ok bool
		id, ok = <-runID
		if !ok {
			cmd.Wait()
			t.Fatalf("the run never started:\n%s", printed.String())
		}
		labtest.Until(t, "the run's four roles on the second engine", func() bool {
			l, err := stack.Find(ctx, second, id)
			return err == nil && len(l.Containers) >= 4 // and its reaper
		})
		if l, err := stack.Find(ctx, first, id); err != nil || len(l.Containers)+len(l.Networks) > 0 {
			t.Errorf("the first engine has the run's containers %v and networks %v (%v)", l.Containers, l.Networks, err)
		}
		<-scanned // all it printed read before Wait closes the pipe
		return printed.String(), cmd.Wait()
	})
	if err != nil {
		t.Fatalf("lab run on the second engine: %v\n%s", err, printed)
	}
	b, err := os.ReadFile(filepath.Join(results, id, report.ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	var res report.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if _, err := second.ImageInspect(ctx, res.Environment.ImageID); err != nil {
		t.Errorf("the run's image %s is not on the second engine: %v", res.Environment.ImageID, err)
	}
	if _, err := first.ImageInspect(ctx, res.Environment.ImageID); err == nil {
		t.Errorf("the run's image %s is on the first engine", res.Environment.ImageID)
	}
	if !res.Outcome.OK() {
		t.Errorf("outcome %+v", res.Outcome)
	}
	stacktest.NoLeftovers(t, second, "")
}

// On a machine with Go and Docker alone (no debootstrap on PATH), `lab
// images --mta none` builds the lab's own image and tags it for
// docker-compose.yml, and builds nothing else.
func TestImagesWithoutDebootstrap(t *testing.T) {
	eng := stacktest.Engine(t)
	bin := buildLab(t)
	ctx := context.Background()
	// Untag only: the image stays under its content tag for other tests.
	eng.ImageRemove(ctx, topology.ComposeImage, client.ImageRemoveOptions{})
	cmd := exec.Command(bin, "images", "--mta", "none")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "PATH="+labtest.PathWithout("debootstrap"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lab images --mta none without debootstrap: %v\n%s", err, out)
	}
	if _, err := eng.ImageInspect(ctx, topology.ComposeImage); err != nil {
		t.Errorf("no %s after lab images --mta none: %v\n%s", topology.ComposeImage, err, out)
	}
	for _, mta := range []string{"courier", "postfix", "exim"} {
		if strings.Contains(string(out), mta) {
			t.Errorf("lab images --mta none spoke of %s:\n%s", mta, out)
		}
	}
}
