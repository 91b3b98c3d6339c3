package lab_test

import (
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
	"github.com/smtplab/smtplab/lab/topology"
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
	clients, identOK, senderConns := map[string]int{}, map[string]int{}, map[string]int{}
	for _, e := range runEvents(t, res) {
		switch {
		case e.Role == topology.Receiver && e.Kind == events.ConnOpen:
			host, _, _ := strings.Cut(e.Host, ":")
			clients[host]++
		case e.Role == topology.Receiver && e.Kind == events.Check && e.Check == "ident" && e.Error == "" && e.Result != "":
			host, _, _ := strings.Cut(e.Name, ":")
			identOK[host]++
		case e.Role == topology.Sender && e.Kind == events.ConnOpen:
			h, _, _ := strings.Cut(e.Conn, "/")
			senderConns[h]++
		}
	}
	if len(clients) != 2 {
		t.Errorf("the receiver saw connections from %v, want two sending hosts", clients)
	}
	for host, n := range clients {
		if n != 10 || identOK[host] != n {
			t.Errorf("host %s: %d connections (want 10), %d IDENT answers from it (want one each)", host, n, identOK[host])
		}
	}
	if senderConns["sender-1"] != 10 || senderConns["sender-2"] != 10 || len(senderConns) != 2 {
		t.Errorf("sender connections by host %v, want 10 from each of sender-1 and sender-2", senderConns)
	}
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
