package report

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// RoleMemory is one role's container's resident memory as the run went
// (lab/stack Container.Memory: anonymous memory, the page cache of the
// files it wrote left out): sampled before the first delivery, each time
// another tenth of the messages was delivered, and at the end.
type RoleMemory struct {
	Role    string         `json:"role"`
	Samples []MemorySample `json:"samples"`
	Peak    int64          `json:"peak_bytes"` // the largest sample
}

// MemorySample is a role's memory when Delivered messages were in the
// Maildir.
type MemorySample struct {
	Delivered int   `json:"delivered"`
	Bytes     int64 `json:"bytes"`
}

// AfterTenth is the first sample taken once a tenth of total messages
// was delivered (the first sample when none was); ok is false when there
// is no sample.
func (m RoleMemory) AfterTenth(total int) (s MemorySample, ok bool) {
	if len(m.Samples) == 0 {
		return MemorySample{}, false
	}
	for _, s := range m.Samples {
		if s.Delivered >= max(1, total/10) {
			return s, true
		}
	}
	return m.Samples[0], true
}

// Growth is the last sample over AfterTenth: 1.0 is flat. 0 when there
// are not two samples to compare.
func (m RoleMemory) Growth(total int) float64 {
	base, ok := m.AfterTenth(total)
	if !ok || len(m.Samples) < 2 {
		return 0
	}
	last := m.Samples[len(m.Samples)-1]
	if base.Bytes == 0 || last == base {
		return 0
	}
	return float64(last.Bytes) / float64(base.Bytes)
}

// WriteMemory prints each role's memory: after a tenth of the messages,
// at the end, the peak and the growth between the two. Nothing when the
// run measured none (docker compose: its runner has no engine to ask).
func WriteMemory(w io.Writer, r *Result) error {
	if len(r.Memory) == 0 {
		return nil
	}
	total := r.Summary.Injected
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nresident memory per role (less page cache)\tafter a tenth\tat the end\tpeak\tgrowth\n")
	for _, m := range r.Memory {
		base, ok := m.AfterTenth(total)
		if !ok {
			fmt.Fprintf(tw, "  %s\tnot measured\t\t\t\n", m.Role)
			continue
		}
		last := m.Samples[len(m.Samples)-1]
		g := "-"
		if x := m.Growth(total); x > 0 {
			g = fmt.Sprintf("%.2fx", x)
		}
		fmt.Fprintf(tw, "  %s\t%s (%d delivered)\t%s (%d delivered)\t%s\t%s\n", m.Role, mib(base.Bytes), base.Delivered, mib(last.Bytes), last.Delivered, mib(m.Peak), g)
	}
	return tw.Flush()
}

func mib(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
