package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fastResult is a real run's result.json (scenario fast-expect).
const fastResult = "testdata/fast-result.json"

func readFast(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(fastResult)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// brokenResults are ways a result.json goes wrong, each with what the
// error must say.
func brokenResults(good []byte) []struct {
	name, in string
	want     []string
} {
	head := func(n int) string { return string(good[:n]) }
	replace := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	return []struct {
		name, in string
		want     []string
	}{
		{"empty", "", []string{"empty file"}},
		{"blank", " \n\t\n", []string{"empty file"}},
		{"truncated half", head(len(good) / 2), []string{"truncated", "ends early"}},
		{"truncated in the header", head(60), []string{"truncated"}},
		{"truncated after the first brace", "{", []string{"truncated"}},
		{"foreign object", `{"foo":1}`, []string{"not an smtplab result", `no "schema"`}},
		{"package.json", `{"name": "left-pad", "version": "1.3.0", "main": "index.js", "license": "WTFPL"}`, []string{"not an smtplab result"}},
		{"null", "null", []string{"not an smtplab result"}},
		{"array", `[{"schema": "smtplab/result/v1"}]`, []string{"not an smtplab result", "JSON array", "want an object"}},
		{"string", `"result"`, []string{"not an smtplab result", "JSON string"}},
		{"number", "42", []string{"not an smtplab result", "JSON number"}},
		{"other version", replace(`"schema": "smtplab/result/v1"`, `"schema": "smtplab/result/v2"`), []string{`"smtplab/result/v2"`, `reads "smtplab/result/v1"`}},
		{"other schema", `{"schema": "https://json.schemastore.org/package", "run_id": "x"}`, []string{"schemastore", SchemaVersion}},
		{"schema not a string", `{"schema": 1, "run_id": "x"}`, []string{`field "schema"`, "number", "want string", "line 1, column 12"}},
		{"no run_id", `{"schema": "smtplab/result/v1"}`, []string{"not an smtplab result", "no run_id"}},
		{"empty run_id", `{"schema": "smtplab/result/v1", "run_id": ""}`, []string{"no run_id"}},
		{"not JSON", "schema: smtplab/result/v1\n", []string{"not valid JSON", "line 1, column 1"}},
		{"binary", "\x00\xff\xfe{", []string{"not valid JSON"}},
		{"two documents", `{"schema": "smtplab/result/v1", "run_id": "x"} {"schema": "smtplab/result/v1", "run_id": "y"}`, []string{"not valid JSON", "after top-level value"}},
		{"wrong field type", replace(`"complete": true`, `"complete": "yes"`), []string{`field "complete"`, "want bool", "line "}},
		{"wrong nested type", replace(`"injected": 200`, `"injected": "all"`), []string{`field "summary.injected"`, "want int", "line 121, "}},
		{"bad time", replace(`"started": "2026-11-28T11:18:20.95164767Z"`, `"started": "yesterday"`), []string{"not a valid smtplab result", "yesterday"}},
		{"bad duration", replace(`"timeout": "2m0s"`, `"timeout": "forever"`), []string{"not a valid smtplab result", "forever"}},
		{"syntax error inside", replace(`"complete": true,`, `"complete": true,,`), []string{"not valid JSON at line 119, column 20"}},
	}
}

func TestParse(t *testing.T) {
	good := readFast(t)
	r, err := Parse(good)
	if err != nil {
		t.Fatalf("a real run's result: %v", err)
	}
	if r.RunID != "fast-expect-20261128-111820951" || !r.Complete || r.Summary.Delivered != 200 || r.Scenario.Name != "fast-expect" || len(r.Messages) != 200 {
		t.Errorf("parsed %s complete %v delivered %d scenario %q messages %d", r.RunID, r.Complete, r.Summary.Delivered, r.Scenario.Name, len(r.Messages))
	}
	for _, tc := range brokenResults(good) {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("no error, parsed run %q", r.RunID)
			}
			if r != nil {
				t.Errorf("a result beside the error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "struct {") {
				t.Errorf("error %q shows a Go type", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	good := readFast(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	runDir := filepath.Join(dir, "run")
	os.Mkdir(runDir, 0o755)
	os.WriteFile(filepath.Join(runDir, ResultFile), good, 0o644)

	for _, path := range []string{fastResult, runDir} {
		r, err := Load(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if r.Dir != filepath.Dir(filepath.Join(path, "x")) && r.Dir != filepath.Dir(path) {
			t.Errorf("%s: Dir %q", path, r.Dir)
		}
	}

	for _, tc := range []struct {
		path string
		want string
	}{
		{filepath.Join(dir, "missing.json"), "no such file"},
		{filepath.Join(dir, "empty"), "no such file"}, // a folder without result.json
		{write("empty.json", ""), "empty file"},
		{write("truncated.json", string(good[:1000])), "truncated"},
		{write("foreign.json", `{"foo":1}`), "not an smtplab result"},
		{write("package.json", `{"name": "x", "version": "1.0.0"}`), "not an smtplab result"},
		{write("v2.json", `{"schema": "smtplab/result/v2", "run_id": "x"}`), "smtplab/result/v2"},
	} {
		if strings.HasSuffix(tc.path, "empty") {
			os.Mkdir(tc.path, 0o755)
		}
		_, err := Load(tc.path)
		if err == nil {
			t.Errorf("%s: no error", tc.path)
			continue
		}
		if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to name the file and say %q", tc.path, err, tc.want)
		}
	}
}

// FuzzParseResult: Parse never panics, and either returns a result that
// is an smtplab result of this version or an error, never both.
func FuzzParseResult(f *testing.F) {
	good := readFast(f)
	f.Add(good)
	for _, tc := range brokenResults(good) {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(`{"schema": "smtplab/result/v1", "run_id": "x"}`))
	f.Add([]byte(`{"schema": "smtplab/result/v1", "run_id": "x", "summary": {"latency": {"p50_ns": 1e300}}}`))
	f.Add(bytes.Repeat([]byte("["), 20000))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		switch {
		case err != nil && r != nil:
			t.Fatalf("both a result and an error: %v", err)
		case err != nil && err.Error() == "":
			t.Fatal("an empty error")
		case err == nil && r == nil:
			t.Fatal("neither a result nor an error")
		case err == nil && (r.Schema != SchemaVersion || r.RunID == ""):
			t.Fatalf("accepted schema %q run_id %q", r.Schema, r.RunID)
		}
	})
}
