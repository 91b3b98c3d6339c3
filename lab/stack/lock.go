package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// imageLock takes the build lock of the image ref on this machine, across
// processes: two runs (or two test packages) wanting the same image build
// it once, the second finding it made, rather than both building it and
// the last tag winning (and twice the debootstrap). Builds of different
// images do not wait for each other, and a run whose images exist takes
// no lock at all (buildOnce in lab/stack/image.go).
//
// The lock is a flock(2) on a file of its own in the temporary folder
// (lockPath): the kernel releases it when its holder dies, killed or not.
// When another process holds it, imageLock says so through logf, then
// waits until it is free or ctx ends. The returned function releases it.
func imageLock(ctx context.Context, ref string, logf func(string, ...any)) (func(), error) {
	path := lockPath(ref)
	said := false
	for {
		f, err := openLock(path)
		if err != nil {
			return nil, fmt.Errorf("image build lock for %s: %w", ref, err)
		}
		if err := flockWait(ctx, f, func() {
			if !said {
				logf("waiting for another process building %s (it holds %s)", ref, path)
				said = true
			}
		}); err != nil {
			f.Close()
			return nil, fmt.Errorf("waiting for another process building %s (%s): %w", ref, path, err)
		}
		// The last holder removes the file as it lets go (below): a lock
		// won on a removed file locks nothing another process can see, so
		// take it again on the file now at path.
		if sameFile(f, path) {
			return func() {
				os.Remove(path)
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		f.Close()
	}
}

// lockPath is the lock file of the image ref: smtplab-image-build-<ref>.lock
// in the temporary folder, with every character of ref but letters,
// digits, '.' and '-' made '_'.
func lockPath(ref string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, ref)
	return filepath.Join(os.TempDir(), "smtplab-image-build-"+name+".lock")
}

// openLock opens path read-only, which flock needs no more than, creating
// it when missing. An existing file is opened without O_CREAT: Linux's
// fs.protected_regular refuses O_CREAT on another user's file in a sticky
// folder such as /tmp, even to root (the lab's images are built as root
// when debootstrap is needed, as the user otherwise).
func openLock(path string) (*os.File, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		f, err = os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o666)
	}
	return f, err
}

// flockWait takes an exclusive flock on f. When f is locked already, it
// calls busy, then tries again every 100 ms until it has the lock or ctx
// ends.
func flockWait(ctx context.Context, f *os.File, busy func()) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK {
			return err
		}
		busy()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sameFile tells whether f is the file now at path.
func sameFile(f *os.File, path string) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(path)
	return err == nil && os.SameFile(held, now)
}
