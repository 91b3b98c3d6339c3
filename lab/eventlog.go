package lab

import (
	"context"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/report"
)

// sortChunk is how many events collecting a run's logs holds in memory
// at most (events.Sorter): about 30 MB, whatever the run's size.
const sortChunk = 50_000

// runLog is a run's events.jsonl, merged from every role's log, with
// what the run needs of it without reading it again.
type runLog struct {
	path        string
	n           int
	firstQueued time.Time
	err         error // the first error reading it back (each)
}

// eventStreamer is a handle that can hand its role's log over one event
// at a time (a Go role: role.Handle.EachEvent); the others' logs are
// small (a real MTA's mail log) and read whole.
type eventStreamer interface {
	EachEvent(ctx context.Context, each func(events.Event) error) error
}

// eachEvent calls each with every event of h's log: streamed when h
// can, else read whole; the first error ends it.
func eachEvent(ctx context.Context, h Handle, each func(events.Event) error) error {
	if st, ok := h.(eventStreamer); ok {
		return st.EachEvent(ctx, each)
	}
	evs, err := h.Events(ctx)
	if err != nil {
		return err
	}
	for _, e := range evs {
		if err := each(e); err != nil {
			return err
		}
	}
	return nil
}

// collectEvents merges every role's event log, the outages' events and
// the injection's Queued events that no log has (a real sender's own log
// has no Message-IDs; each Message-ID once) into dir's events.jsonl, in
// time order, events of one instant in that order. It holds at most
// sortChunk events at a time (events.Sorter spills the rest to a folder
// in dir, removed after).
func collectEvents(ctx context.Context, r running, dir string, outages, injected []events.Event) (*runLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("collect events: %w", err)
	}
	s, err := events.NewSorter(filepath.Join(dir, ".events-sort"), sortChunk)
	if err != nil {
		return nil, fmt.Errorf("collect events: %w", err)
	}
	defer s.Close()
	queued := map[string]bool{} // Message-IDs some log has a Queued event of
	add := func(e events.Event) error {
		if e.Kind == events.Queued {
			queued[e.MessageID] = true
		}
		s.Add(e)
		return nil
	}
	for _, h := range r.all {
		if err := eachEvent(ctx, h, add); err != nil {
			return nil, fmt.Errorf("collect events: %w", err)
		}
	}
	for _, e := range outages {
		s.Add(e)
	}
	for _, e := range injected {
		if !queued[e.MessageID] {
			add(e)
		}
	}
	log := &runLog{path: filepath.Join(dir, report.EventsFile), n: s.Len()}
	f, err := os.Create(log.path)
	if err != nil {
		return nil, fmt.Errorf("collect events: %w", err)
	}
	werr := s.WriteTo(f, func(e events.Event) {
		if e.Kind == events.Queued && log.firstQueued.IsZero() {
			log.firstQueued = e.Time
		}
	})
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("collect events: %w", werr)
	}
	return log, nil
}

// each reads the run's events back, in time order, one at a time; the
// first error ends it and is kept in l.err.
func (l *runLog) each() iter.Seq[events.Event] {
	return func(yield func(events.Event) bool) {
		f, err := os.Open(l.path)
		if err != nil {
			l.fail(err)
			return
		}
		defer f.Close()
		stop := fmt.Errorf("stopped")
		err = events.EachJSONL(f, func(e events.Event) error {
			if !yield(e) {
				return stop
			}
			return nil
		})
		if err != nil && err != stop {
			l.fail(err)
		}
	}
}

func (l *runLog) fail(err error) {
	if l.err == nil {
		l.err = fmt.Errorf("read back %s: %w", l.path, err)
	}
}
