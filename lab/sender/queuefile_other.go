//go:build !linux

package sender

import (
	"errors"
	"io"
	"os"
)

// readHead reads the first len(buf) bytes of path into buf (fewer if it
// is shorter) and says whether the file ended within them. A file that
// fills buf is taken as not ended there, as on Linux
// (queuefile_linux.go): its text is read again when it is sent.
func readHead(path string, buf []byte) ([]byte, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return buf[:n], true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return buf, false, nil
}
