package sender

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

func TestQueuePutReadsBack(t *testing.T) {
	q := openQueue(t, t.TempDir())
	text := []byte("Subject: x\n\nline one\nline two\n")
	var ids []string
	for i := 0; i < 5; i++ {
		env, err := q.Put(Envelope{From: "f@src.test", Rcpts: []string{"a@h.test", "b@h.test"}, MessageID: fmt.Sprintf("<%d@q>", i)}, text)
		if err != nil {
			t.Fatal(err)
		}
		if env.ID == "" || env.QueuedAt.IsZero() {
			t.Fatalf("Put returned %+v, want ID and QueuedAt set", env)
		}
		ids = append(ids, env.ID)
	}
	if got := queueIDs(t, q); !slices.Equal(got, ids) {
		t.Errorf("IDs %v, want injection order %v", got, ids)
	}
	env, err := q.Envelope(ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if env.ID != ids[2] || env.From != "f@src.test" || env.MessageID != "<2@q>" || !slices.Equal(env.Rcpts, []string{"a@h.test", "b@h.test"}) {
		t.Errorf("Envelope %+v", env)
	}
	got, err := q.Text(ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(text) {
		t.Errorf("Text %q, want %q", got, text)
	}
	if tmp, _ := os.ReadDir(filepath.Join(q.dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files after Put", len(tmp))
	}
}

// TestQueueDonePartial: a message to two hosts, done for one, keeps the
// other recipient across a reopen and leaves when both are done.
func TestQueueDonePartial(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir)
	env := put(t, q, "<partial@q>", "f@src.test", "a@one.test", "b@two.test", "c@one.test")
	left, err := q.Done(env.ID, []string{"a@one.test", "c@one.test"})
	if err != nil || left {
		t.Fatalf("Done(one.test) = %v, %v; want false, nil", left, err)
	}

	q = openQueue(t, dir) // as after a restart
	got, err := q.Envelope(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Rcpts, []string{"b@two.test"}) {
		t.Errorf("after reopen, recipients left %v, want [b@two.test]", got.Rcpts)
	}
	if ids := queueIDs(t, q); !slices.Equal(ids, []string{env.ID}) {
		t.Errorf("queue %v, want [%s]", ids, env.ID)
	}
	left, err = q.Done(env.ID, []string{"b@two.test"})
	if err != nil || !left {
		t.Fatalf("Done(two.test) = %v, %v; want true, nil", left, err)
	}
	if ids := queueIDs(t, q); len(ids) != 0 {
		t.Errorf("queue %v after every recipient is done", ids)
	}
	if _, err := os.Stat(filepath.Join(dir, "done", env.ID)); !os.IsNotExist(err) {
		t.Errorf("done/%s left behind: %v", env.ID, err)
	}
}

// TestQueueDoneConcurrent: the hosts of a message finish at the same
// moment on several connections; the message must still leave the queue,
// with no done record left, whether the sender loaded it (Load: settled
// from memory) or not (read from disk), and whether the queue keeps the
// list of done records (ownDone, as the sender's does) or not.
func TestQueueDoneConcurrent(t *testing.T) {
	for _, c := range []struct{ load, own bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		load := c.load
		t.Run(fmt.Sprintf("loaded=%v,owndone=%v", c.load, c.own), func(t *testing.T) {
			q := openQueue(t, t.TempDir())
			if c.own {
				if err := q.ownDone(); err != nil {
					t.Fatal(err)
				}
			}
			const n = 100
			var envs []Envelope
			for i := 0; i < n; i++ {
				env := put(t, q, fmt.Sprintf("<c%d@q>", i), "f@src.test", "a@one.test", "b@two.test", "c@three.test")
				if load {
					if _, err := q.Load(env.ID); err != nil {
						t.Fatal(err)
					}
				}
				envs = append(envs, env)
			}
			var wg sync.WaitGroup
			for _, env := range envs {
				for _, r := range env.Rcpts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := q.Done(env.ID, []string{r}); err != nil {
							t.Error(err)
						}
					}()
				}
			}
			wg.Wait()
			if ids := queueIDs(t, q); len(ids) != 0 {
				t.Errorf("%d of %d messages left in the queue with every recipient done", len(ids), n)
			}
			if done, _ := os.ReadDir(filepath.Join(q.dir, "done")); len(done) != 0 {
				t.Errorf("%d done records left behind", len(done))
			}
			if len(q.loaded) != 0 {
				t.Errorf("%d messages still held in memory", len(q.loaded))
			}
			if len(q.doneIDs) != 0 {
				t.Errorf("%d done records still listed", len(q.doneIDs))
			}
		})
	}
}

