package sender

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Envelope is what the queue knows of a message besides its text.
type Envelope struct {
	ID        string    `json:"id"`
	From      string    `json:"from"`
	Rcpts     []string  `json:"rcpts"`
	MessageID string    `json:"message_id"`
	QueuedAt  time.Time `json:"queued_at"`
}

// Queue is the on-disk mail queue. Its rules:
//   - A message is in the queue once Put has returned: its file (envelope
//     line, then the text) was written and fsynced in tmp/ and renamed into
//     msg/, and msg/ was fsynced. A crash before that leaves at most a file
//     in tmp/, which Open removes: nothing half-queued is ever sent.
//   - Recipients are marked done (an fsynced line each in done/ID) only after
//     the receiver answered 2xx to the end of data; a message leaves the
//     queue when all its recipients are done. After a kill -9 the sender
//     resumes every message with the recipients not yet done, so a message
//     is never sent twice once its done record is on disk.
//   - The one window left: between reading the receiver's 2xx to the end of
//     data and the fsync of the done record, a kill -9 (or a crash) loses
//     the record, and the restarted sender delivers those recipients again.
//     RFC 5321 section 6.1 accepts that duplicate (the receiver's side has
//     the same window); a kill anywhere else, including while the sender
//     waits for that 2xx, duplicates nothing. kill_test.go pins both down.
//   - With NoFsync (for measurement only) none of this holds across a
//     machine crash; a kill -9 of the process alone still loses nothing,
//     since the page cache survives it.
type Queue struct {
	dir string
	// noFsync skips every fsync (file and directory): for the benchmark
	// that measures what the fsyncs cost, never for a real run.
	noFsync bool
	// mu serialises Done: the hosts of one message finish on different
	// connections, and each Done reads what is left before it writes. It
	// also guards loaded.
	mu sync.Mutex
	// loaded holds what the sender process read of each message it took
	// into memory (Load), so that Done and Text need not read the queue
	// file again: the same state the files hold, kept by the one process
	// that changes it (sendmail processes only add new files). An entry
	// goes when its message leaves the queue; the sender holds at most
	// its window of messages, so this map is bounded by it too. A message
	// not in it (another Queue value, an error) is read from disk.
	loaded map[string]*loaded
	// doneIDs, when not nil, names every message with a done record on
	// disk: the sender's queue lists done/ once at start (ownDone) and
	// keeps the list as its Done writes and removes records, since no
	// other process writes done/ (sendmail only adds files to tmp/ and
	// msg/). Reading a message then needs no look-up in done/ for the
	// messages not named, almost all of them: on ext4 that failed open
	// cost about 4.5 µs of the queue's 35 a message. Under mu.
	doneIDs map[string]bool
}

// loaded is a message as the sender's queue last read or wrote it.
type loaded struct {
	left     []string // recipients not yet done
	doneFile bool     // a done record exists on disk
	// text is the message text when the whole file came in the first
	// read of its envelope (up to 4 KiB: the read Envelope makes anyway,
	// so a window of 10,000 small messages holds at most 40 MiB); nil:
	// read it again when sending.
	text []byte
}

