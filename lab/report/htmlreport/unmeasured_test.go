package htmlreport

import (
	"html/template"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/report"
)

// A figure the run did not measure reads "not measured" on the page, in
// the glance cards and in the summary table (with why), never 0.
func TestUnmeasuredNotShownAsZero(t *testing.T) {
	r := load(t, courierResult)
	r.Summary.SenderConnections, r.Summary.SenderReused, r.Summary.SenderCloses, r.Summary.HeldByFaults = 0, 0, nil, 0
	r.Summary.Unmeasured = []string{report.KeySenderConnections, report.KeySenderReused, report.KeySenderCloses, report.KeyHeldByFaults}
	pg, err := build(r)
	if err != nil {
		t.Fatal(err)
	}
	card := map[string]string{}
	for _, f := range pg.Glance {
		card[f.Name] = f.Now
	}
	if got := card["held by a faulted query"]; got != "not measured" {
		t.Errorf("held card %q, want not measured", got)
	}
	rows := map[string]string{}
	for _, r := range pg.Summary {
		rows[r.Name] = r.Now
	}
	for name, want := range map[string]string{
		"messages held by a faulted query":                       report.NotMeasured(report.KeyHeldByFaults),
		"sender connections: opened, messages over a reused one": report.NotMeasured(report.KeySenderConnections),
		"sender connections by how they ended":                   "not measured",
	} {
		if rows[name] != want {
			t.Errorf("summary row %q: %q, want %q", name, rows[name], want)
		}
	}
	page := writePage(t, r)
	if want := template.HTMLEscapeString(report.NotMeasured(report.KeyHeldByFaults)); !strings.Contains(page, want) {
		t.Errorf("page lacks %q", want)
	}

	// Measured, the same 0 shows as 0.
	r.Summary.Unmeasured = nil
	pg, err = build(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range pg.Glance {
		if f.Name == "held by a faulted query" && f.Now != "0" {
			t.Errorf("measured held card %q, want 0", f.Now)
		}
	}
}
