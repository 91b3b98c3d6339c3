package maildir

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// On Linux a delivery's files are opened, written and closed with the
// system calls alone. os.OpenFile would try to add each regular file to
// the network poller: fcntl to set O_NONBLOCK, an epoll_ctl that fails
// (EPERM: regular files cannot be polled), fcntl to clear it again, five
// system calls per message that buy nothing for a file written once.

// writeNew creates path (it must not exist), writes data to it and, with
// fsync, fsyncs it. On error the file is removed. The creation is made
// holding dirOps (see Dir.Deliver); the write and the fsync are not.
func writeNew(path string, data []byte, fsync bool, dirOps sync.Locker) error {
	dirOps.Lock()
	fd, err := retry(func() (int, error) {
		return syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o600)
	})
	dirOps.Unlock()
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	op := "write"
	for len(data) > 0 && err == nil {
		var n int
		n, err = retry(func() (int, error) { return syscall.Write(fd, data) })
		if err == nil && n == 0 {
			err = syscall.EIO
		}
		data = data[n:]
	}
	if err == nil && fsync {
		op = "fsync"
		_, err = retry(func() (int, error) { return 0, syscall.Fsync(fd) })
	}
	if cerr := syscall.Close(fd); err == nil && cerr != nil {
		op, err = "close", cerr
	}
	if err != nil {
		syscall.Unlink(path)
		return &os.PathError{Op: op, Path: path, Err: err}
	}
	return nil
}

// syncDir makes a folder's entries durable: open, fsync, close.
func syncDir(dir string) error {
	fd, err := retry(func() (int, error) {
		return syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	_, err = retry(func() (int, error) { return 0, syscall.Fsync(fd) })
	syscall.Close(fd)
	if err != nil {
		return &os.PathError{Op: "sync", Path: dir, Err: err}
	}
	return nil
}

// retry repeats a system call interrupted by a signal (the Go runtime's
// preemption signals among them).
func retry(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if !errors.Is(err, syscall.EINTR) {
			return n, err
		}
	}
}

// noReplaceMissing is set once renameat2 said the system or the file
// system lacks RENAME_NOREPLACE: from then on moveNew links and unlinks.
var noReplaceMissing atomic.Bool

// renameNoReplace moves tmp to dst with renameat2(RENAME_NOREPLACE): one
// atomic system call that, as link(2), fails with EEXIST rather than
// replace dst, where link then unlink take two. ok is false where it
// cannot be used, and moveNew falls back to link then unlink.
func renameNoReplace(tmp, dst string) (ok bool, err error) {
	if noReplaceMissing.Load() {
		return false, nil
	}
	for {
		err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL):
			// An old kernel, or a file system without the flag.
			noReplaceMissing.Store(true)
			return false, nil
		}
		return true, &os.LinkError{Op: "rename", Old: tmp, New: dst, Err: err}
	}
}
