package stack

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Every image has a lock file of its own, named so that no two refs
// share one and no ref reaches outside the temporary folder.
func TestLockPath(t *testing.T) {
	refs := []string{
		"smtplab/postfix-base:0123456789abcdef",
		"smtplab/postfix:0123456789abcdef",
		"smtplab/lab:0123456789abcdef",
		"smtplab/with-lab:0123456789abcdef",
		"../../etc/passwd",
	}
	seen := map[string]string{}
	for _, ref := range refs {
		p := lockPath(ref)
		if filepath.Dir(p) != filepath.Clean(os.TempDir()) || strings.ContainsAny(filepath.Base(p), "/:") {
			t.Errorf("%s: lock file %s is not a plain name in %s", ref, p, os.TempDir())
		}
		if other, ok := seen[p]; ok {
			t.Errorf("%s and %s share the lock file %s", ref, other, p)
		}
		seen[p] = ref
	}
}

// holdLockEnv names the image whose lock TestHoldImageLock, run as a
// child process, takes and holds until it is killed.
const holdLockEnv = "SMTPLAB_TEST_HOLD_IMAGE_LOCK"

// TestHoldImageLock is the child process of TestImageLockHolderKilled; run
// by go test, it does nothing.
func TestHoldImageLock(t *testing.T) {
	ref := os.Getenv(holdLockEnv)
	if ref == "" {
		return
	}
	if _, err := imageLock(context.Background(), ref, t.Logf); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("held")
	select {}
}

// A process that must wait for an image's lock says what it waits for,
// and takes the lock once the process holding it is killed: the kernel
// releases a flock with its holder, so a killed build holds no one up.
// Released, the lock leaves no file behind.
func TestImageLockHolderKilled(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	ref := "smtplab/postfix-base:lockedbychild"
	child := exec.Command(os.Args[0], "-test.run=^TestHoldImageLock$")
	child.Env = append(os.Environ(), holdLockEnv+"="+ref)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer child.Process.Kill()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "held\n" {
		t.Fatalf("the child process did not take the lock: %q", line)
	}

	said := make(chan string, 10)
	type result struct {
		unlock func()
		err    error
	}
	done := make(chan result, 1)
	go func() {
		unlock, err := imageLock(context.Background(), ref, func(format string, args ...any) {
			said <- fmt.Sprintf(format, args...)
		})
		done <- result{unlock, err}
	}()
	select {
	case line := <-said:
		if !strings.Contains(line, "waiting for another process building "+ref) {
			t.Errorf("says %q, not what it waits for", line)
		}
	case r := <-done:
		t.Fatalf("took the lock the child process holds (error %v)", r.err)
	case <-time.After(2 * time.Minute):
		t.Fatal("said nothing in two minutes while the lock was held (a hang, not a timing assertion)")
	}
	select {
	case r := <-done:
		t.Fatalf("took the lock the child process holds (error %v)", r.err)
	default:
	}
	child.Process.Kill()
	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the lock was not taken in two minutes after its holder was killed (a hang, not a timing assertion)")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.unlock()
	if _, err := os.Stat(lockPath(ref)); !os.IsNotExist(err) {
		t.Errorf("lock file %s left behind (%v)", lockPath(ref), err)
	}
	for len(said) > 0 {
		t.Errorf("said again %q", <-said)
	}
}

// A lock taken on a file its last holder removed is taken again on the
// file now at the path, so a process arriving later waits for it.
func TestImageLockRemovedFile(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	ref := "smtplab/lab:removedfile"
	ctx := context.Background()
	first, err := imageLock(ctx, ref, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	said := make(chan string, 10)
	done := make(chan func(), 1)
	go func() {
		unlock, err := imageLock(ctx, ref, func(format string, args ...any) { said <- fmt.Sprintf(format, args...) })
		if err != nil {
			t.Error(err)
		}
		done <- unlock
	}()
	select {
	case <-said:
	case <-time.After(2 * time.Minute):
		t.Fatal("the second did not wait (a hang guard, not a timing assertion)")
	}
	first() // removes the file the second has open
	var second func()
	select {
	case second = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the second did not take the lock (a hang guard, not a timing assertion)")
	}
	if second == nil {
		t.FailNow()
	}
	defer second()
	f, err := openLock(lockPath(ref))
	if err != nil {
		t.Fatalf("the second holds no lock file at %s: %v", lockPath(ref), err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != syscall.EWOULDBLOCK {
		t.Errorf("a third process locking %s got %v, not EWOULDBLOCK: the second's lock is on a file no one else sees", lockPath(ref), err)
	}
}
