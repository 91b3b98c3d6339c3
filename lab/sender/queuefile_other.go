//go:build !linux

package sender

import (
	"errors"
	"io"
	"os"
)

// readHead reads the first size bytes of path (fewer if it is shorter)
// and says whether the file ended within them.
func readHead(path string, size int) ([]byte, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	buf := make([]byte, size)
	n, err := io.ReadFull(f, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return buf[:n], true, nil
	}
	if err != nil {
		return nil, false, err
	}
	// Full: the file ended there only if nothing follows.
	if _, err := f.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
		return buf, true, nil
	}
	return buf, false, nil
}
