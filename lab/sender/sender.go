// Package sender is the lab's model of Courier S: a queueing MTA with a
// sendmail entry point, a durable on-disk queue (queue.go states its rules),
// static routes and a scheduler (scheduler.go) that shares connections
// among recipient hosts under a per-host and a total limit.
//
// Delivery rules:
//   - Recipients of one message are grouped by host; each group is one job,
//     sent in one transaction.
//   - A 2xx answer to the end of data marks the group's recipients done in
//     the queue; only then is the job finished.
//   - A 4xx answer, a refused or dropped connection, a timeout or garbage is
//     temporary: the job waits Retry[attempt-1] (the last wait repeats) and
//     is tried again, up to MaxAttempts, then recorded as failed.
//   - A 5xx answer is permanent: the recipients are recorded as failed and
//     leave the queue (a DSN to the sender is later work).
package sender

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/scenario"
)

// Route sends mail for Domain ("example.com" exact, ".example.com" any
// subdomain) to Relay ("ip:port"), like Courier's esmtproutes.
type Route struct {
	Domain string `json:"domain"`
	Relay  string `json:"relay"`
}

// Config is everything the sender needs.
type Config struct {
	Hostname       string          `json:"hostname"`
	QueueDir       string          `json:"queue_dir"`
	MaxConnections int             `json:"max_connections"`
	MaxPerHost     int             `json:"max_per_host"`
	IdleClose      time.Duration   `json:"idle_close_ns"`
	Retry          []time.Duration `json:"retry_ns"`
	MaxAttempts    int             `json:"max_attempts"`
	Routes         []Route         `json:"routes"`
	// Timeouts per phase; zero means Courier-like defaults.
	ConnectTimeout time.Duration `json:"connect_timeout_ns"`
	CommandTimeout time.Duration `json:"command_timeout_ns"`
	DataTimeout    time.Duration `json:"data_timeout_ns"`
}

func (c *Config) setDefaults() {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 60 * time.Second
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = 5 * time.Minute
	}
	if c.DataTimeout == 0 {
		c.DataTimeout = 10 * time.Minute
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if len(c.Retry) == 0 {
		c.Retry = []time.Duration{time.Second}
	}
}

// Sender is a running sender.
type Sender struct {
	cfg   Config
	log   *events.Log
	q     *Queue
	sched *scheduler
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	wake  net.PacketConn
	conns atomic.Int64

	mu    sync.Mutex
	known map[string]bool // queue IDs already scheduled
}

