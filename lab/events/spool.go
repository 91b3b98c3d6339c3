package events

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Spool keeps the log on disk at path as well, so a role killed with
// kill -9 and started again still serves what it had logged: the events
// already in the file are read back into the log first (a line cut short
// by the kill is dropped), then every event added is written to it as one
// JSON line, one write each. A write reaches the kernel at once; without
// an fsync it survives the process's death, not the machine's.
func (l *Log) Spool(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("event spool: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("event spool: %w", err)
	}
	old, kept, err := readSpool(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("event spool %s: %w", path, err)
	}
	// Drop a torn last line, then append after what was read.
	if err := f.Truncate(kept); err != nil {
		f.Close()
		return fmt.Errorf("event spool: %w", err)
	}
	if _, err := f.Seek(kept, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("event spool: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range old {
		l.append(e)
	}
	l.spool = f
	return nil
}

// readSpool reads the whole lines of a spool (ReadJSONL, the log's one
// parser) and how many bytes they take: what follows the last newline was
// torn by a kill.
func readSpool(f *os.File) ([]Event, int64, error) {
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, 0, err
	}
	whole := b[:bytes.LastIndexByte(b, '\n')+1]
	evs, err := ReadJSONL(bytes.NewReader(whole))
	return evs, int64(len(whole)), err
}
