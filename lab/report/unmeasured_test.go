package report

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/scenario"
)

// deliveredRun is one message injected and delivered, with the given
// events besides: no sender connection events, as a real sender's log
// gives none.
func deliveredRun(more ...events.Event) ([]events.Event, []maildir.Message) {
	evs := append([]events.Event{
		ev("sender", events.Queued, 0, func(e *events.Event) { e.MessageID = "<a>" }),
		ev("receiver", events.ConnOpen, time.Second, func(e *events.Event) { e.Conn = "r1" }),
	}, more...)
	return evs, []maildir.Message{{MessageID: "<a>", ModTime: t0.Add(2 * time.Second)}}
}

// summaryJSON is s as result.json writes it, by key.
func summaryJSON(t *testing.T, s Summary) map[string]json.RawMessage {
	t.Helper()
	b, err := json.Marshal(Result{Summary: s})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Summary map[string]json.RawMessage `json:"summary"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Summary
}

// rowNow is the "this run" cell of the text report's row named name.
func rowNow(t *testing.T, s Summary, name string) string {
	t.Helper()
	for _, r := range Rows(s, Seed1999) {
		if r.Name == name {
			return r.Now
		}
	}
	t.Fatalf("no row %q", name)
	return ""
}

const (
	senderRow = "sender connections: opened, messages over a reused one"
	closesRow = "sender connections by how they ended"
	heldRow   = "messages held by a faulted query"
)

// A real sender logs no connections: its figures are null in
// result.json and "not measured" in the text, never 0.
func TestRealSenderConnectionsNotMeasured(t *testing.T) {
	evs, disk := deliveredRun()
	s, _ := Build(Inputs{Events: evs, Maildir: disk, Expected: 1, SenderLogPartial: true})
	want := []string{KeySenderConnections, KeySenderReused, KeySenderCloses}
	if !slices.Equal(s.Unmeasured, want) || s.SenderCloses != nil {
		t.Errorf("unmeasured %q, closes %v; want %q and no closes", s.Unmeasured, s.SenderCloses, want)
	}
	js := summaryJSON(t, s)
	for _, k := range []string{KeySenderConnections, KeySenderReused} {
		if string(js[k]) != "null" {
			t.Errorf("%s: %s, want null", k, js[k])
		}
	}
	if v, ok := js[KeySenderCloses]; ok {
		t.Errorf("sender_closes: %s, want it left out", v)
	}
	if string(js[KeyHeldByFaults]) != "0" || string(js["connections"]) != "1" {
		t.Errorf("held_by_faults %s, connections %s: measured figures, want 0 and 1", js[KeyHeldByFaults], js["connections"])
	}
	if got := rowNow(t, s, senderRow); got != NotMeasured(KeySenderConnections) || !strings.HasPrefix(got, "not measured (") {
		t.Errorf("%q row: %q, want %q", senderRow, got, NotMeasured(KeySenderConnections))
	}
	if got := rowNow(t, s, closesRow); got != "not measured" {
		t.Errorf("%q row: %q, want not measured", closesRow, got)
	}
	var text bytes.Buffer
	if err := WriteText(&text, "t", s, Outcome{}, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "not measured (a real sender's mail log") {
		t.Errorf("text report does not say the sender connections were not measured:\n%s", text.String())
	}
}

// A Go sender that opened no connection measured 0: it stays 0, in Go,
// in result.json and in the text.
func TestMeasuredZeroStaysZero(t *testing.T) {
	evs, disk := deliveredRun()
	s, _ := Build(Inputs{Events: evs, Maildir: disk, Expected: 1})
	if len(s.Unmeasured) != 0 || !s.Measured(KeySenderConnections) || !s.Measured(KeyHeldByFaults) {
		t.Errorf("unmeasured %q, want none", s.Unmeasured)
	}
	js := summaryJSON(t, s)
	for _, k := range []string{KeySenderConnections, KeySenderReused, KeyHeldByFaults} {
		if string(js[k]) != "0" {
			t.Errorf("%s: %s, want 0", k, js[k])
		}
	}
	if _, ok := js["unmeasured"]; ok {
		t.Errorf("unmeasured written for a run that measured everything: %s", js["unmeasured"])
	}
	if got := rowNow(t, s, senderRow); got != "0, 0" {
		t.Errorf("%q row: %q, want 0, 0", senderRow, got)
	}
	if got := rowNow(t, s, heldRow); got != "0" {
		t.Errorf("%q row: %q, want 0", heldRow, got)
	}
}

// A real receiver logs no per-lookup checks: when a fault delayed a
// query, the messages it held cannot be traced and are not measured;
// when none was delayed (a SERVFAIL answers at once), none was held.
func TestRealReceiverHeldByFaults(t *testing.T) {
	fault := func(name string) events.Event {
		return ev("dns", events.Fault, time.Second, func(e *events.Event) { e.FaultName, e.Via = name, []string{"k1"} })
	}
	for _, c := range []struct {
		name     string
		fault    string
		real     bool
		measured bool
	}{
		{"real receiver, stalled query", "stall", true, false},
		{"real receiver, dropped query", "drop", true, false},
		{"real receiver, servfail only", "servfail", true, true},
		{"Go receiver, stalled query", "stall", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs, disk := deliveredRun(fault(c.fault))
			s, _ := Build(Inputs{Events: evs, Maildir: disk, Expected: 1, ReceiverLogPartial: c.real})
			if s.Measured(KeyHeldByFaults) != c.measured {
				t.Fatalf("held by faults measured %v, want %v (unmeasured %q)", s.Measured(KeyHeldByFaults), c.measured, s.Unmeasured)
			}
			js, row := summaryJSON(t, s)[KeyHeldByFaults], rowNow(t, s, heldRow)
			wantJS, wantRow := "0", "0"
			if !c.measured {
				wantJS, wantRow = "null", NotMeasured(KeyHeldByFaults)
			}
			if string(js) != wantJS || row != wantRow {
				t.Errorf("held_by_faults %s, row %q; want %s, %q", js, row, wantJS, wantRow)
			}
			if !s.Measured(KeySenderConnections) {
				t.Errorf("sender connections unmeasured with a Go sender")
			}
		})
	}
}

// A bound on a figure the run did not measure fails and says so; the
// same bound on a measured 0 holds.
func TestCheckUnmeasuredFails(t *testing.T) {
	e := scenario.Expect{MaxHeldByFaults: intp(0)}
	vs := Check(e, Summary{Unmeasured: []string{KeyHeldByFaults}}, Outcome{})
	want := Verdict{"max_held_by_faults", "<= 0", NotMeasured(KeyHeldByFaults), false}
	if len(vs) != 1 || vs[0] != want {
		t.Fatalf("got %+v\nwant [%+v]", vs, want)
	}
	if line := vs[0].String(); !strings.HasPrefix(line, "expect FAILED max_held_by_faults <= 0: got not measured (") {
		t.Errorf("line %q", line)
	}
	if f := Failed(vs); len(f) != 1 {
		t.Errorf("failed %+v, want the unmeasured bound", f)
	}
	// Other unmeasured figures do not touch it.
	vs = Check(e, Summary{Unmeasured: []string{KeySenderConnections}}, Outcome{})
	if len(vs) != 1 || vs[0] != (Verdict{"max_held_by_faults", "<= 0", "0", true}) {
		t.Errorf("measured 0: got %+v", vs)
	}
}

// result.json written from a summary with unmeasured figures validates,
// and reads back to the same document: the figures 0 in Go, still named
// in Unmeasured, still null.
func TestUnmeasuredRoundTrip(t *testing.T) {
	evs, disk := deliveredRun(ev("dns", events.Fault, time.Second, func(e *events.Event) { e.FaultName = "stall" }))
	s, _ := Build(Inputs{Events: evs, Maildir: disk, Expected: 1, SenderLogPartial: true, ReceiverLogPartial: true})
	r := Result{RunID: "real-20260101-000000000", Complete: true, Summary: s, Seed1999: Seed1999}
	r.Dir = t.TempDir()
	if err := r.Write(); err != nil {
		t.Fatal(err)
	}
	got, err := Load(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r.Summary)
	if err := Validate(mustMarshal(t, r)); err != nil {
		t.Errorf("does not validate: %v\n%s", err, b)
	}
	again, _ := json.Marshal(got.Summary)
	if !bytes.Equal(b, again) {
		t.Errorf("read back\n%s\nwant\n%s", again, b)
	}
	if got.Summary.Measured(KeyHeldByFaults) || got.Summary.HeldByFaults != 0 || !slices.Equal(got.Summary.Unmeasured, s.Unmeasured) {
		t.Errorf("read back: unmeasured %q, held %d", got.Summary.Unmeasured, got.Summary.HeldByFaults)
	}
	// Keys keep their order, the Go fields' (jsonFields): only the
	// values change.
	var keys, fields []string
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	for _, f := range jsonFields(reflect.TypeFor[Summary]()) {
		if slices.Contains(keys, f.name) {
			fields = append(fields, f.name)
		}
	}
	if !slices.Equal(keys, fields) {
		t.Errorf("keys\n%q\nwant the fields' order\n%q", keys, fields)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