// TestQueueLongEnvelope: an envelope line longer than the queue's first
// read of a file (4 KiB: a message to hundreds of recipients) is read
// whole, and the text after it too.
func TestQueueLongEnvelope(t *testing.T) {
	q := openQueue(t, t.TempDir())
	var rcpts []string
	for i := range 400 {
		rcpts = append(rcpts, fmt.Sprintf("recipient-%03d@h%d.test", i, i%7))
	}
	text := []byte("Subject: many\n\nto all of them\n")
	env, err := q.Put(Envelope{From: "f@src.test", Rcpts: rcpts, MessageID: "<long@q>"}, text)
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.Load(env.ID)
	if err != nil || !slices.Equal(got.Rcpts, rcpts) || got.MessageID != "<long@q>" {
		t.Fatalf("Load: %d recipients, %q, %v; want the %d Put wrote", len(got.Rcpts), got.MessageID, err, len(rcpts))
	}
	if b, err := q.Text(env.ID); err != nil || string(b) != string(text) {
		t.Fatalf("Text: %q, %v; want %q", b, err, text)
	}
}

// TestQueueOwnsDone: the sender's queue lists done/ at start (ownDone)
// and keeps that list, so that reading a message looks for a done record
// only when one is listed. A record from before the start (a restart) is
// read; a record its own Done wrote is read back when the message is read
// from disk again; a message whose records are all done leaves no entry.
// A done record written behind its back is not looked for: only the
// sender writes done/ (the Queue's rules), and this shows the look-up is
// gone for the messages without one.
func TestQueueOwnsDone(t *testing.T) {
	dir := t.TempDir()
	before := put(t, openQueue(t, dir), "<before@q>", "f@src.test", "a@one.test", "b@two.test")
	if left, err := openQueue(t, dir).Done(before.ID, []string{"a@one.test"}); err != nil || left {
		t.Fatalf("Done(one.test) before the start = %v, %v", left, err)
	}
	q := openQueue(t, dir)
	if err := q.ownDone(); err != nil {
		t.Fatal(err)
	}
	if env, err := q.Load(before.ID); err != nil || !slices.Equal(env.Rcpts, []string{"b@two.test"}) {
		t.Fatalf("Load of a message done in part before the start: %v, %v; want [b@two.test]", env.Rcpts, err)
	}

	env := put(t, q, "<own@q>", "f@src.test", "a@one.test", "b@two.test", "c@three.test")
	if _, err := q.Load(env.ID); err != nil {
		t.Fatal(err)
	}
	if left, err := q.Done(env.ID, []string{"a@one.test"}); err != nil || left {
		t.Fatalf("Done(one.test) = %v, %v", left, err)
	}
	q.mu.Lock()
	delete(q.loaded, env.ID) // read from disk again, as after an error
	q.mu.Unlock()
	if got, err := q.Envelope(env.ID); err != nil || !slices.Equal(got.Rcpts, []string{"b@two.test", "c@three.test"}) {
		t.Fatalf("Envelope after Done(one.test): %v, %v; want [b@two.test c@three.test]", got.Rcpts, err)
	}
	if left, err := q.Done(env.ID, []string{"b@two.test"}); err != nil || left {
		t.Fatalf("Done(two.test), not loaded = %v, %v", left, err)
	}
	if got, err := q.Envelope(env.ID); err != nil || !slices.Equal(got.Rcpts, []string{"c@three.test"}) {
		t.Fatalf("Envelope after Done(two.test): %v, %v; want [c@three.test]", got.Rcpts, err)
	}
	for _, m := range []struct {
		id   string
		rcpt string
	}{{env.ID, "c@three.test"}, {before.ID, "b@two.test"}} {
		if left, err := q.Done(m.id, []string{m.rcpt}); err != nil || !left {
			t.Fatalf("Done(%s) = %v, %v; want the message gone", m.rcpt, left, err)
		}
	}
	if done, _ := os.ReadDir(filepath.Join(dir, "done")); len(done) != 0 || len(q.doneIDs) != 0 {
		t.Errorf("%d done records on disk and %d listed after every message left", len(done), len(q.doneIDs))
	}

	behind := put(t, q, "<behind@q>", "f@src.test", "a@one.test", "b@two.test")
	if err := os.WriteFile(filepath.Join(dir, "done", behind.ID), []byte("a@one.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Envelope(behind.ID); err != nil || len(got.Rcpts) != 2 {
		t.Errorf("a record written behind the owning queue's back was read: %v, %v", got.Rcpts, err)
	}
	if got, err := openQueue(t, dir).Envelope(behind.ID); err != nil || !slices.Equal(got.Rcpts, []string{"b@two.test"}) {
		t.Errorf("a queue that does not own done/ reads %v, %v; want [b@two.test]", got.Rcpts, err)
	}
}

// TestQueueLoaded: a message the sender loaded (Load) is settled from
// what Load read, without reading its file again, and leaves the same
// files on disk as one settled from disk: a partial done record another
// Queue value (a restart) reads back, then nothing. The text comes from
// memory when it fitted in Load's first read, else from the file; both
// are the text Put wrote.
func TestQueueLoaded(t *testing.T) {
	for _, size := range []int{10, 4000, 5000, 100000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			q := openQueue(t, dir)
			text := []byte(strings.Repeat("x", size) + "\n")
			env, err := q.Put(Envelope{From: "f@src.test", Rcpts: []string{"a@one.test", "b@two.test", "c@one.test"}, MessageID: "<l@q>"}, text)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := q.Load(env.ID); err != nil {
				t.Fatal(err)
			}
			got, err := q.Text(env.ID)
			if err != nil || string(got) != string(text) {
				t.Fatalf("Text: %d bytes, %v; want the %d bytes Put wrote", len(got), err, len(text))
			}
			left, err := q.Done(env.ID, []string{"a@one.test", "c@one.test"})
			if err != nil || left {
				t.Fatalf("Done(one.test) = %v, %v; want false, nil", left, err)
			}
			if r, err := openQueue(t, dir).Envelope(env.ID); err != nil || !slices.Equal(r.Rcpts, []string{"b@two.test"}) {
				t.Fatalf("another Queue reads %v, %v; want [b@two.test]", r.Rcpts, err)
			}
			left, err = q.Done(env.ID, []string{"b@two.test"})
			if err != nil || !left {
				t.Fatalf("Done(two.test) = %v, %v; want true, nil", left, err)
			}
			for _, sub := range []string{"msg", "done"} {
				if _, err := os.Stat(filepath.Join(dir, sub, env.ID)); !os.IsNotExist(err) {
					t.Errorf("%s/%s left behind: %v", sub, env.ID, err)
				}
			}
			if len(q.loaded) != 0 {
				t.Errorf("%d messages still held in memory after leaving the queue", len(q.loaded))
			}
		})
	}
}

