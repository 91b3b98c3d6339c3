package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/report"
)

// TestReportRepeatsNothing: the text report of a real run (lab run, lab
// report) prints each of its lines once: no block comes twice.
func TestReportRepeatsNothing(t *testing.T) {
	for _, name := range []string{"fast-result.json", "courier-1999-result.json"} {
		t.Run(name, func(t *testing.T) {
			r, err := report.Load(filepath.Join("..", "report", "testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := printRun(&b, "smtplab: scenario "+r.Scenario.Name, r); err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			lines := strings.Split(b.String(), "\n")
			for i, l := range lines {
				l = strings.TrimSpace(l)
				if l == "" {
					continue
				}
				if j, ok := seen[l]; ok {
					t.Errorf("line %d repeats line %d: %q", i+1, j+1, l)
				}
				seen[l] = i
			}
			if len(seen) < 30 {
				t.Errorf("only %d lines: the report is not all there\n%s", len(seen), b.String())
			}
		})
	}
}
