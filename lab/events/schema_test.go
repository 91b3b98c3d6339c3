package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Every kind is in the schema, documented; an event with every field set
// fits it (a new field must be added to the schema); what is not an event
// does not.
func TestSchema(t *testing.T) {
	var s struct {
		Properties struct {
			Kind struct {
				OneOf []struct{ Const, Description string } `json:"oneOf"`
			} `json:"kind"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(Schema, &s); err != nil {
		t.Fatal(err)
	}
	documented := map[Kind]bool{}
	for _, k := range s.Properties.Kind.OneOf {
		if len(k.Description) < 20 {
			t.Errorf("kind %s: description %q", k.Const, k.Description)
		}
		documented[Kind(k.Const)] = true
	}
	for _, k := range Kinds() {
		if !documented[k] {
			t.Errorf("kind %s is not in events.schema.json", k)
		}
	}
	if len(documented) != len(Kinds()) {
		t.Errorf("the schema has %d kinds, the code %d", len(documented), len(Kinds()))
	}
	full := Event{Time: time.Now(), Role: "receiver", Kind: Check, Conn: "r1", Host: "h", QueueID: "q", MessageID: "<m>",
		From: "f", Rcpts: []string{"r"}, Check: "dnsbl", Name: "n", QType: "A", Result: "NOERROR", Code: 250, Enhanced: "2.0.0",
		Error: "e", Reason: "r", Path: "p", Count: 1, Duration: 1, Seq: 1, SizeIn: 1, SizeOut: 1, QueueWait: 1, OnLine: 1,
		Upstream: 1, FaultName: "stall", Via: []string{"a#1"}}
	var b bytes.Buffer
	if err := WriteJSONL(&b, []Event{full, {Time: time.Now(), Role: "lab", Kind: Outage}}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateJSONL(&b); err != nil {
		t.Errorf("events with every field: %v", err)
	}
	for _, bad := range []string{
		`{"time":"2026-12-06T00:00:00Z","role":"receiver","kind":"teleported"}`,
		`{"time":"2026-12-06T00:00:00Z","role":"receiver","kind":"check","colour":"red"}`,
		`{"role":"receiver","kind":"check"}`,
		`{"time":"2026-12-06T00:00:00Z","role":"receiver","kind":"check","code":"250"}`,
	} {
		if err := ValidateJSONL(strings.NewReader(`{"time":"2026-12-06T00:00:00Z","role":"dns","kind":"dns_query"}` + "\n" + bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: %v, want an error on line 2", bad, err)
		}
	}
}
