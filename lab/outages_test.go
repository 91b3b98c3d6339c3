package lab

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/outage"
	"github.com/smtplab/smtplab/lab/topology"
)

// fakeTarget is a container that records what was done to it.
type fakeTarget struct {
	role  topology.Role
	mu    *sync.Mutex
	calls *[]string
}

func (f fakeTarget) do(op string) error {
	f.mu.Lock()
	*f.calls = append(*f.calls, op+" "+string(f.role))
	f.mu.Unlock()
	return nil
}
func (f fakeTarget) Kill(context.Context) error       { return f.do("kill") }
func (f fakeTarget) Start(context.Context) error      { return f.do("start") }
func (f fakeTarget) Pause(context.Context) error      { return f.do("pause") }
func (f fakeTarget) Unpause(context.Context) error    { return f.do("unpause") }
func (f fakeTarget) Disconnect(context.Context) error { return f.do("disconnect") }
func (f fakeTarget) Connect(context.Context) error    { return f.do("connect") }

// TestOutagesCarriedOut: each rule acts on its role's container, begins
// and ends as events, a restored role is handed back, and a kill without
// restart leaves its role down for good.
func TestOutagesCarriedOut(t *testing.T) {
	var mu sync.Mutex
	var calls, restored []string
	targets := map[topology.Role]outage.Target{}
	for _, r := range outage.Roles {
		targets[r] = fakeTarget{role: r, mu: &mu, calls: &calls}
	}
	ms := time.Millisecond
	sched, err := outage.New([]outage.Spec{
		{Type: "pause", Role: topology.DNS, At: ms, Duration: 20 * ms},
		{Type: "kill", Role: topology.Receiver, At: 2 * ms, Restart: true},
		{Type: "partition", Role: topology.Sender, At: 3 * ms, Duration: 10 * ms},
		{Type: "kill", Role: topology.Identd, At: 4 * ms},
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	o := newOutages(sched, targets, func(_ context.Context, r topology.Role) error {
		mu.Lock()
		restored = append(restored, string(r))
		mu.Unlock()
		return nil
	})
	o.watch(context.Background(), running{}, time.Now())
	evs := o.finish()
	slices.Sort(calls)
	if want := []string{"connect sender", "disconnect sender", "kill identd", "kill receiver", "pause dns", "start receiver", "unpause dns"}; !slices.Equal(calls, want) {
		t.Errorf("done to the containers: %q, want %q", calls, want)
	}
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%s %s %s", e.Name, e.Role, e.Reason))
		if e.Reason == "end" && e.Duration <= 0 {
			t.Errorf("%s ended with no duration", e.Name)
		}
	}
	slices.Sort(got)
	want := []string{"faults[0] dns begin", "faults[0] dns end", "faults[1] receiver begin", "faults[1] receiver end",
		"faults[2] sender begin", "faults[2] sender end", "faults[3] identd begin"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	slices.Sort(restored)
	if !slices.Equal(restored, []string{"dns", "receiver", "sender"}) {
		t.Errorf("handed back: %q", restored)
	}
	if down, comesBack, _ := o.down(topology.Identd); !down || comesBack {
		t.Errorf("identd after a kill without restart: down %v, comes back %v", down, comesBack)
	}
	if down, _, _ := o.down(topology.Receiver); down {
		t.Error("the receiver is still down after its restart")
	}
	if o.busy() {
		t.Error("an outage is still under way after finish")
	}
}
