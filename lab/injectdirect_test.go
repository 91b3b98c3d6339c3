package lab_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// TestDirectInjection: workload.injection direct queues every message in
// the Go sender's own process, and the run delivers each exactly once. A
// queue id names the process that committed it (sender.newID: time, pid,
// sequence): every message of the run has the sender's one pid, where a
// sendmail process per message gives each its own. result.json says
// which injection was used.
func TestDirectInjection(t *testing.T) {
	eng := stacktest.Engine(t)
	sc, err := scenario.Parse("direct.yaml", []byte(`
name: direct
timeout: 3m
workload:
  rounds: 25
  injection: direct
  pace: {mode: rate, rate: 250}
dns:
  query_delay: 0s
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := runChecked(t, eng, sc, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Summary.Delivered != 500 || !res.Outcome.OK() {
		t.Fatalf("delivered %d of 500, outcome %+v", res.Summary.Delivered, res.Outcome)
	}
	if p := res.Summary.Pace; p == nil || p.Injection != scenario.InjectDirect {
		t.Errorf("pace %+v, want injection direct", p)
	}
	pids := map[string]int{}
	for _, e := range runEvents(t, res) {
		if e.Kind == events.Queued {
			parts := strings.Split(e.QueueID, ".")
			if len(parts) != 3 {
				t.Fatalf("queue id %q is not time.pid.sequence", e.QueueID)
			}
			pids[parts[1]]++
		}
	}
	if len(pids) != 1 {
		t.Errorf("messages queued by %d processes (%v), want the sender's one", len(pids), pids)
	}
	doc, err := os.ReadFile(filepath.Join(res.Dir, report.ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := report.Validate(doc); err != nil {
		t.Error(err)
	}
}
