//go:build !linux

package maildir

import (
	"os"
	"sync"
)

// writeNew creates path (it must not exist), writes data to it and, with
// fsync, fsyncs it. On error the file is removed. The creation is made
// holding dirOps (see Dir.Deliver).
func writeNew(path string, data []byte, fsync bool, dirOps sync.Locker) error {
	dirOps.Lock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	dirOps.Unlock()
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// syncDir makes a folder's entries durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// renameNoReplace: not used here; moveNew links then unlinks.
func renameNoReplace(tmp, dst string) (ok bool, err error) { return false, nil }
