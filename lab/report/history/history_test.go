package history

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/report"
)

// TestJudgeInExitCodeOrder: a run's status is the worst that applies, in
// the order of the lab's exit codes: incomplete or not delivered (1),
// then the pace not held (4), then an expectation (3).
func TestJudgeInExitCodeOrder(t *testing.T) {
	no := false
	failed := []report.Verdict{{Name: "max_connections", Want: "<= 1", Got: "20"}, {Name: "delivered", Want: "= 200", Got: "200", OK: true}}
	notHeld := &pace.Kept{Mode: "rate", Held: &no}
	for _, c := range []struct {
		name string
		h    head
		want Status
	}{
		{"passed", head{Complete: true}, Passed},
		{"incomplete", head{Error: "start receiver: exited"}, Incomplete},
		{"lost beats the rest", head{Complete: true, Outcome: report.Outcome{Lost: []string{"<a@x>"}}, Expectations: failed,
			Summary: report.Summary{Pace: notHeld}}, NotDelivered},
		{"pace beats an expectation", head{Complete: true, Expectations: failed, Summary: report.Summary{Pace: notHeld}}, PaceNotHeld},
		{"expectation", head{Complete: true, Expectations: failed}, ExpectFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, why := judge(c.h)
			if got != c.want {
				t.Errorf("judge = %s (%s), want %s", got, why, c.want)
			}
			if got != Passed && why == "" && got != PaceNotHeld {
				t.Errorf("%s with no reason", got)
			}
		})
	}
}

// TestScanNewestFirst: runs and sets come newest first; folders that
// hold no run are passed over; a run's files are those there.
func TestScanNewestFirst(t *testing.T) {
	dir := t.TempDir()
	write := func(sub string, started time.Time, files ...string) {
		r := &report.Result{RunID: filepath.Base(sub), Started: started, Complete: true, Dir: filepath.Join(dir, sub)}
		if err := r.Write(); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			os.WriteFile(filepath.Join(dir, sub, f), []byte("x"), 0o644)
		}
	}
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	write("old", t0)
	write("new", t0.Add(time.Hour), report.HTMLFile)
	write("set-a/r1", t0.Add(time.Minute))
	write("set-b/r1", t0.Add(2*time.Hour))
	os.MkdirAll(filepath.Join(dir, "empty", "nothing"), 0o755)
	idx, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Runs) != 2 || idx.Runs[0].RunID != "new" || idx.Runs[1].RunID != "old" {
		t.Errorf("runs %+v, want new then old", idx.Runs)
	}
	if len(idx.Sets) != 2 || idx.Sets[0].Dir != "set-b" || idx.Sets[0].Runs[0].Dir != "set-b/r1" {
		t.Errorf("sets %+v, want set-b then set-a", idx.Sets)
	}
	if got := idx.Runs[0].Files; len(got) != 3 || got[1] != report.HTMLFile {
		t.Errorf("files of new: %v, want result.json, report.html, events.jsonl", got)
	}
}
