// Package sender is the lab's model of Courier S: a queueing MTA with a
// sendmail entry point, a durable on-disk queue (queue.go states its rules),
// static routes and MX routing through the lab's DNS (route.go), a
// scheduler (scheduler.go) that shares connections among recipient hosts
// under a per-host and a total limit, connections that deliver what the
// scheduler hands them (deliver.go), and its own SMTP client
// (smtpclient.go: PIPELINING, Courier's per-phase timeouts). config.go
// holds its configuration; this file the Sender itself, in the part of
// Courier's courierd: it loads messages off the queue, hands their jobs to
// the scheduler, and settles each job's end (retry, failure, DSN).
//
// Delivery rules:
//   - Recipients of one message are grouped by host; each group is one job,
//     sent in one transaction.
//   - A 2xx answer to the end of data marks the group's recipients done in
//     the queue; only then is the job finished.
//   - A 4xx answer, a refused or dropped connection, a timeout, garbage or
//     a DNS timeout/SERVFAIL is temporary: the job waits Retry[attempt-1]
//     (the last wait repeats) and is tried again, up to MaxAttempts, then
//     fails for good.
//   - A 5xx answer (or NXDOMAIN, or no route) is permanent: the recipients
//     leave the queue and, with Bounce "dsn" (Courier's way), a delivery
//     status notification goes back to the envelope sender through the
//     queue like any message; a message from the null sender <> never gets
//     one, so bounces cannot loop.
//   - At most MaxInMemory messages are held in memory; the rest wait on
//     disk and are loaded, oldest first, as those in memory finish.
package sender

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/line"
	"github.com/smtplab/smtplab/lab/resolver"
)

// Sender is a running sender.
type Sender struct {
	cfg   Config
	log   *events.Log
	q     *Queue
	res   *resolver.Resolver
	sched *scheduler
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	wake  net.PacketConn
	kick  chan struct{} // asks the loader for a scan; buffered 1, so kicks coalesce
	conns atomic.Int64
	link  *line.Link // the modelled SMTP path; nil: none
	// held keeps the loader from taking new messages off the queue (Hold):
	// a burst fills the queue before any delivery starts.
	held atomic.Bool
	// behind says the last scan filled all the room it had: the queue on
	// disk may hold more than memory does. When it did not, every queued
	// message is in memory, and a message finishing is no reason to list
	// the queue again (new ones wake the loader themselves).
	behind atomic.Bool

	mu sync.Mutex
	// known holds the messages in memory: queue ID -> recipients not yet
	// delivered or failed. An entry leaves when its count reaches zero,
	// after the queue file is gone, so the map is bounded by MaxInMemory.
	known map[string]int
	bad   map[string]bool // unreadable queue files, reported once
}

// New opens the queue and checks cfg.
func New(cfg Config, log *events.Log) (*Sender, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	q, err := OpenQueue(cfg.QueueDir)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	q.noFsync = cfg.NoFsync
	ctx, stop := context.WithCancel(context.Background())
	s := &Sender{cfg: cfg, log: log, q: q, ctx: ctx, stop: stop, kick: make(chan struct{}, 1),
		known: map[string]int{}, bad: map[string]bool{},
		res: &resolver.Resolver{Servers: cfg.DNSServers, FirstTimeout: cfg.DNSFirstTimeout.D(), Rounds: cfg.DNSRounds}}
	if cfg.Link.Enabled {
		if s.link, err = line.NewLink(cfg.Link, cfg.Seed); err != nil {
			return nil, fmt.Errorf("sender: %w", err)
		}
	}
	s.sched = newScheduler(cfg.MaxConnections, cfg.MaxPerHost, cfg.IdleClose.D(), s.startConnection)
	return s, nil
}

// startConnection is the scheduler's run: it counts the connection in wg
// before its goroutine starts, so that Close waits for every connection
// the scheduler started before it was shut down.
func (s *Sender) startConnection(w *worker, first *job) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.connection(w, first)
	}()
}

func wakeSocket(dir string) string { return filepath.Join(dir, ".wake") }

// wakeScan asks the loader to look at the queue again.
func (s *Sender) wakeScan() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Start resumes the queue and starts picking up new messages, woken by
// sendmail, by room in the window and, as a fallback, every second.
func (s *Sender) Start() error {
	s.q.clearTmp()
	if err := s.q.ownDone(); err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	os.Remove(wakeSocket(s.cfg.QueueDir))
	pc, err := net.ListenPacket("unixgram", wakeSocket(s.cfg.QueueDir))
	if err != nil {
		return fmt.Errorf("sender: wake socket: %w", err)
	}
	s.wake = pc
	go func() {
		buf := make([]byte, 16)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			s.wakeScan()
		}
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			s.scan()
			select {
			case <-s.ctx.Done():
				return
			case <-s.kick:
			case <-tick.C:
			}
		}
	}()
	return nil
}

