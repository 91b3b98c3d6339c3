package stack

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/labtest"
)

// Cancelled while the go command compiles (Ctrl-C during a run's image
// step), compileLab leaves nothing in the temporary folder: neither its
// own folder nor the go command's go-build work folder, which the go
// command, killed, cannot remove itself.
func TestCompileInterruptedLeavesNoTempDirs(t *testing.T) {
	tmp := t.TempDir()
	cache := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// An empty build cache: the go command compiles every package, so it
	// is still at work when it is cancelled.
	t.Setenv("GOCACHE", cache)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		binary []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		binary, _, err := compileLab(ctx, &Engine{Arch: runtime.GOARCH})
		done <- result{binary, err}
	}()
	labtest.Until(t, "the go command's go-build work folder", func() bool {
		found := false
		filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "go-build") {
				found = true
				return filepath.SkipAll
			}
			return nil
		})
		return found
	})
	cancel()
	var res result
	labtest.Until(t, "compileLab to return once cancelled", func() bool {
		select {
		case res = <-done:
			return true
		default:
			return false
		}
	})
	if res.err == nil {
		t.Fatalf("the build finished (%d bytes) before it was cancelled: nothing was checked", len(res.binary))
	}
	if !errors.Is(res.err, context.Canceled) {
		t.Errorf("error %q does not say the build was cancelled", res.err)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left in the temporary folder: %s", e.Name())
	}
}
