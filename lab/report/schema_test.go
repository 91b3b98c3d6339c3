package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Real runs' result.json files validate against the schema, also after a
// round trip through today's types (so a field renamed or retyped in Go
// without a schema change fails here). The container test in package lab
// validates the file a fresh run writes.
func TestSchemaAcceptsRealResults(t *testing.T) {
	files, _ := filepath.Glob("testdata/*-result.json")
	if len(files) == 0 {
		t.Fatal("no testdata/*-result.json")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		r, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(again); err != nil {
			t.Errorf("%s re-encoded: %v", f, err)
		}
	}
}

func TestSchemaRejects(t *testing.T) {
	b, err := os.ReadFile("testdata/fast-result.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, old, new, want string }{
		{"other version", `"schema": "smtplab/result/v1"`, `"schema": "smtplab/result/v0"`, "/schema"},
		{"negative count", `"injected": 200,`, `"injected": -1,`, "/summary/injected"},
		{"timeout as a number", `"timeout": "`, `"timeout": 5, "x": "`, "/scenario/timeout"},
		{"duration as text", `"total_time_ns": `, `"total_time_ns": "3s", "x": `, "/summary/total_time_ns"},
		{"unknown status", `"status": "delivered"`, `"status": "maybe"`, "/messages/0/status"},
		{"bad time", `"started": "`, `"started": "yesterday", "x": "`, "/started"},
	} {
		doc := strings.Replace(string(b), c.old, c.new, 1)
		if doc == string(b) {
			t.Fatalf("%s: %q not in the testdata", c.name, c.old)
		}
		err := Validate([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error at %s", c.name, err, c.want)
		}
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	delete(m, "messages")
	doc, _ := json.Marshal(m)
	if err := Validate(doc); err == nil || !strings.Contains(err.Error(), "messages") {
		t.Errorf("without messages: Validate = %v, want it missing", err)
	}
}
