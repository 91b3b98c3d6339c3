package lab_test

import (
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// scenarios/swarm.yaml on the docker engine: two sending hosts, each a Go
// sender container with its identd in its network namespace. Every
// message is delivered exactly once; the receiver sees both addresses,
// 10 connections from each (round robin over 20 hosts: each host's
// messages come from one sender), and each connection's IDENT query is
// answered at the address it came from; each host's memory is sampled
// under its own name.
func TestSendingHostsOnDocker(t *testing.T) {
	eng := stacktest.Engine(t)
	res := mustRun(t, eng, shipped(t, "swarm.yaml"))
	if res.Summary.Delivered != 200 || !res.Outcome.OK() {
		t.Fatalf("delivered %d of %d, outcome %+v", res.Summary.Delivered, res.Summary.Injected, res.Outcome)
	}
	if res.Environment.Senders != 2 {
		t.Errorf("environment says %d sending hosts, want 2", res.Environment.Senders)
	}
	if p := res.Summary.Pace; p == nil || p.Senders != 2 {
		t.Errorf("the pace does not say the schedule was split between 2 hosts: %+v", p)
	}
	labtest.CheckSendingHosts(t, runEvents(t, res), 2, 10)
	var roles []string
	for _, m := range res.Memory {
		roles = append(roles, m.Role)
		if m.Peak <= 0 {
			t.Errorf("%s: no memory sampled", m.Role)
		}
	}
	if got, want := strings.Join(roles, " "), "dns receiver sender-1 sender-2 identd-1 identd-2"; got != want {
		t.Errorf("memory sampled for %q, want %q", got, want)
	}
}
