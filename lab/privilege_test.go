package lab_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
	"github.com/smtplab/smtplab/lab/topology"
)

// runIDWriter picks the run's id out of the progress lines.
type runIDWriter struct {
	mu sync.Mutex
	id string
}

var startingLine = regexp.MustCompile(`run (\S+): starting`)

func (w *runIDWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := startingLine.FindSubmatch(b); m != nil && w.id == "" {
		w.id = string(m[1])
	}
	return len(b), nil
}

func (w *runIDWriter) get() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.id
}

// TestRolesLeastPrivilege inspects every role's container while
// fast.yaml runs: each of the lab's Go roles runs as nobody on a
// read-only root filesystem, writing only its volumes, keeps no
// capability and may gain no privilege, binds its port under 1024 by its
// namespace's sysctl (identd shares the sender's), and every container
// has the scenario's memory and process limits (the defaults here). The
// run passing is the proof that the roles need nothing more.
func TestRolesLeastPrivilege(t *testing.T) {
	sc := shipped(t, "fast.yaml")
	sc.Name = "fast-privilege"
	res := inspectRoles(t, sc, map[string]bool{})
	// Each role's memory was sampled from its container as the run went:
	// before delivery, at each tenth, and at the end, with everything in.
	var roles []string
	for _, m := range res.Memory {
		roles = append(roles, m.Role)
		n := len(m.Samples)
		if n < 3 || m.Samples[0].Delivered >= res.Summary.Injected || m.Samples[n-1].Delivered != res.Summary.Injected || m.Peak <= 0 {
			t.Errorf("%s: memory samples %+v, peak %d; want several, the first before the last delivery, the last at %d delivered", m.Role, m.Samples, m.Peak, res.Summary.Injected)
		}
		for _, s := range m.Samples {
			if s.Bytes <= 0 || s.Bytes > m.Peak {
				t.Errorf("%s: sample %+v outside 0..peak %d", m.Role, s, m.Peak)
			}
		}
	}
	if !slices.Equal(roles, []string{"dns", "receiver", "sender", "identd"}) {
		t.Errorf("memory measured for %v, want every role", roles)
	}
}

// TestMTAsLeastPrivilege: real MTAs (Exim receiving, Courier sending) run
// as root on a writable root, as README.md says, but with every
// capability dropped except lab.MTACaps, and with the limits; the Go
// roles beside them (dns, identd) as in TestRolesLeastPrivilege.
func TestMTAsLeastPrivilege(t *testing.T) {
	stacktest.Debootstrap(t)
	sc := fastWith(t, scenario.ImplExim, scenario.ImplCourier)
	sc.Name = "fast-mta-privilege"
	sc.Workload.Pace.MaxLag = duration.Duration(5 * time.Second)
	inspectRoles(t, sc, map[string]bool{"receiver": true, "sender": true})
}

// inspectRoles runs sc, inspects its four roles' containers while they
// run and checks each: the lab's Go roles as TestRolesLeastPrivilege
// says, the roles mta names as a real MTA's. The run must pass.
//
// A run that did not hold its pace (lab.ErrPaceNotHeld, as runChecked
// says) is made again from scratch, its containers inspected again, up
// to twice; the retries are logged, and a pace never held fails.
func inspectRoles(t *testing.T, sc scenario.Scenario, mta map[string]bool) *lab.Result {
	t.Helper()
	eng := stacktest.Engine(t)
	for try := 1; ; try++ {
		res, err := inspectRun(t, eng, sc, mta)
		if errors.Is(err, lab.ErrPaceNotHeld) && try < 3 {
			t.Logf("run %d of scenario %s did not hold its pace, running it again: %v", try, sc.Name, err)
			continue
		}
		if err != nil {
			t.Fatalf("the run under these limits: %v", err)
		}
		eventsFitSchema(t, res.Dir)
		return res
	}
}

// inspectRun is one run of inspectRoles: it runs sc, checks its roles'
// containers while they run, and returns the run's result and error.
func inspectRun(t *testing.T, eng *stack.Engine, sc scenario.Scenario, mta map[string]bool) (*lab.Result, error) {
	t.Helper()
	ids := &runIDWriter{}
	done := make(chan error, 1)
	var res *lab.Result
	go func() {
		var err error
		res, err = lab.Run(context.Background(), sc, lab.Options{ResultsDir: t.TempDir(), Progress: ids})
		if err == nil && !res.Outcome.OK() {
			err = lab.ErrNotDelivered
		}
		done <- err
	}()
	var found []client.ContainerInspectResult
	labtest.Until(t, "the run's four roles running", func() bool {
		id := ids.get()
		if id == "" {
			return false
		}
		l, err := stack.Find(context.Background(), eng, id)
		if err != nil {
			return false
		}
		found = found[:0]
		for _, c := range l.Containers {
			in, err := eng.ContainerInspect(context.Background(), c, client.ContainerInspectOptions{})
			if err != nil || in.Container.State == nil || !in.Container.State.Running || in.Container.Config.Labels[stack.LabelRole] == "reaper" {
				continue
			}
			found = append(found, in)
		}
		return len(found) == 4
	})
	for _, in := range found {
		c := in.Container
		role := c.Config.Labels[stack.LabelRole]
		hc := c.HostConfig
		// The engine writes capabilities with or without "CAP_".
		adds := make([]string, len(hc.CapAdd))
		for i, c := range hc.CapAdd {
			adds[i] = strings.TrimPrefix(c, "CAP_")
		}
		if hc.Memory != int64(sc.Limits.MemoryMB)<<20 || hc.PidsLimit == nil || *hc.PidsLimit != int64(sc.Limits.Pids) {
			t.Errorf("%s: memory %d, pids %v; want %d MiB, %d", role, hc.Memory, hc.PidsLimit, sc.Limits.MemoryMB, sc.Limits.Pids)
		}
		if mta[role] {
			slices.Sort(adds) // the engine sorts them
			if !slices.Equal(hc.CapDrop, []string{"ALL"}) || !slices.Equal(adds, slices.Sorted(slices.Values(lab.MTACaps))) {
				t.Errorf("%s (a real MTA): cap drop %v, cap add %v; want ALL dropped but %v", role, hc.CapDrop, hc.CapAdd, lab.MTACaps)
			}
			continue
		}
		if !slices.Equal(hc.CapDrop, []string{"ALL"}) || len(adds) != 0 || !slices.Contains(hc.SecurityOpt, "no-new-privileges") {
			t.Errorf("%s: cap drop %v, cap add %v, security %v; want ALL dropped, none added, no-new-privileges", role, hc.CapDrop, hc.CapAdd, hc.SecurityOpt)
		}
		if c.Config.User != topology.RoleUser {
			t.Errorf("%s: runs as %q, want %s", role, c.Config.User, topology.RoleUser)
		}
		if !hc.ReadonlyRootfs {
			t.Errorf("%s: its root filesystem is writable", role)
		}
		var vols []string
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.RW {
				vols = append(vols, m.Destination)
			}
		}
		slices.Sort(vols)
		if want := slices.Sorted(slices.Values(topology.Writable())); !slices.Equal(vols, want) {
			t.Errorf("%s: writable volumes %v, want %v", role, vols, want)
		}
		ownNS := !hc.NetworkMode.IsContainer()
		if got, ok := hc.Sysctls[topology.UnprivilegedPortStart]; ownNS && got != "0" || !ownNS && ok {
			t.Errorf("%s (own namespace %v): sysctls %v, want %s=0 exactly where it owns its namespace", role, ownNS, hc.Sysctls, topology.UnprivilegedPortStart)
		}
	}
	err := <-done
	return res, err
}
