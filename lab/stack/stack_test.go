package stack_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
	"github.com/smtplab/smtplab/lab/topology"
)

// The image is tagged by content: a second build of unchanged code reuses it.
func TestImageReused(t *testing.T) {
	eng := stacktest.Engine(t)
	ctx := context.Background()
	first, err := stack.BuildLabImage(ctx, eng, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	second, err := stack.BuildLabImage(ctx, eng, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if second.Built || second.Ref != first.Ref || second.ID != first.ID {
		t.Errorf("unchanged code rebuilt: first %+v, second %+v", first, second)
	}
}

// What a killed run leaves (a network and a container never closed) is
// found by label and removed by Clean.
func TestCleanRemovesLeftovers(t *testing.T) {
	eng := stacktest.Engine(t)
	ctx := context.Background()
	img, err := stack.BuildLabImage(ctx, eng, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	runID := "cleantest-" + time.Now().UTC().Format("150405.000000")
	st, err := stack.New(ctx, eng, img, runID)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(role.Spec{Role: topology.Identd, Listen: ":113", Control: ":" + topology.ControlPort, Identd: &identd.Config{User: "u"}})
	if _, err := st.Start(ctx, stack.Spec{Role: topology.Identd, Cmd: []string{"role", "--spec", topology.SpecPath},
		Files: map[string][]byte{topology.SpecPath: spec}, Ready: role.ReadyLine(topology.Identd), Control: topology.ControlPort}); err != nil {
		st.Close()
		t.Fatal(err)
	}
	stacktest.PublishedOnLoopback(t, eng, runID)
	// The run "dies" here: no st.Close.
	before, err := stack.Find(ctx, eng, runID)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Containers) != 2 || len(before.Networks) != 1 {
		t.Fatalf("found %d containers, %d networks of the run; want 2 (the role and the run's reaper) and 1", len(before.Containers), len(before.Networks))
	}
	removed, err := stack.Clean(ctx, eng, runID)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed.Containers) != 2 || len(removed.Networks) != 1 {
		t.Errorf("removed %+v", removed)
	}
	stacktest.NoLeftovers(t, eng, runID)
}
