package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A result with nothing in it, as a run that failed early leaves, is
// written as a document the schema accepts: its lists as [], never null.
func TestWriteEmptyResultValidates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     Result
		nulls []string // where json.Marshal alone writes null
	}{
		{"zero", Result{RunID: "zero-20260101-000000000"},
			[]string{"/expectations", "/messages", "/connections", "/queries", "/faults"}},
		{"a message without recipients", Result{RunID: "norcpt-20260101-000000000",
			Records: Records{Messages: []MessageRecord{{MessageID: "<1@lab>", Status: "lost"}}}},
			[]string{"/expectations", "/connections", "/queries", "/faults", "/messages/0/rcpts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.Schema = SchemaVersion
			// Not made empty, the same lists are null, which the schema
			// refuses: the check below can fail.
			raw, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			err = Validate(raw)
			for _, at := range tc.nulls {
				if err == nil || !strings.Contains(err.Error(), "'"+at+"': got null") {
					t.Errorf("json.Marshal of the result: Validate = %v, want null refused at %s", err, at)
				}
			}

			r.Dir = t.TempDir()
			if err := r.Write(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(r.Dir, ResultFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(b); err != nil {
				t.Errorf("written %s does not validate: %v\n%s", ResultFile, err, b)
			}
			if _, err := os.Stat(filepath.Join(r.Dir, EventsFile)); err != nil {
				t.Errorf("no %s beside it: %v", EventsFile, err)
			}
		})
	}
}

// Load says which file it read, whether given the file, a run's folder
// or a result under another name.
func TestLoadSetsPath(t *testing.T) {
	dir := t.TempDir()
	r := Result{RunID: "path-20260101-000000000", Dir: filepath.Join(dir, "run")}
	if err := r.Write(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r.Dir, ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "baseline.json")
	if err := os.WriteFile(other, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ given, want string }{
		{r.Dir, filepath.Join(r.Dir, ResultFile)},
		{filepath.Join(r.Dir, ResultFile), filepath.Join(r.Dir, ResultFile)},
		{other, other},
	} {
		got, err := Load(tc.given)
		if err != nil {
			t.Fatalf("Load(%s): %v", tc.given, err)
		}
		if got.Path != tc.want {
			t.Errorf("Load(%s).Path = %q, want %q", tc.given, got.Path, tc.want)
		}
		if got.Dir != filepath.Dir(tc.want) {
			t.Errorf("Load(%s).Dir = %q, want %q", tc.given, got.Dir, filepath.Dir(tc.want))
		}
	}
	if r, _ := Parse(b); r.Path != "" {
		t.Errorf("Parse set Path %q; only Load reads a file", r.Path)
	}
}
