package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// buildLock serialises image builds on this machine, across processes:
// two runs (or two test packages) wanting the same image build it once,
// the second finding it made, rather than both building it and the last
// tag winning (and twice the debootstrap). It waits for the lock until ctx
// ends; the returned function releases it.
func buildLock(ctx context.Context) (func(), error) {
	path := filepath.Join(os.TempDir(), "smtplab-image-build.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("image build lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("image build lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another image build (%s): %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
