package report

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
)

// BenchmarkReplayRun does, on the run folder SMTPLAB_RUN names (a big
// run's: docs/PERFORMANCE.md), what the lab process does at the end of a
// run: reads every event, lists the Maildir, builds the summary and the
// records, and writes result.json and events.jsonl (into a temporary
// folder). It reports the live heap after each step, after a collection,
// in MB: what the lab holds at once. Skipped without SMTPLAB_RUN.
func BenchmarkReplayRun(b *testing.B) {
	dir := os.Getenv("SMTPLAB_RUN")
	if dir == "" {
		b.Skip("SMTPLAB_RUN names no run folder")
	}
	live := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapAlloc) / (1 << 20)
	}
	var evMB, recMB float64
	for b.Loop() {
		f, err := os.Open(filepath.Join(dir, EventsFile))
		if err != nil {
			b.Fatal(err)
		}
		evs, err := events.ReadJSONL(f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		md, err := maildir.Dir(filepath.Join(dir, "maildir")).List()
		if err != nil {
			b.Fatal(err)
		}
		evMB = live()
		in := Inputs{Events: evs, Maildir: md, Expected: len(md)}
		r := &Result{Dir: b.TempDir(), Events: evs}
		r.Summary, r.Outcome = Build(in)
		r.Records = BuildRecords(in)
		recMB = live()
		if err := r.Write(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(evs)), "events")
	}
	b.ReportMetric(evMB, "MB-events")
	b.ReportMetric(recMB, "MB-events+records")
}
