package scenario

import (
	"strings"
	"testing"
)

// The 1999 figures stand beside a run only of 1999's workload, whatever
// its pace; otherwise the reason names each field that differs.
func TestNot1999(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"the benchmark", "name: x\n", ""},
		{"another pace", "workload:\n  pace: {mode: rate, rate: 10}\n", ""},
		{"injected in process", "workload:\n  injection: direct\n", ""},
		{"bigger", "workload:\n  rounds: 50\n  recipients: 20\n", "this workload is not 1999's: workload.rounds 50 (1999: 10)"},
		{"another text", "workload:\n  subject: hello\n", `workload.subject "hello" (1999: `},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc, err := Parse("x.yaml", []byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := sc.Workload.Not1999()
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Errorf("Not1999() = %q, want %q", got, c.want)
			}
		})
	}
	a, b := Default().Workload, Default().Workload
	b.Rounds, b.Pace.Rate, b.Pace.Mode = 5, 10, "rate"
	got := WorkloadDiff(a, b)
	var fields []string
	for _, d := range got {
		fields = append(fields, d.Field)
	}
	if got := strings.Join(fields, " "); got != "workload.rounds workload.pace.rate" {
		t.Errorf("WorkloadDiff fields %q, want rounds and pace.rate (the mode is rate on both)", got)
	}
	if d := got[0]; d.A != "10" || d.B != "5" {
		t.Errorf("rounds: %+v, want 10 and 5", d)
	}
}
