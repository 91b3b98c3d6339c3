package htmlreport

import (
	"io"
	"os"
	"testing"

	"github.com/smtplab/smtplab/lab/report"
)

// BenchmarkWriteResult builds the HTML report of the result.json that
// SMTPLAB_RESULT names (a big run's, say: docs/PERFORMANCE.md), and
// reports the page's size. Skipped without it.
func BenchmarkWriteResult(b *testing.B) {
	path := os.Getenv("SMTPLAB_RESULT")
	if path == "" {
		b.Skip("SMTPLAB_RESULT names no result.json")
	}
	r, err := report.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	var c countWriter
	for b.Loop() {
		c = 0
		if err := Write(io.Writer(&c), r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c), "page-bytes")
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
