package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/cli"
	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// buildLab compiles this command, as `go run ./cmd/lab` would.
func buildLab(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lab")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// untilPaceHeld makes a run of the lab by calling run, which starts it
// from scratch (a new results folder) and returns its error and what it
// printed. A run that exits 4 (cli.ExitPaceNotHeld: a sendmail held up by
// a disk stall on a busy machine) was measured at another pace than the
// scenario's, whose figures the tests assert: it is made again, up to
// twice, each retry logged with the lab's reason. The last run's error
// and output are returned, so a pace never held fails the test as before.
func untilPaceHeld(t *testing.T, run func() (printed string, err error)) (string, error) {
	t.Helper()
	for try := 1; ; try++ {
		printed, err := run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != cli.ExitPaceNotHeld || try == 3 {
			return printed, err
		}
		t.Logf("run %d did not hold its pace (exit %d), running it again: %s", try, ee.ExitCode(), paceReason(printed))
	}
}

// paceReason is the line of a run's output that says why its pace was
// not held.
func paceReason(printed string) string {
	for _, l := range slices.Backward(strings.Split(printed, "\n")) {
		if strings.Contains(l, "did not hold its pace") {
			return strings.TrimSpace(l)
		}
	}
	return "(the run printed no reason)"
}

// A bad scenario is refused with file:line before anything starts.
func TestBadScenarioRefused(t *testing.T) {
	bin := buildLab(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("name: bad\nsender:\n  max_connections: 0\n"), 0o644)
	cmd := exec.Command(bin, "run", bad)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2; stderr:\n%s", err, stderr.String())
	}
	if want := bad + ":3: sender.max_connections: must be at least 1"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not say %q", stderr.String(), want)
	}
	if strings.Contains(stderr.String(), "starting") {
		t.Errorf("containers were started for a bad scenario:\n%s", stderr.String())
	}
}

// startStalled starts `lab run` on a scenario whose DNS answers never
// come, named name, and reads its output until delivery has begun: the
// run's id, and its output so far. The rest of the output is drained.
func startStalled(t *testing.T, bin, name string) (*exec.Cmd, string, []string) {
	t.Helper()
	dir := t.TempDir()
	slow := filepath.Join(dir, "slow.yaml")
	os.WriteFile(slow, []byte("name: "+name+"\ntimeout: 5m\ndns:\n  query_delay: 1h\n"), 0o644)
	cmd := exec.Command(bin, "run", slow, "--results", filepath.Join(dir, "results"))
	cmd.Dir = "../.."
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	runID, lines := untilDelivering(stderr, regexp.MustCompile(`^run (\S+): starting`))
	return cmd, runID, lines
}

// untilDelivering reads a run's progress until delivery has begun and
// returns the run's id (the first group of started, on its line) and the
// lines so far; the rest is drained.
func untilDelivering(stderr io.Reader, started *regexp.Regexp) (string, []string) {
	runID := ""
	sc := bufio.NewScanner(stderr)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if m := started.FindStringSubmatch(sc.Text()); m != nil {
			runID = m[1]
		}
		if strings.HasPrefix(sc.Text(), "delivered ") {
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return runID, lines
}

// Ctrl-C in the middle of a run stops it and removes every container and
// network of the run.
func TestInterruptCleansUp(t *testing.T) {
	eng := stacktest.Engine(t)
	bin := buildLab(t)
	cmd, runID, lines := startStalled(t, bin, "interrupted")
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("an interrupted run exited %v, want 130 (128 + SIGINT)", err)
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("lab did not stop after SIGINT; output:\n%s", strings.Join(lines, "\n"))
	}
	if runID == "" {
		t.Fatalf("no run started; output:\n%s", strings.Join(lines, "\n"))
	}
	stacktest.NoLeftovers(t, eng, runID)
}

// kill -9 of the lab in the middle of a run: the run's reaper
// (lab/stack/reaper.go) removes every container and network of the run,
// with no `lab clean`. (The wait is a hang bound, not a speed.)
func TestKilledLabLeavesNothing(t *testing.T) {
	eng := stacktest.Engine(t)
	bin := buildLab(t)
	cmd, runID, lines := startStalled(t, bin, "killed")
	if runID == "" {
		cmd.Process.Kill()
		t.Fatalf("no run started; output:\n%s", strings.Join(lines, "\n"))
	}
	before, err := stack.Find(context.Background(), eng, runID)
	if err != nil || len(before.Containers) < 5 || len(before.Networks) != 1 {
		t.Errorf("before the kill: %+v, %v; want the 4 roles, the reaper and the network", before, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	killed := time.Now()
	labtest.Until(t, "the killed run's containers and network to go", func() bool {
		l, err := stack.Find(context.Background(), eng, runID)
		return err == nil && len(l.Containers)+len(l.Networks) == 0
	})
	t.Logf("run %s removed %.1f s after kill -9 of the lab", runID, time.Since(killed).Seconds())
}
