// Package stacktest gives tests a Docker engine, or skips them when none is
// reachable, unless the environment demands one (labtest.Require): with
// SMTPLAB_REQUIRE_DOCKER set, as CI sets it, a missing engine fails the
// test instead.
package stacktest

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/stack"
)

// Engine connects to the engine or skips (fails, under RequireEnv) the
// test. It also takes the machine's container-test lock for the rest of
// the test (see takeTurn).
func Engine(t testing.TB) *stack.Engine {
	t.Helper()
	takeTurn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	eng, err := stack.Connect(ctx)
	labtest.Require(t, labtest.DockerEnv, "a Docker engine", err)
	t.Cleanup(func() { eng.Close() })
	return eng
}

// NoLeftovers fails t when the engine still has containers or networks of
// the run (all of the lab's when runID is "").
func NoLeftovers(t testing.TB, eng *stack.Engine, runID string) {
	t.Helper()
	l, err := stack.Find(context.Background(), eng, runID)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Containers)+len(l.Networks) > 0 {
		t.Errorf("run %q left %d containers and %d networks behind", runID, len(l.Containers), len(l.Networks))
		stack.Clean(context.Background(), eng, runID)
	}
}

// Debootstrap skips t (fails it, under labtest.DebootstrapEnv) when
// debootstrap, which builds the real MTAs' images, is not installed.
func Debootstrap(t testing.TB) {
	t.Helper()
	labtest.Tool(t, "debootstrap", labtest.DebootstrapEnv)
}

// takeTurn makes the container tests of every package take turns on the
// engine: `go test ./...` runs packages at once, and one test's
// containers starting (the engine syncs its storage as it creates them)
// stall another's injections by seconds, so the other run could not keep
// its workload's pace and would rightly say so (lab/pace). A lab run is
// measured alone, as a user runs it; the lock is a file lock, released
// when the test ends or its process dies.
func takeTurn(t testing.TB) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "smtplab-container-tests.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("container-test lock: %v", err)
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		t.Logf("waiting for the container-test lock %s: another package's container test holds it", path)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			t.Fatalf("container-test lock %s: %v", path, err)
		}
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// PublishedOnLoopback fails t when a running container of the run (of
// every run when runID is "") publishes a port on any host address but
// the loopback: the roles' control ports have no authentication.
func PublishedOnLoopback(t testing.TB, eng *stack.Engine, runID string) {
	t.Helper()
	f := make(client.Filters).Add("label", stack.LabelLab+"=1")
	if runID != "" {
		f.Add("label", stack.LabelRun+"="+runID)
	}
	list, err := eng.ContainerList(context.Background(), client.ContainerListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	published := 0
	for _, c := range list.Items {
		for _, p := range c.Ports {
			if p.PublicPort == 0 {
				continue
			}
			published++
			if !p.IP.IsLoopback() {
				t.Errorf("container %s publishes port %d on %s, not on the loopback", c.Labels[stack.LabelRole], p.PrivatePort, p.IP)
			}
		}
	}
	if published == 0 {
		t.Errorf("run %q publishes no port: nothing was checked", runID)
	}
}
