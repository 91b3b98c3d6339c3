package report

import (
	"bytes"
	"strings"
	"testing"
)

// Each role's line: its memory after a tenth of the messages, at the end,
// the peak and the growth between the first two; a role never sampled
// says so; a run that measured nothing prints nothing.
func TestWriteMemory(t *testing.T) {
	r := &Result{Summary: Summary{Injected: 100}, Memory: []RoleMemory{
		{Role: "dns", Peak: 12 << 20, Samples: []MemorySample{{0, 4 << 20}, {10, 8 << 20}, {50, 12 << 20}, {100, 10 << 20}}},
		{Role: "identd"},
	}}
	var b bytes.Buffer
	if err := WriteMemory(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"8.0 MB (10 delivered)", "10.0 MB (100 delivered)", "12.0 MB", "1.25x", "identd  ", "not measured"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
	if g := r.Memory[0].Growth(100); g != 1.25 {
		t.Errorf("growth %v, want 1.25", g)
	}
	b.Reset()
	if err := WriteMemory(&b, &Result{}); err != nil || b.Len() != 0 {
		t.Errorf("a run without memory printed %q (%v)", b.String(), err)
	}
}
