package compare

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/report"
)

// benchLine is one benchmark result line as the format defines it
// (golang.org/design/14313-benchmark-format): a name starting
// "Benchmark" and holding no space, an iteration count, then value-unit
// pairs. The test reads the lines itself rather than with
// golang.org/x/perf/benchfmt: a module dependency for a test of a few
// lines of text is not worth it. TestBenchstatReads checks the real
// benchstat where it can.
type benchLine struct {
	name   string
	values map[string]float64
}

var configLine = regexp.MustCompile(`^[a-z][^\s:]*: `) // lower-case key without space, colon, space

func parseBench(t *testing.T, text string) (config map[string]string, units map[string]string, lines []benchLine) {
	t.Helper()
	config, units = map[string]string{}, map[string]string{}
	for n, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		f := strings.Fields(l)
		switch {
		case strings.HasPrefix(l, "Benchmark"):
			if len(f) < 4 || len(f)%2 != 0 {
				t.Fatalf("line %d %q: want name, iterations, then value unit pairs", n+1, l)
			}
			if it, err := strconv.Atoi(f[1]); err != nil || it != 1 {
				t.Errorf("line %d: iterations %q, want 1", n+1, f[1])
			}
			b := benchLine{name: f[0], values: map[string]float64{}}
			for i := 2; i < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					t.Errorf("line %d: value %q: %v", n+1, f[i], err)
				}
				if _, dup := b.values[f[i+1]]; dup {
					t.Errorf("line %d: unit %s twice", n+1, f[i+1])
				}
				b.values[f[i+1]] = v
			}
			lines = append(lines, b)
		case strings.HasPrefix(l, "Unit "):
			if len(f) != 3 || (f[2] != "better=lower" && f[2] != "better=higher") {
				t.Errorf("line %d %q: want Unit UNIT better=lower|higher", n+1, l)
			}
			units[f[1]] = f[2]
		case configLine.MatchString(l):
			k, v, _ := strings.Cut(l, ": ")
			config[k] = v
		default:
			t.Errorf("line %d %q: neither a benchmark, a Unit nor a configuration line", n+1, l)
		}
	}
	return config, units, lines
}

func TestWriteBench(t *testing.T) {
	base := loadFast(t)
	runs := withTimes(base, "r-", 3.5, 4.25)
	other := variant(base, "c", nil)
	other.Scenario.Name = "courier-1999"
	other.Environment.CPUs = 0
	other.Environment.OS = "linux/arm64"
	runs = append(runs, other)
	var b bytes.Buffer
	if err := WriteBench(&b, runs); err != nil {
		t.Fatal(err)
	}
	config, units, lines := parseBench(t, b.String())
	if len(lines) != 3 {
		t.Fatalf("%d benchmark lines, want one per run:\n%s", len(lines), b.String())
	}
	for _, want := range []string{"BenchmarkLab/scenario=fast-expect-2", "BenchmarkLab/scenario=fast-expect-2", "BenchmarkLab/scenario=courier-1999-1"} {
		if lines[0].name != want && lines[2].name != want {
			t.Errorf("no line named %s (scenario, then the CPUs: 1 when unknown)", want)
		}
	}
	if lines[0].values["total-sec"] != 3.5 || lines[1].values["total-sec"] != 4.25 {
		t.Errorf("total-sec %v, %v; want 3.5, 4.25", lines[0].values["total-sec"], lines[1].values["total-sec"])
	}
	for _, f := range Figures(base) {
		if got, ok := lines[0].values[f.bench]; !ok || (f.Key != "total_time_s" && got != f.Value) {
			t.Errorf("%s: %v (present %v), want %v", f.bench, got, ok, f.Value)
		}
	}
	if units["msgs/s"] != "better=higher" || units["total-sec"] != "better=lower" || units["delivered-msgs"] != "" {
		t.Errorf("units %v: want msgs/s higher, total-sec lower, delivered-msgs no direction", units)
	}
	if config["goarch"] != "arm64" || config["goos"] != "linux" || config["pkg"] == "" {
		t.Errorf("config %v: want pkg, goos linux, goarch changed to arm64 before the last run", config)
	}
	if strings.Index(b.String(), "goarch: arm64") > strings.Index(b.String(), "courier-1999") {
		t.Errorf("goarch: arm64 comes after the run it is for:\n%s", b.String())
	}

	failed := variant(base, "broken-run", nil)
	failed.Complete = false
	if err := WriteBench(&b, []*report.Result{base, failed}); err == nil || !strings.Contains(err.Error(), "broken-run") {
		t.Errorf("an incomplete run: error %v, want one naming it", err)
	}
}

// benchstatVersion is the benchstat the test runs, from the module
// cache only: the test needs no network, and skips where the module was
// never fetched.
const benchstatVersion = "golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"

// TestBenchstatReads feeds two sets to the real benchstat: it must read
// every line (no syntax warning) and compare each figure.
func TestBenchstatReads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go run")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	base := loadFast(t)
	dir := t.TempDir()
	for name, secs := range map[string][]float64{"a.txt": {1, 2, 3, 4}, "b.txt": {5, 6, 7, 8}} {
		var b bytes.Buffer
		if err := WriteBench(&b, withTimes(base, name, secs...)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	modcache, err := exec.Command(gobin, "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	// The module cache as the only proxy: what was fetched once, offline.
	// Its checksums were verified when it was fetched.
	proxy := "file://" + filepath.ToSlash(filepath.Join(strings.TrimSpace(string(modcache)), "cache", "download"))
	cmd := exec.Command(gobin, "run", benchstatVersion, "a.txt", "b.txt")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY="+proxy, "GOSUMDB=off", "GOFLAGS=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || strings.Contains(stderr.String(), "go: ") {
			t.Skipf("benchstat is not in the module cache (go run %s once to fetch it): %v %s", benchstatVersion, err, stderr.String())
		}
		t.Fatalf("benchstat: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("benchstat complained:\n%s", stderr.String())
	}
	out := stdout.String()
	for _, f := range Figures(base) {
		if !strings.Contains(out, "│ "+f.bench) && !strings.Contains(out, f.bench+" ") {
			t.Errorf("benchstat shows no %s:\n%s", f.bench, out)
		}
	}
	// 4 runs a side that do not overlap: the least for benchstat to call
	// a change significant (p=0.029 < 0.05).
	if !strings.Contains(out, "Lab/scenario=fast-expect") || !strings.Contains(out, "+160.00%") {
		t.Errorf("want the row Lab/scenario=fast-expect and total time 2.5 s to 6.5 s as +160.00%%:\n%s", out)
	}
}