// OpenQueue opens (creating) the queue in dir.
func OpenQueue(dir string) (*Queue, error) {
	for _, sub := range []string{"tmp", "msg", "done"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	return &Queue{dir: dir}, nil
}

// clearTmp removes what interrupted injections left in tmp/. Only the
// sender calls it, at start, before any sendmail of its own can run.
func (q *Queue) clearTmp() {
	tmp, _ := os.ReadDir(filepath.Join(q.dir, "tmp"))
	for _, e := range tmp {
		os.Remove(filepath.Join(q.dir, "tmp", e.Name()))
	}
}

// ownDone lists done/ and from then on keeps doneIDs (see Queue). Only
// the sender calls it, at start, as it does clearTmp.
func (q *Queue) ownDone() error {
	entries, err := os.ReadDir(filepath.Join(q.dir, "done"))
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	ids := make(map[string]bool, len(entries))
	for _, e := range entries {
		ids[e.Name()] = true
	}
	q.mu.Lock()
	q.doneIDs = ids
	q.mu.Unlock()
	return nil
}

// mayHaveDone says whether message id may have a done record on disk:
// always, unless this Queue keeps doneIDs. Called with mu held.
func (q *Queue) mayHaveDone(id string) bool {
	return q.doneIDs == nil || q.doneIDs[id]
}

var idSeq atomic.Uint64

// newID names a queue file: sortable by time of injection, unique across
// the separate sendmail processes that write the queue.
func newID(now time.Time) string {
	return fmt.Sprintf("%019d.%d.%d", now.UnixNano(), os.Getpid(), idSeq.Add(1))
}

// Put commits a message durably and returns its envelope with ID and
// QueuedAt set.
func (q *Queue) Put(env Envelope, text []byte) (Envelope, error) {
	env.QueuedAt = time.Now()
	env.ID = newID(env.QueuedAt)
	head, err := json.Marshal(env)
	if err != nil {
		return env, fmt.Errorf("queue: %w", err)
	}
	tmp := filepath.Join(q.dir, "tmp", env.ID)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return env, fmt.Errorf("queue: %w", err)
	}
	w := bufio.NewWriter(f)
	w.Write(head)
	w.WriteByte('\n')
	w.Write(text)
	err = w.Flush()
	if err == nil && !q.noFsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(q.dir, "msg", env.ID))
	}
	if err != nil {
		os.Remove(tmp)
		return env, fmt.Errorf("queue: commit %s: %w", env.ID, err)
	}
	if err := q.syncDir(filepath.Join(q.dir, "msg")); err != nil {
		// Renamed but not known to be durable: take it back, so that a
		// failed injection (retried by its caller) is never queued twice.
		os.Remove(filepath.Join(q.dir, "msg", env.ID))
		return env, fmt.Errorf("queue: commit %s: %w", env.ID, err)
	}
	return env, nil
}

// IDs lists the queued messages in injection order.
func (q *Queue) IDs() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(q.dir, "msg"))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	sort.Strings(ids)
	return ids, nil
}

// Oldest returns up to n queued IDs, oldest first, leaving out those skip
// accepts. It reads msg/ in batches and keeps only the n best so far (a
// bounded max-heap), so its memory follows n, not the queue's length:
// the sender calls it to refill its window of messages in memory.
func (q *Queue) Oldest(n int, skip func(id string) bool) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	d, err := os.Open(filepath.Join(q.dir, "msg"))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	defer d.Close()
	h := make(idHeap, 0, n)
	for {
		names, err := d.Readdirnames(1024)
		for _, id := range names {
			if len(h) == n && id >= h[0] {
				continue
			}
			if skip != nil && skip(id) {
				continue
			}
			if len(h) < n {
				heap.Push(&h, id)
			} else {
				h[0] = id
				heap.Fix(&h, 0)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("queue: list %s: %w", q.dir, err)
		}
	}
	ids := []string(h)
	sort.Strings(ids)
	return ids, nil
}

// idHeap is a max-heap of IDs: its top is the newest of the kept ones,
// the first to go when an older one turns up.
type idHeap []string

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Envelope reads a queued message's envelope, with recipients already
// done removed from Rcpts.
func (q *Queue) Envelope(id string) (Envelope, error) {
	q.mu.Lock()
	withDone := q.mayHaveDone(id)
	q.mu.Unlock()
	env, _, err := q.read(id, withDone)
	return env, err
}

// Load is Envelope for the sender taking the message into memory: it
// also keeps what it read (loaded), for Done and Text, until the message
// leaves the queue.
func (q *Queue) Load(id string) (Envelope, error) {
	q.mu.Lock()
	withDone := q.mayHaveDone(id)
	q.mu.Unlock()
	env, l, err := q.read(id, withDone)
	if err != nil {
		return env, err
	}
	q.mu.Lock()
	if q.loaded == nil {
		q.loaded = map[string]*loaded{}
	}
	q.loaded[id] = l
	q.mu.Unlock()
	return env, nil
}

