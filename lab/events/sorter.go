package events

import (
	"bufio"
	"container/heap"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Sorter puts events from many logs in time order without holding them
// all: it keeps at most a chunk of them in memory, sorts each full chunk
// and spills it to a file of its own in a folder, then merges the files
// (an external merge sort). Events of the same time keep the order they
// were added in, as a stable sort of everything added would: a run's
// events.jsonl is the same whatever the chunk.
type Sorter struct {
	dir   string
	limit int
	chunk []Event
	runs  []string
	n     int
	err   error
}

// NewSorter sorts in dir (made, and removed by Close) holding at most
// chunk events in memory.
func NewSorter(dir string, chunk int) (*Sorter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("event sorter: %w", err)
	}
	return &Sorter{dir: dir, limit: max(chunk, 1)}, nil
}

// Add takes one event. Once a write to the folder failed, Add does
// nothing and WriteTo returns that error.
func (s *Sorter) Add(e Event) {
	if s.err != nil {
		return
	}
	s.n++
	s.chunk = append(s.chunk, e)
	if len(s.chunk) >= s.limit {
		s.err = s.spill()
	}
}

// Len is how many events were added.
func (s *Sorter) Len() int { return s.n }

func byTime(a, b Event) int { return a.Time.Compare(b.Time) }

// spill sorts the chunk in memory and writes it to a run file.
func (s *Sorter) spill() error {
	slices.SortStableFunc(s.chunk, byTime)
	path := filepath.Join(s.dir, fmt.Sprintf("run-%06d.jsonl", len(s.runs)))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("event sorter: %w", err)
	}
	werr := WriteJSONL(f, s.chunk)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("event sorter: %w", werr)
	}
	s.runs = append(s.runs, path)
	s.chunk = s.chunk[:0]
	return nil
}

// WriteTo writes every event added to w as JSON lines, in time order,
// calling each (when not nil) with each event as it is written.
func (s *Sorter) WriteTo(w io.Writer, each func(Event)) error {
	if s.err != nil {
		return s.err
	}
	slices.SortStableFunc(s.chunk, byTime)
	// The chunk in memory is the last run: added after every spilled one.
	m := &merge{}
	for i, path := range s.runs {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("event sorter: %w", err)
		}
		defer f.Close()
		r := &runReader{order: i, next: lineReader(f)}
		if err := m.push(r); err != nil {
			return err
		}
	}
	mem := s.chunk
	if err := m.push(&runReader{order: len(s.runs), next: func() (Event, bool, error) {
		if len(mem) == 0 {
			return Event{}, false, nil
		}
		e := mem[0]
		mem = mem[1:]
		return e, true, nil
	}}); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for m.Len() > 0 {
		r := (*m)[0]
		if each != nil {
			each(r.head)
		}
		if err := enc.Encode(&r.head); err != nil {
			return err
		}
		e, ok, err := r.next()
		if err != nil {
			return err
		}
		if ok {
			r.head = e
			heap.Fix(m, 0)
		} else {
			heap.Pop(m)
		}
	}
	return bw.Flush()
}

// Close removes the sorter's folder.
func (s *Sorter) Close() error {
	s.chunk = nil
	return os.RemoveAll(s.dir)
}

// runReader is one sorted run being merged: its next event, and its
// place among the runs (the order its events were added in).
type runReader struct {
	order int
	head  Event
	next  func() (Event, bool, error)
}

// lineReader reads a run file's events one at a time.
func lineReader(f *os.File) func() (Event, bool, error) {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	return func() (Event, bool, error) {
		for sc.Scan() {
			if len(sc.Bytes()) == 0 {
				continue
			}
			var e Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return e, false, fmt.Errorf("event sorter: %s: %w", f.Name(), err)
			}
			return e, true, nil
		}
		return Event{}, false, sc.Err()
	}
}

// merge is a heap of runs by their next event's time, then by run.
type merge []*runReader

func (m merge) Len() int { return len(m) }
func (m merge) Less(i, j int) bool {
	if c := m[i].head.Time.Compare(m[j].head.Time); c != 0 {
		return c < 0
	}
	return m[i].order < m[j].order
}
func (m merge) Swap(i, j int) { m[i], m[j] = m[j], m[i] }
func (m *merge) Push(x any)   { *m = append(*m, x.(*runReader)) }
func (m *merge) Pop() any {
	old := *m
	r := old[len(old)-1]
	*m = old[:len(old)-1]
	return r
}

// push adds a run with its first event, if it has one.
func (m *merge) push(r *runReader) error {
	e, ok, err := r.next()
	if err != nil {
		return err
	}
	if ok {
		r.head = e
		heap.Push(m, r)
	}
	return nil
}
