package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/topology"
)

// FuzzAcceptedScenarioStarts runs the whole validation path (Parse) on
// any input; a scenario it accepts must be one the lab can start: it
// translates into every role's spec, the DNS stub's zone and the
// injection, each of which encodes as JSON (as the roles are given them),
// without an error.
func FuzzAcceptedScenarioStarts(f *testing.F) {
	for _, glob := range []string{"../scenarios/*.yaml", "../docs/examples/*.yaml", "scenario/testdata/hostile/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := scenario.Parse("f.yaml", b)
		if err != nil {
			return
		}
		p := NewPlan(sc)
		a := Addrs{topology.DNS: "10.0.0.2", topology.Receiver: "10.0.0.3", topology.Sender: "10.0.0.4", topology.Identd: "10.0.0.4", topology.Final: "10.0.0.5"}
		roles := append(topology.Roles(), topology.Final)
		for _, r := range roles {
			if _, err := json.Marshal(p.Spec(r, a)); err != nil {
				t.Fatalf("accepted, but the %s's spec does not encode: %v", r, err)
			}
		}
		if _, err := json.Marshal(p.Zone(a)); err != nil {
			t.Fatalf("accepted, but the zone does not encode: %v", err)
		}
		var inj map[string]any
		if err := json.Unmarshal(p.Workload(), &inj); err != nil {
			t.Fatalf("accepted, but the workload does not encode: %v", err)
		}
		if err := p.Injection.Pace.Validate(); err != nil {
			t.Fatalf("accepted, but its pace is refused: %v", err)
		}
	})
}