// TestResumeQueued: messages queued while no sender runs are all sent
// once one starts; what an interrupted injection left in tmp/ is not.
func TestResumeQueued(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	q := openQueue(t, cfg.QueueDir)
	var want []string
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("<r%d@resume.test>", i)
		put(t, q, id, "from@src.test", fmt.Sprintf("u%d@h.test", i))
		want = append(want, fmt.Sprintf("%s u%d@h.test", id, i))
	}
	half := filepath.Join(cfg.QueueDir, "tmp", "0000000000000000001.1.1")
	if err := os.WriteFile(half, []byte(`{"id":"x","from":"f@src.test","rcpts":["half@h.test"]}`+"\nhalf"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, log := startSender(t, cfg)
	labtest.Until(t, "queue empty", queueEmpty(t, q))
	checkOnce(t, f, want)
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Errorf("tmp/ file not removed at start: %v", err)
	}
	if n := countEvents(log, events.Queued, ""); n != len(want) {
		t.Errorf("%d Queued events, want %d", n, len(want))
	}
}

// TestRestart: a sender closed while its receiver refuses one host leaves
// those messages queued, and the other host's delivered ones not; a new
// sender on the same queue delivers each remaining one exactly once, and
// a message to both hosts only to the host not yet done.
func TestRestart(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) { f.rcptErr = refuseHost("down.test", 421) })
	cfg := testConfig(t, f.addr)
	q := openQueue(t, cfg.QueueDir)
	var want, up, down []string
	for i := 0; i < 6; i++ {
		host := []string{"up.test", "down.test"}[i%2]
		id := fmt.Sprintf("<x%d@restart.test>", i)
		env := put(t, q, id, "from@src.test", fmt.Sprintf("u%d@%s", i, host))
		want = append(want, fmt.Sprintf("%s u%d@%s", id, i, host))
		if host == "up.test" {
			up = append(up, env.ID)
		} else {
			down = append(down, env.ID)
		}
	}
	both := put(t, q, "<both@restart.test>", "from@src.test", "a@up.test", "b@down.test")
	down = append(down, both.ID)
	want = append(want, "<both@restart.test> a@up.test", "<both@restart.test> b@down.test")

	s1, log1 := startSender(t, cfg)
	labtest.Until(t, "up.test delivered and down.test refused", func() bool {
		return countEvents(log1, events.Sent, "") == len(up)+1 && countEvents(log1, events.Attempt, "temporary") >= 2*len(down)
	})
	s1.Close()
	if ids := queueIDs(t, q); !slices.Equal(ids, down) {
		t.Fatalf("after close, queue holds %v, want the down.test messages %v", ids, down)
	}
	if env, err := q.Envelope(both.ID); err != nil || !slices.Equal(env.Rcpts, []string{"b@down.test"}) {
		t.Errorf("message to both hosts has recipients %v left (%v), want [b@down.test]", env.Rcpts, err)
	}
	if n := countEvents(log1, events.Failed, ""); n != 0 {
		t.Errorf("Failed events: %v", eventsOf(log1, events.Failed))
	}

	f.set(func(f *fake) { f.rcptErr = nil })
	_, log2 := startSender(t, cfg)
	labtest.Until(t, "queue empty", queueEmpty(t, q))
	checkOnce(t, f, want)
	if n := countEvents(log2, events.Queued, ""); n != len(down) {
		t.Errorf("second sender queued %d messages, want %d", n, len(down))
	}
}

func refuseHost(host string, code int) func(int, string) error {
	return func(_ int, to string) error {
		if len(to) > len(host) && to[len(to)-len(host)-1:] == "@"+host {
			return smtpErr(code)
		}
		return nil
	}
}

// TestAllDoneOnDisk: a message whose recipients are all marked done but
// whose file was not removed (interrupted bookkeeping) is cleaned up at
// start and not sent again.
func TestAllDoneOnDisk(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	q := openQueue(t, cfg.QueueDir)
	env := put(t, q, "<done@q>", "f@src.test", "a@h.test")
	if err := os.WriteFile(filepath.Join(cfg.QueueDir, "done", env.ID), []byte("a@h.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	put(t, q, "<next@q>", "f@src.test", "b@h.test")
	_, _ = startSender(t, cfg)
	labtest.Until(t, "queue empty", queueEmpty(t, q))
	checkOnce(t, f, []string{"<next@q> b@h.test"})
}