// New opens the queue and checks cfg.
func New(cfg Config, log *events.Log) (*Sender, error) {
	cfg.setDefaults()
	if cfg.MaxConnections < 1 || cfg.MaxPerHost < 1 {
		return nil, fmt.Errorf("sender: connection limits must be at least 1 (total %d, per host %d)", cfg.MaxConnections, cfg.MaxPerHost)
	}
	q, err := OpenQueue(cfg.QueueDir)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Sender{cfg: cfg, log: log, q: q, ctx: ctx, stop: stop, known: map[string]bool{}}
	s.sched = newScheduler(cfg.MaxConnections, cfg.MaxPerHost, cfg.IdleClose, s.startConnection)
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

// Start resumes the queue and starts picking up new messages, woken by
// sendmail and, as a fallback, every second.
func (s *Sender) Start() error {
	s.q.clearTmp()
	os.Remove(wakeSocket(s.cfg.QueueDir))
	pc, err := net.ListenPacket("unixgram", wakeSocket(s.cfg.QueueDir))
	if err != nil {
		return fmt.Errorf("sender: wake socket: %w", err)
	}
	s.wake = pc
	kick := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 16)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			select {
			case kick <- struct{}{}:
			default:
			}
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
			case <-kick:
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

// scan schedules every queued message not seen before.
func (s *Sender) scan() {
	ids, err := s.q.IDs()
	if err != nil {
		s.log.Add(events.Event{Kind: events.Attempt, Result: "temporary", Error: err.Error()})
		return
	}
	for _, id := range ids {
		s.mu.Lock()
		seen := s.known[id]
		s.known[id] = true
		s.mu.Unlock()
		if seen {
			continue
		}
		env, err := s.q.Envelope(id)
		if err != nil {
			s.log.Add(events.Event{Kind: events.Failed, QueueID: id, Error: err.Error()})
			continue
		}
		if len(env.Rcpts) == 0 {
			// Every recipient was done but the message was not removed
			// (the sender stopped in between): finish the bookkeeping.
			s.q.Done(id, nil)
			continue
		}
		s.log.Add(events.Event{Time: env.QueuedAt, Kind: events.Queued, QueueID: id, MessageID: env.MessageID, From: env.From, Rcpts: env.Rcpts})
		for host, rcpts := range groupByHost(env.Rcpts) {
			relay, ok := s.route(host)
			if !ok {
				s.fail(&job{env: env, host: host, rcpts: rcpts}, 0, "no route to "+host)
				continue
			}
			s.sched.enqueue(&job{env: env, host: host, relay: relay, rcpts: rcpts})
		}
	}
}

func groupByHost(rcpts []string) map[string][]string {
	out := map[string][]string{}
	for _, r := range rcpts {
		h := strings.ToLower(r[strings.LastIndexByte(r, '@')+1:])
		out[h] = append(out[h], r)
	}
	return out
}

func (s *Sender) route(host string) (string, bool) {
	for _, rt := range s.cfg.Routes {
		if scenario.DomainMatches(rt.Domain, host) {
			return rt.Relay, true
		}
	}
	return "", false
}

// connection is one SMTP connection's life: dial, then deliver the first
// job and every job the scheduler hands it, until it has none. The slot is
// given back only once the connection is closed and its ConnClose logged.
func (s *Sender) connection(w *worker, first *job) {
	defer s.sched.release(w)
	id := "s" + strconv.FormatInt(s.conns.Add(1), 10)
	c, err := s.dial(first.relay)
	if err != nil {
		first.attempt++ // a refused connection or greeting is a try too
		s.log.Add(events.Event{Kind: events.ConnClose, Conn: id, Host: first.host, Reason: "connect: " + err.Error()})
		s.retry(first, id, code(err), err)
		return
	}
	s.log.Add(events.Event{Kind: events.ConnOpen, Conn: id, Host: first.host})
	count, reason := 0, ""
	for j := first; ; {
		ok := s.deliver(c, id, j)
		if !ok {
			reason = "broken"
			c.Close()
			break
		}
		count++
		var why string
		if j, why = s.sched.next(w); j == nil {
			reason = why
			c.Quit()
			c.Close()
			break
		}
	}
	s.log.Add(events.Event{Kind: events.ConnClose, Conn: id, Host: first.host, Count: count, Reason: reason})
}

func (s *Sender) dial(relay string) (*smtp.Client, error) {
	d := net.Dialer{Timeout: s.cfg.ConnectTimeout}
	nc, err := d.DialContext(s.ctx, "tcp", relay)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(nc)
	c.CommandTimeout = s.cfg.CommandTimeout
	c.SubmissionTimeout = s.cfg.DataTimeout
	if err := c.Hello(s.cfg.Hostname); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// deliver sends one job in one transaction. It returns false when the
// connection can no longer be used. Every recipient of j ends up done,
// failed or handed to retry, whatever the receiver does.
func (s *Sender) deliver(c *smtp.Client, conn string, j *job) bool {
	j.attempt++
	text, err := s.q.Text(j.env.ID)
	if err != nil {
		s.fail(j, 0, err.Error())
		return true
	}
	// later tries the recipients again; permanent fails them.
	later := func(rcpts []string, err error) {
		if len(rcpts) > 0 {
			s.retry(&job{env: j.env, host: j.host, relay: j.relay, rcpts: rcpts, attempt: j.attempt}, conn, code(err), err)
		}
	}
	permanent := func(rcpts []string, err error) {
		s.log.Add(events.Event{Kind: events.Attempt, QueueID: j.env.ID, Conn: conn, Host: j.host, Code: code(err), Result: "permanent", Error: err.Error()})
		s.fail(&job{env: j.env, host: j.host, rcpts: rcpts}, code(err), err.Error())
	}

	if err := c.Mail(j.env.From, nil); err != nil {
		if !isSMTP(err) {
			later(j.rcpts, err)
			return false
		}
		if code(err) >= 500 {
			permanent(j.rcpts, err)
		} else {
			later(j.rcpts, err)
		}
		return c.Reset() == nil
	}

	var accepted, deferred []string
	var deferErr error
	for i, r := range j.rcpts {
		err := c.Rcpt(r, nil)
		switch {
		case err == nil:
			accepted = append(accepted, r)
		case !isSMTP(err):
			// The connection is gone: every recipient not failed for good
			// is tried again, those not yet asked for too.
			later(append(append(accepted, deferred...), j.rcpts[i:]...), err)
			return false
		case code(err) >= 500:
			permanent([]string{r}, err)
		default:
			deferred = append(deferred, r)
			deferErr = err
		}
	}
	if len(accepted) == 0 {
		later(deferred, deferErr)
		return c.Reset() == nil
	}

	wc, err := c.Data()
	if err == nil {
		if _, err = wc.Write(text); err == nil {
			err = wc.Close()
		} else {
			wc.Close()
		}
	}
	if err != nil {
		if isSMTP(err) && code(err) >= 500 {
			permanent(accepted, err)
			later(deferred, deferErr)
		} else {
			later(append(accepted, deferred...), err)
		}
		if !isSMTP(err) {
			return false
		}
		return c.Reset() == nil
	}
	s.log.Add(events.Event{Kind: events.Attempt, QueueID: j.env.ID, Conn: conn, Host: j.host, Code: 250, Result: "ok"})
	if _, derr := s.q.Done(j.env.ID, accepted); derr != nil {
		// The receiver has the message; failing to record it would send it
		// twice. Say so loudly; the report counts it.
		s.log.Add(events.Event{Kind: events.Failed, QueueID: j.env.ID, MessageID: j.env.MessageID, Rcpts: accepted, Error: "delivered but not marked done: " + derr.Error()})
	}
	s.log.Add(events.Event{Kind: events.Sent, QueueID: j.env.ID, MessageID: j.env.MessageID, Conn: conn, Host: j.host, Rcpts: accepted})
	later(deferred, deferErr)
	return true
}

func isSMTP(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se)
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// retry logs a temporary failure and re-queues the job after its wait, or
// fails it when attempts are used up.
func (s *Sender) retry(j *job, conn string, code int, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.log.Add(events.Event{Kind: events.Attempt, QueueID: j.env.ID, Conn: conn, Host: j.host, Code: code, Result: "temporary", Error: msg})
	if j.attempt >= s.cfg.MaxAttempts {
		s.fail(j, code, fmt.Sprintf("gave up after %d attempts: %s", j.attempt, msg))
		return
	}
	i := j.attempt - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s.cfg.Retry) {
		i = len(s.cfg.Retry) - 1
	}
	// After Close the job is dropped (the scheduler is shut down); the
	// queue keeps the message.
	time.AfterFunc(s.cfg.Retry[i], func() {
		if s.ctx.Err() == nil {
			s.sched.enqueue(j)
		}
	})
}

// fail records a permanent failure and takes the recipients out of the
// queue, so they are reported, not retried forever.
func (s *Sender) fail(j *job, code int, msg string) {
	if len(j.rcpts) > 0 {
		if _, err := s.q.Done(j.env.ID, j.rcpts); err != nil {
			msg += "; " + err.Error()
		}
	}
	s.log.Add(events.Event{Kind: events.Failed, QueueID: j.env.ID, MessageID: j.env.MessageID, Host: j.host, Rcpts: j.rcpts, Code: code, Error: msg})
}
