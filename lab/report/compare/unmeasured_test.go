package compare

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/report"
)

// A figure a run did not measure (report.Summary.Unmeasured) is left out
// of its figures, its stats and its benchmark line, never taken as 0; a
// measured 0 stays in.
func TestUnmeasuredFiguresLeftOut(t *testing.T) {
	base := loadFast(t)
	real := func(id string) *report.Result {
		return variant(base, id, func(s *report.Summary) {
			s.SenderConnections, s.HeldByFaults = 0, 0
			s.Unmeasured = []string{report.KeySenderConnections, report.KeySenderReused, report.KeySenderCloses, report.KeyHeldByFaults}
		})
	}
	keys := func(r *report.Result) []string {
		var ks []string
		for _, f := range Figures(r) {
			ks = append(ks, f.Key)
		}
		return ks
	}
	if ks := keys(real("real")); slices.Contains(ks, "sender_connections") || slices.Contains(ks, "held_by_faults") {
		t.Errorf("unmeasured run's figures %q hold sender_connections or held_by_faults", ks)
	}
	measured := variant(base, "model", func(s *report.Summary) { s.HeldByFaults = 0 })
	if ks := keys(measured); !slices.Contains(ks, "sender_connections") || !slices.Contains(ks, "held_by_faults") {
		t.Errorf("measured run's figures %q lack sender_connections or held_by_faults (a measured 0)", ks)
	}

	stats, err := Stats([]*report.Result{real("r1"), real("r2")})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.Key == "held_by_faults" || s.Key == "sender_connections" {
			t.Errorf("stat %+v of a figure no run measured", s)
		}
	}

	c, err := Compare([]*report.Result{measured, variant(measured, "model2", nil)}, []*report.Result{real("r1"), real("r2")})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"held_by_faults", "sender_connections"} {
		if r := row(t, c, key); r.Verdict != OnlyInA || r.A.N != 2 || r.B.N != 0 {
			t.Errorf("%s measured on A only: %+v, want %q, A 2 runs, B none", key, r, OnlyInA)
		}
	}

	var b bytes.Buffer
	if err := WriteBench(&b, []*report.Result{measured, real("r1")}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	model, realLine := lines[len(lines)-2], lines[len(lines)-1]
	if !strings.Contains(model, " 0 held-msgs") || strings.Contains(realLine, "held-msgs") || strings.Contains(realLine, "sender-conns") {
		t.Errorf("bench lines:\n%s\n%s\nwant held-msgs 0 on the first, no held-msgs or sender-conns on the second", model, realLine)
	}
}
