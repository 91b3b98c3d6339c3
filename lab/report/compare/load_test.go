package compare

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSet(t *testing.T) {
	base := loadFast(t)
	repeat := t.TempDir()
	for i, id := range []string{"fast-expect-3", "fast-expect-1", "fast-expect-2"} {
		r := variant(base, id, nil)
		r.Summary.Retries = i
		r.Dir = filepath.Join(repeat, id)
		if err := r.Write(); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(repeat, "logs"), 0o755)                       // no result.json: passed over
	os.WriteFile(filepath.Join(repeat, "notes.txt"), []byte("x"), 0o644) // a file: passed over

	for _, tc := range []struct {
		path string
		ids  []string
	}{
		{fastResult, []string{base.RunID}},
		{filepath.Join(repeat, "fast-expect-2"), []string{"fast-expect-2"}},
		{filepath.Join(repeat, "fast-expect-2", "result.json"), []string{"fast-expect-2"}},
		{repeat, []string{"fast-expect-1", "fast-expect-2", "fast-expect-3"}},
	} {
		runs, err := LoadSet(tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		var ids []string
		for _, r := range runs {
			ids = append(ids, r.RunID)
		}
		if strings.Join(ids, " ") != strings.Join(tc.ids, " ") {
			t.Errorf("%s: runs %v, want %v", tc.path, ids, tc.ids)
		}
	}

	empty := t.TempDir()
	broken := t.TempDir()
	os.Mkdir(filepath.Join(broken, "r1"), 0o755)
	os.WriteFile(filepath.Join(broken, "r1", "result.json"), []byte(`{"foo": 1}`), 0o644)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{filepath.Join(empty, "nothing-here"), []string{filepath.Join(empty, "nothing-here"), "no such file"}},
		{empty, []string{empty, "no result.json"}},
		{broken, []string{filepath.Join(broken, "r1", "result.json"), "not an smtplab result"}},
	} {
		_, err := LoadSet(tc.path)
		if err == nil {
			t.Errorf("%s: no error", tc.path)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.path, err, w)
			}
		}
	}
}