// Close stops the sender: no new connections, open ones end. The queue
// keeps whatever was not delivered.
func (s *Sender) Close() error {
	s.stop()
	if s.wake != nil {
		s.wake.Close()
	}
	s.sched.shutdown()
	s.wg.Wait()
	return nil
}

// Inject runs the injection loop against this sender: one sendmail
// process per message (sendmail is the command line that starts it), or,
// with inj.Direct, the same code called in this process on this
// sender's queue (InjectDirect).
func (s *Sender) Inject(ctx context.Context, inj Injection, sendmail []string) InjectResult {
	if inj.Direct {
		return InjectDirect(ctx, inj, s.cfg.QueueDir, s.cfg.Hostname)
	}
	return Inject(ctx, inj, sendmail)
}

// Hold stops the sender from taking new messages off its queue: what
// sendmail queues meanwhile waits on disk until Release. A burst workload
// (lab/pace) is queued whole before delivery starts.
func (s *Sender) Hold() { s.held.Store(true) }

// Release lets the sender take its queue again, at once.
func (s *Sender) Release() {
	s.held.Store(false)
	s.wakeScan()
}

// InMemory is the number of messages the sender holds in memory now.
func (s *Sender) InMemory() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.known)
}

// scan fills the window: it loads the oldest queued messages not in
// memory yet, up to MaxInMemory in all, and schedules them.
func (s *Sender) scan() {
	if s.held.Load() {
		return
	}
	s.mu.Lock()
	room := s.cfg.MaxInMemory - len(s.known)
	s.mu.Unlock()
	// Refill in batches: listing the queue costs as much for one message
	// as for thousands, so below half the window's room (more than half
	// of it in memory, and busy) the scan waits for the window to drain
	// to half (finish wakes it then).
	if room <= 0 || 2*room < s.cfg.MaxInMemory {
		return
	}
	ids, err := s.q.Oldest(room, func(id string) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, in := s.known[id]
		return in || s.bad[id]
	})
	if err != nil {
		s.log.Add(events.Event{Kind: events.Attempt, Result: "temporary", Error: "scan: " + err.Error()})
		return
	}
	s.behind.Store(len(ids) == room)
	var batch []*job
	defer func() { s.sched.enqueue(batch...) }()
	for _, id := range ids {
		env, err := s.q.Load(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // delivered and removed since the listing
		}
		if err != nil {
			s.mu.Lock()
			s.bad[id] = true
			s.mu.Unlock()
			s.log.Add(events.Event{Kind: events.Failed, QueueID: id, Error: err.Error()})
			continue
		}
		if len(env.Rcpts) == 0 {
			// Every recipient was done but the message was not removed
			// (the sender stopped in between): finish the bookkeeping.
			s.q.Done(id, nil)
			continue
		}
		s.mu.Lock()
		s.known[id] = len(env.Rcpts)
		s.mu.Unlock()
		s.log.Add(events.Event{Time: env.QueuedAt, Kind: events.Queued, QueueID: id, MessageID: env.MessageID, From: env.From, Rcpts: env.Rcpts})
		groups := groupByHost(env.Rcpts)
		hosts := make([]string, 0, len(groups))
		for h := range groups {
			hosts = append(hosts, h)
		}
		slices.Sort(hosts) // the same order on every run
		for _, host := range hosts {
			j := &job{env: env, host: host, rcpts: groups[host]}
			relay, ok := s.route(host)
			if !ok && len(s.cfg.DNSServers) == 0 {
				s.fail(j, failuresOf(j, "", errors.New("no route to "+host)))
				continue
			}
			j.relay = relay // "" for MX routing, done by the connection
			batch = append(batch, j)
		}
	}
}

// finish counts n recipients of message id as done or failed for good,
// and lets the message go from memory when none is left. Below half the
// window the loader is woken: refilling in batches keeps the listing of
// a long queue from running once per message.
func (s *Sender) finish(id string, n int) {
	s.mu.Lock()
	left, in := s.known[id]
	if in {
		if left -= n; left <= 0 {
			delete(s.known, id)
		} else {
			s.known[id] = left
		}
	}
	low := len(s.known) <= s.cfg.MaxInMemory/2
	s.mu.Unlock()
	if low && s.behind.Load() {
		s.wakeScan()
	}
}

