package scenario

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// hostile refuses one scenario file: the error names the file and the
// line, says what is wrong (want), and the loader allocated at most
// 200 MB on the way. (Allocation, not time, is what a hostile file
// inflates; it does not depend on how busy the machine is.)
func hostile(t *testing.T, path, want string) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Load(path)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatalf("%s was accepted", path)
	}
	if !strings.HasPrefix(err.Error(), path+":") || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %q, want %q with file:line", path, err, want)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 200<<20 {
		t.Errorf("%s: %d MB allocated to refuse it", path, n>>20)
	}
}

// TestHostileScenarios refuses every file of testdata/hostile with the
// error its first line wants ("# want: LINE: text": the file's line and
// the message), and files made here: one too big, one nested too deep.
func TestHostileScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/hostile/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no hostile scenarios: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := bytes.Cut(b, []byte("\n"))
		want, ok := strings.CutPrefix(string(first), "# want: ")
		if !ok {
			t.Fatalf("%s: the first line says no '# want: '", f)
		}
		t.Run(filepath.Base(f), func(t *testing.T) { hostile(t, f, want) })
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, append([]byte("name: big\ndescription: "), bytes.Repeat([]byte("x"), 50<<20)...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("50 MB", func(t *testing.T) { hostile(t, big, ":1: the file is 52428823 bytes; a scenario is at most 1048576") })
	deep := filepath.Join(dir, "deep.yaml")
	if err := os.WriteFile(deep, []byte("name: deep\nx: "+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("deep", func(t *testing.T) { hostile(t, deep, ":2: nested 100000 deep; a scenario nests at most 64") })
	indented := filepath.Join(dir, "indented.yaml")
	var b strings.Builder
	b.WriteString("name: indented\n")
	for i := 0; i < 1000; i++ {
		b.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	if err := os.WriteFile(indented, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("indented", func(t *testing.T) {
		hostile(t, indented, ":1001: indented 999 columns; a scenario is indented at most 512")
	})
}