// heads are the buffers read reads a queue file's first 4 KiB into: what
// it keeps of them (the envelope, the text) it copies, so a buffer serves
// message after message instead of one allocated for each.
var heads = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// read reads message id's envelope line and, when withDone, its done
// record (without it, the message has none: see Queue.doneIDs).
func (q *Queue) read(id string, withDone bool) (Envelope, *loaded, error) {
	path := filepath.Join(q.dir, "msg", id)
	buf := heads.Get().(*[]byte)
	defer heads.Put(buf)
	head, whole, err := readHead(path, *buf)
	if err != nil {
		return Envelope{}, nil, fmt.Errorf("queue: %w", err)
	}
	line, text, found := bytes.Cut(head, []byte{'\n'})
	if !found && !whole {
		// An envelope line longer than the first read (thousands of
		// recipients): read the whole file, and the text again to send it.
		b, err := os.ReadFile(path)
		if err != nil {
			return Envelope{}, nil, fmt.Errorf("queue: %w", err)
		}
		line, _, found = bytes.Cut(b, []byte{'\n'})
	}
	if !found {
		return Envelope{}, nil, fmt.Errorf("queue: %s: no envelope line", id)
	}
	var env Envelope
	if err := json.Unmarshal(line, &env); err != nil {
		return Envelope{}, nil, fmt.Errorf("queue: %s: bad envelope: %w", id, err)
	}
	l := &loaded{}
	if whole {
		// The whole file came in the first read: keep the text.
		l.text = bytes.Clone(text)
	}
	var done map[string]bool
	if withDone {
		if done, err = q.done(id); err != nil {
			return Envelope{}, nil, err
		}
	}
	l.doneFile = done != nil
	left := env.Rcpts[:0:0]
	for _, r := range env.Rcpts {
		if !done[r] {
			left = append(left, r)
		}
	}
	env.Rcpts = left
	l.left = left
	return env, l, nil
}

// Text returns the message text of a queued message.
func (q *Queue) Text(id string) ([]byte, error) {
	q.mu.Lock()
	l := q.loaded[id]
	q.mu.Unlock()
	if l != nil && l.text != nil {
		return l.text, nil
	}
	b, err := os.ReadFile(filepath.Join(q.dir, "msg", id))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, fmt.Errorf("queue: %s: no envelope line", id)
	}
	return b[i+1:], nil
}

func (q *Queue) done(id string) (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(q.dir, "done", id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	done := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			done[l] = true
		}
	}
	return done, nil
}

// Done records rcpts of message id as delivered (durably) and removes the
// message when no recipient is left. It reports whether the message left
// the queue.
func (q *Queue) Done(id string, rcpts []string) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	l, wasLoaded := q.loaded[id]
	if !wasLoaded {
		var err error
		if _, l, err = q.read(id, q.mayHaveDone(id)); err != nil {
			return false, err
		}
	}
	finished := map[string]bool{}
	for _, r := range rcpts {
		finished[r] = true
	}
	var remaining []string
	for _, r := range l.left {
		if !finished[r] {
			remaining = append(remaining, r)
		}
	}
	if len(remaining) == 0 {
		delete(q.loaded, id)
		if err := os.Remove(filepath.Join(q.dir, "msg", id)); err != nil {
			return false, fmt.Errorf("queue: %w", err)
		}
		if l.doneFile {
			err := os.Remove(filepath.Join(q.dir, "done", id))
			if q.doneIDs != nil && (err == nil || errors.Is(err, os.ErrNotExist)) {
				delete(q.doneIDs, id)
			}
		}
		return true, q.syncDir(filepath.Join(q.dir, "msg"))
	}
	donePath := filepath.Join(q.dir, "done", id)
	newRecord := !l.doneFile
	// Whatever happens below, the disk is read again next time: a failed
	// write may have left part of a record.
	delete(q.loaded, id)
	if q.doneIDs != nil {
		// Named before the file exists: should the write fail half way,
		// the next read still looks for the record.
		q.doneIDs[id] = true
	}
	f, err := os.OpenFile(donePath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return false, fmt.Errorf("queue: %w", err)
	}
	_, err = io.WriteString(f, strings.Join(rcpts, "\n")+"\n")
	if err == nil && !q.noFsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && newRecord {
		// A new done record: its name must survive a crash too.
		err = q.syncDir(filepath.Join(q.dir, "done"))
	}
	if err != nil {
		return false, fmt.Errorf("queue: mark %s done: %w", id, err)
	}
	if wasLoaded {
		l.left, l.doneFile = remaining, true
		q.loaded[id] = l
	}
	return false, nil
}

func (q *Queue) syncDir(dir string) error {
	if q.noFsync {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("queue: sync %s: %w", dir, err)
	}
	return nil
}
