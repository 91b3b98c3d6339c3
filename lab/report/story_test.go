package report

import (
	"bytes"
	"strings"
	"testing"
)

// In the courier-1999 scenario's run kept as test data, one DNS query was
// stalled: the slowest message's story names its session and the faulted
// check.
func TestSlowestTellsTheStall(t *testing.T) {
	r, err := Load("testdata/courier-1999-result.json")
	if err != nil {
		t.Fatal(err)
	}
	st := Slowest(r, 3)
	if len(st) != 3 {
		t.Fatalf("%d stories, want 3", len(st))
	}
	if st[0].Message.Latency < st[1].Message.Latency || st[1].Message.Latency < st[2].Message.Latency {
		t.Errorf("not slowest first: %v, %v, %v", st[0].Message.Latency, st[1].Message.Latency, st[2].Message.Latency)
	}
	faulted := false
	for _, c := range r.Connections {
		for _, ck := range c.Checks {
			faulted = faulted || ck.Faulted
		}
	}
	if !faulted {
		t.Fatal("no check marked faulted in a run with a stall fault")
	}
	var b bytes.Buffer
	if err := WriteDetails(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	// The stalled question was asked three times on one socket with one
	// id (Courier's 5 s and 25 s rounds), each try held by the stall.
	for _, want := range []string{"where the time went", "dns_line", "disk", "the slowest messages", "session r",
		"(3 tries: ", " stall, ", " stall; last "} {
		if !strings.Contains(out, want) {
			t.Errorf("details lack %q:\n%s", want, out)
		}
	}
}

func TestSlowestPutsLostFirst(t *testing.T) {
	r := &Result{Records: Records{Messages: []MessageRecord{
		{MessageID: "<a>", Copies: 1, Latency: 5e9, Status: "delivered"},
		{MessageID: "<b>", Copies: 0, Status: "lost"},
		{MessageID: "<c>", Copies: 1, Latency: 9e9, Status: "delivered"},
	}}}
	st := Slowest(r, 5)
	if len(st) != 3 || st[0].Message.MessageID != "<b>" || st[1].Message.MessageID != "<c>" {
		t.Errorf("order %v", st)
	}
	if !strings.Contains(st[0].Line(), "lost") {
		t.Errorf("story %q does not say lost", st[0].Line())
	}
}
