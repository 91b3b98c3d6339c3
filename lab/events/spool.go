package events

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Spool keeps the log on disk at path instead of in memory, so that a
// role's memory stays flat however many events it logs, and a role killed
// with kill -9 and started again still serves what it had logged: the
// events already in the file are counted first (a line cut short by the
// kill is dropped), then every event added is written to it as one JSON
// line, one write each. A write reaches the kernel at once; without an
// fsync it survives the process's death, not the machine's. The events
// logged in memory before Spool are written to the file too.
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
		l.n++
		l.counts[e.Kind]++
	}
	l.spool, l.spooled = f, kept
	for _, c := range l.chunks {
		if n, err := f.Write(c); err == nil {
			l.spooled += int64(n)
		}
	}
	l.chunks = nil
	return nil
}

// Stream writes every event so far to w as JSON lines (WriteJSONL's
// form), streamed from the spool when the log has one: whatever the
// log's size, it is never held in memory whole.
func (l *Log) Stream(w io.Writer) error {
	l.mu.Lock()
	if l.spool == nil {
		chunks := l.lines()
		l.mu.Unlock()
		for _, c := range chunks {
			if _, err := w.Write(c); err != nil {
				return err
			}
		}
		return nil
	}
	n := l.spooled
	l.mu.Unlock()
	return l.readSpooled(n, func(r io.Reader) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// readSpooled gives read the spool's first n bytes (whole lines: n was
// taken under the lock, between two writes).
func (l *Log) readSpooled(n int64, read func(io.Reader) error) error {
	f, err := os.Open(l.spool.Name())
	if err != nil {
		return err
	}
	defer f.Close()
	return read(bufio.NewReader(io.LimitReader(f, n)))
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
