package events

import (
	"encoding/json"
	"errors"
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

// readSpool reads the whole lines of a spool and how many bytes they take.
func readSpool(f *os.File) ([]Event, int64, error) {
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, 0, err
	}
	var out []Event
	var kept int64
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i == len(b) {
			break // no newline: torn by a kill
		}
		var e Event
		if err := json.Unmarshal(b[:i], &e); err != nil {
			return nil, 0, errors.New("a line that is not an event: " + err.Error())
		}
		out = append(out, e)
		kept += int64(i + 1)
		b = b[i+1:]
	}
	return out, kept, nil
}
