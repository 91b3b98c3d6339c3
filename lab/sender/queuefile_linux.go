package sender

import (
	"errors"
	"os"
	"syscall"
)

// readHead reads the first len(buf) bytes of path into buf (fewer if it
// is shorter) and says whether the file ended within them. On Linux it
// uses open(2), read(2) and close(2) alone: os.Open would try to add the
// regular file to the network poller (fcntl to set O_NONBLOCK, an
// epoll_ctl that fails with EPERM, fcntl to clear it), four calls that
// buy nothing for a file read once, as lab/maildir/file_linux.go says for
// the receiver's files.
func readHead(path string, buf []byte) ([]byte, bool, error) {
	fd, err := retryEINTR(func() (int, error) {
		return syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, false, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	n := 0
	for {
		if n == len(buf) {
			return buf, false, nil
		}
		m, err := retryEINTR(func() (int, error) { return syscall.Read(fd, buf[n:]) })
		if err != nil {
			return nil, false, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			return buf[:n], true, nil
		}
		n += m
	}
}

// retryEINTR repeats a system call interrupted by a signal (the Go
// runtime's preemption signals among them).
func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if !errors.Is(err, syscall.EINTR) {
			return n, err
		}
	}
}