// retry logs a temporary failure of a try of j on conn (err, from the
// server mta; "" when the try reached none) and re-queues the job after
// its wait, or fails it when attempts are used up.
func (s *Sender) retry(j *job, conn, mta string, err error) {
	if err == nil {
		err = errors.New("temporary failure")
	}
	if mta != "" {
		j.peerErr, j.peerMTA = err, mta
	}
	ev := attemptEvent(j, conn, "temporary", err)
	if j.attempt >= s.cfg.MaxAttempts {
		s.log.Add(ev)
		s.fail(j, failuresOf(j, j.peerMTA, gaveUp(j, mta, err)))
		return
	}
	wait := retryWait(s.cfg.retry(), j.attempt)
	ev.Duration = wait // the wait before the next try: the schedule is in the events
	s.log.Add(ev)
	// After Close the job is dropped (the scheduler is shut down); the
	// queue keeps the message.
	time.AfterFunc(wait, func() {
		if s.ctx.Err() == nil {
			s.sched.enqueue(j)
		}
	})
}

// gaveUp is why j fails for good after its last try came to err (from
// the server mta, "" when it reached none). The failure reported, and so
// the DSN's Status, Remote-MTA and Diagnostic-Code, is that of the latest
// try that reached a server, even when later ones reached none, as in
// Courier's DSN: find_delivery_info in courier/module.dsn/dsn.C prefers
// the last delivery made to a connected peer, whose reply says why the
// peer deferred the message, to a later connection refused.
func gaveUp(j *job, mta string, err error) error {
	if mta != "" || j.peerErr == nil {
		return fmt.Errorf("gave up after %d attempts: %w", j.attempt, err)
	}
	return fmt.Errorf("gave up after %d attempts (the last: %v): %w", j.attempt, err, j.peerErr)
}

// retryWait is the wait after the attempt-th try: Retry[attempt-1], the
// last entry repeating.
func retryWait(retry []time.Duration, attempt int) time.Duration {
	i := min(max(attempt-1, 0), len(retry)-1)
	return retry[i]
}

// fail records permanent failures of message j.env: a DSN to its sender
// (Bounce "dsn", sender not null), the recipients out of the queue, one
// Failed event per distinct reason. The DSN is committed before the
// recipients are marked done: a crash in between sends a second DSN on
// restart rather than none.
func (s *Sender) fail(j *job, fails []failure) {
	note := ""
	if s.cfg.Bounce == BounceDSN && j.env.From != "" {
		if env, err := s.queueDSN(j.env, fails); err != nil {
			note = "; dsn not queued: " + err.Error()
		} else {
			note = "; dsn queued " + env.ID + " " + env.MessageID
		}
	}
	rcpts := make([]string, len(fails))
	for i, f := range fails {
		rcpts[i] = f.rcpt
	}
	if _, err := s.q.Done(j.env.ID, rcpts); err != nil {
		note += "; " + err.Error()
	}
	var order []string
	byErr := map[string][]failure{}
	for _, f := range fails {
		k := f.err.Error()
		if _, seen := byErr[k]; !seen {
			order = append(order, k)
		}
		byErr[k] = append(byErr[k], f)
	}
	for _, k := range order {
		fs := byErr[k]
		var rs []string
		for _, f := range fs {
			rs = append(rs, f.rcpt)
		}
		s.log.Add(events.Event{Kind: events.Failed, QueueID: j.env.ID, MessageID: j.env.MessageID, Host: fs[0].host, Rcpts: rs, Code: fs[0].code, Error: k + note})
	}
	s.finish(j.env.ID, len(rcpts))
}

// queueDSN commits the DSN for fails of env to the queue, from the null
// sender to env's sender, and wakes the loader for it.
func (s *Sender) queueDSN(env Envelope, fails []failure) (Envelope, error) {
	orig, err := s.q.Text(env.ID)
	if err != nil {
		orig = nil // the DSN goes without the original's header
	}
	text, msgID := buildDSN(s.cfg.Hostname, env, orig, fails, time.Now())
	dsn, err := s.q.Put(Envelope{From: "", Rcpts: []string{env.From}, MessageID: msgID}, text)
	if err != nil {
		return dsn, err
	}
	s.wakeScan()
	return dsn, nil
}
