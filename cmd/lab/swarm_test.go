package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// `lab run --engine swarm scenarios/swarm.yaml` on this engine, which is
// in no swarm: the lab makes a single-node swarm, runs the roles as
// services with the sender as 2 replicas, and every message is delivered
// exactly once from both sending hosts, each of which answered the
// receiver's IDENT query itself. Afterwards the engine is as before: no
// service, network, volume, container or secret of the run, the swarm
// left and its gateway bridge gone.
func TestSwarmEngine(t *testing.T) {
	eng := stacktest.Engine(t)
	ctx := context.Background()
	before := swarmState(t, eng)
	if before != swarm.LocalNodeStateInactive {
		t.Logf("the engine is in a swarm already (%s): the lab runs in it and must not leave it", before)
	}
	bin := buildLab(t)
	results := t.TempDir()
	copiesBefore := scenarioCopies(t, "")

	var stdout, stderr bytes.Buffer
	_, err := untilPaceHeld(t, func() (string, error) {
		stdout.Reset()
		stderr.Reset()
		os.RemoveAll(results)
		cmd := exec.Command(bin, "run", "--engine", "swarm", "--results", results, "scenarios/swarm.yaml")
		cmd.Dir = "../.."
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String() + stderr.String(), err
	})
	if err != nil {
		t.Fatalf("lab run --engine swarm: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"made a single-node swarm", "creating service sender (2 replica(s))", "2 sender(s)"} {
		if before == swarm.LocalNodeStateInactive && !strings.Contains(stderr.String(), want) {
			t.Errorf("the progress does not say %q:\n%s", want, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "every injected message was delivered exactly once") {
		t.Errorf("the report does not say every message was delivered exactly once:\n%s", stdout.String())
	}
	if after := scenarioCopies(t, ""); len(after) != len(copiesBefore) {
		t.Errorf("swarm runs' scenario copies: %v before the run, %v after", copiesBefore, after)
	}

	dirs, _ := filepath.Glob(filepath.Join(results, "swarm-*"))
	if len(dirs) != 1 {
		t.Fatalf("results hold %v, want one run", dirs)
	}
	b, err := os.ReadFile(filepath.Join(dirs[0], report.ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	var res report.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Complete || res.Summary.Delivered != 200 || res.Summary.Injected != 200 {
		t.Errorf("complete %v, delivered %d of %d injected, want 200 of 200", res.Complete, res.Summary.Delivered, res.Summary.Injected)
	}
	if res.Environment.Senders != 2 || res.Environment.Network != "swarm overlay" {
		t.Errorf("environment says %d senders on %q, want 2 on the swarm overlay", res.Environment.Senders, res.Environment.Network)
	}
	if !res.Outcome.OK() {
		t.Errorf("not delivered exactly once: %+v", res.Outcome)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "maildir", "new")); err != nil {
		t.Errorf("the Maildir was not kept: %v", err)
	}

	// The evidence: which host each connection came from, and who
	// answered its IDENT query. Round robin over 20 hosts: each host's
	// messages come from one sender, which keeps one session to each of
	// its 10 (scenarios/swarm.yaml).
	f, err := os.Open(filepath.Join(dirs[0], report.EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := events.ReadJSONL(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if h := labtest.CheckSendingHosts(t, evs, 2, 10); h.Delivered != 200 {
		t.Errorf("%d Delivered events, want 200", h.Delivered)
	}

	// Nothing of the run is left, and the swarm is as it was.
	if after := swarmState(t, eng); after != before {
		t.Errorf("the engine's swarm state is %s, was %s", after, before)
	}
	f2 := make(client.Filters).Add("label", stack.LabelLab+"=1")
	if before == swarm.LocalNodeStateActive {
		if svcs, err := eng.ServiceList(ctx, client.ServiceListOptions{Filters: f2}); err != nil || len(svcs.Items) > 0 {
			t.Errorf("services left: %d (%v)", len(svcs.Items), err)
		}
		if sec, err := eng.SecretList(ctx, client.SecretListOptions{Filters: f2}); err != nil || len(sec.Items) > 0 {
			t.Errorf("secrets left: %d (%v)", len(sec.Items), err)
		}
	}
	stacktest.NoLeftovers(t, eng, "")
	if vols, err := eng.VolumeList(ctx, client.VolumeListOptions{Filters: f2}); err != nil || len(vols.Items) > 0 {
		t.Errorf("volumes left: %d (%v)", len(vols.Items), err)
	}
	if before == swarm.LocalNodeStateInactive {
		if _, err := eng.NetworkInspect(ctx, "docker_gwbridge", client.NetworkInspectOptions{}); err == nil {
			t.Errorf("the swarm's docker_gwbridge network is left")
		}
	}
}

// swarmState is the engine's swarm state (inactive, active, ...).
func swarmState(t *testing.T, eng *stack.Engine) swarm.LocalNodeState {
	t.Helper()
	info, err := eng.Info(context.Background(), client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return info.Info.Swarm.LocalNodeState
}

// startSwarmStalled starts `lab run --engine swarm` on a scenario of two
// sending hosts whose DNS answers never come, and reads its output until
// delivery has begun (the runner's progress, copied by the lab): the
// swarm run's id, the results folder, and the output so far.
func startSwarmStalled(t *testing.T, bin string) (*exec.Cmd, string, string, []string) {
	t.Helper()
	dir := t.TempDir()
	slow := filepath.Join(dir, "slow.yaml")
	os.WriteFile(slow, []byte("name: stalled\ntimeout: 5m\nsender:\n  replicas: 2\ndns:\n  query_delay: 1h\n"), 0o644)
	results := filepath.Join(dir, "results")
	cmd := exec.Command(bin, "run", "--engine", "swarm", slow, "--results", results)
	cmd.Dir = "../.."
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	runID, lines := untilDelivering(stderr, regexp.MustCompile(`^swarm run (\S+): creating`))
	if runID == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no swarm run started; output:\n%s", strings.Join(lines, "\n"))
	}
	return cmd, runID, results, lines
}

// scenarioCopies are the folders holding swarm runs' copies of their
// scenario (run runID's, or every run's when it is empty).
func scenarioCopies(t *testing.T, runID string) []string {
	t.Helper()
	dirs, err := filepath.Glob(lab.ScenarioCopies(runID))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// swarmLeftovers counts what a swarm run left with the lab's label:
// services (none when the engine is in no swarm), containers, networks
// and volumes.
func swarmLeftovers(t *testing.T, eng *stack.Engine) (services, containers, networks, volumes int) {
	t.Helper()
	ctx := context.Background()
	f := make(client.Filters).Add("label", stack.LabelLab+"=1")
	if swarmState(t, eng) == swarm.LocalNodeStateActive {
		if l, err := eng.ServiceList(ctx, client.ServiceListOptions{Filters: f}); err == nil {
			services = len(l.Items)
		}
	}
	l, err := stack.Find(ctx, eng, "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := eng.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return services, len(l.Containers), len(l.Networks), len(v.Items)
}

// Every way out of a swarm run leaves the engine as it was: Ctrl-C stops
// the runner, which writes what it measured, then removes the run and its
// scenario copy and leaves the swarm it made (exit 130); after kill -9 of
// the lab, whose services and scenario copy then stay, `lab clean` removes
// them, the runner still running, and leaves the swarm.
func TestSwarmExitPaths(t *testing.T) {
	eng := stacktest.Engine(t)
	before := swarmState(t, eng)
	bin := buildLab(t)

	t.Run("interrupt", func(t *testing.T) {
		cmd, runID, results, lines := startSwarmStalled(t, bin)
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		labtest.Until(t, "the interrupted swarm run to end", func() bool {
			select {
			case err = <-done:
				return true
			default:
				return false
			}
		})
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("an interrupted swarm run exited %v, want 130 (128 + SIGINT); output:\n%s", err, strings.Join(lines, "\n"))
		}
		if s, c, n, v := swarmLeftovers(t, eng); s+c+n+v > 0 {
			t.Errorf("run %s left %d services, %d containers, %d networks, %d volumes", runID, s, c, n, v)
		}
		if after := swarmState(t, eng); after != before {
			t.Errorf("the engine's swarm state is %s, was %s", after, before)
		}
		files, _ := filepath.Glob(filepath.Join(results, "stalled-*", report.ResultFile))
		if len(files) != 1 {
			t.Errorf("the interrupted runner wrote no result.json (found %v)", files)
		}
		if left := scenarioCopies(t, runID); len(left) != 0 {
			t.Errorf("the interrupted run left its scenario copy %v", left)
		}
	})

	t.Run("kill", func(t *testing.T) {
		cmd, runID, _, _ := startSwarmStalled(t, bin)
		cmd.Process.Kill()
		cmd.Wait()
		if s, c, _, _ := swarmLeftovers(t, eng); s == 0 || c == 0 {
			t.Fatalf("after kill -9 of the lab: %d services, %d containers of run %s; want them still there for lab clean", s, c, runID)
		}
		if left := scenarioCopies(t, runID); len(left) != 1 {
			t.Errorf("after kill -9 of the lab: scenario copies %v of run %s, want its one copy still there for lab clean", left, runID)
		}
		out, err := exec.Command(bin, "clean").CombinedOutput()
		if err != nil {
			t.Fatalf("lab clean: %v\n%s", err, out)
		}
		if before == swarm.LocalNodeStateInactive && !strings.Contains(string(out), "left the swarm") {
			t.Errorf("lab clean did not say it left the swarm the run made:\n%s", out)
		}
		if s, c, n, v := swarmLeftovers(t, eng); s+c+n+v > 0 {
			t.Errorf("after lab clean, run %s left %d services, %d containers, %d networks, %d volumes", runID, s, c, n, v)
		}
		if left := scenarioCopies(t, runID); len(left) != 0 {
			t.Errorf("after lab clean, run %s's scenario copy is still there: %v", runID, left)
		}
		if after := swarmState(t, eng); after != before {
			t.Errorf("the engine's swarm state is %s, was %s", after, before)
		}
	})
}
