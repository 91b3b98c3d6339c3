// Package sender is the lab's model of Courier S: a queueing MTA with a
// sendmail entry point, a durable on-disk queue (queue.go states its rules),
// static routes and MX routing through the lab's DNS (route.go), a
// scheduler (scheduler.go) that shares connections among recipient hosts
// under a per-host and a total limit, and its own SMTP client
// (smtpclient.go: PIPELINING, Courier's per-phase timeouts).
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/resolver"
	"github.com/smtplab/smtplab/lab/scenario"
)

// Route sends mail for Domain ("example.com" exact, ".example.com" any
// subdomain) to Relay ("ip:port"), like Courier's esmtproutes.
type Route struct {
	Domain string `json:"domain"`
	Relay  string `json:"relay"`
}

// Bounce modes: what a permanent failure leaves behind.
const (
	BounceDSN    = "dsn"    // a DSN to the envelope sender, and the Failed event
	BounceRecord = "record" // only the Failed event
)

// Config is everything the sender needs. Zero values take the defaults
// named in each comment.
type Config struct {
	Hostname       string          `json:"hostname"`
	QueueDir       string          `json:"queue_dir"`
	MaxConnections int             `json:"max_connections"`
	MaxPerHost     int             `json:"max_per_host"`
	IdleClose      time.Duration   `json:"idle_close_ns"`
	Retry          []time.Duration `json:"retry_ns"`     // default [1s]
	MaxAttempts    int             `json:"max_attempts"` // default 10
	Routes         []Route         `json:"routes"`

	// DNSServers ("ip:port") resolve MX and A for hosts no route matches;
	// none: such hosts fail ("no route"). The resolver keeps Courier's
	// schedule (lab/resolver): DNSFirstTimeout (default 5s), times 5 each
	// round, DNSRounds rounds (default 3).
	DNSServers      []string      `json:"dns_servers,omitempty"`
	DNSFirstTimeout time.Duration `json:"dns_first_timeout_ns,omitempty"`
	DNSRounds       int           `json:"dns_rounds,omitempty"`
	// SMTPPort is the port of servers found through MX/A; default 25.
	SMTPPort int `json:"smtp_port,omitempty"`

	// Bounce is "dsn" (default, Courier's behaviour) or "record".
	Bounce string `json:"bounce,omitempty"`
	// MaxInMemory caps the messages held in memory; default 10000.
	MaxInMemory int `json:"max_in_memory,omitempty"`
	// MaxPerConnection caps the messages one session carries; 0: no cap.
	MaxPerConnection int `json:"max_per_connection,omitempty"`
	// NoFsync turns the queue's fsyncs off: for measuring what they cost,
	// never for a run whose durability matters.
	NoFsync bool `json:"no_fsync,omitempty"`

	// Timeouts per phase; zero takes CommandTimeout when that is set (a
	// shorthand for tests), else Courier's default (smtpclient.go).
	ConnectTimeout   time.Duration `json:"connect_timeout_ns"`
	GreetingTimeout  time.Duration `json:"greeting_timeout_ns,omitempty"`
	HeloTimeout      time.Duration `json:"helo_timeout_ns,omitempty"`
	MailTimeout      time.Duration `json:"mail_timeout_ns,omitempty"`
	RcptTimeout      time.Duration `json:"rcpt_timeout_ns,omitempty"`
	DataTimeout      time.Duration `json:"data_timeout_ns"` // the reply to DATA
	EndOfDataTimeout time.Duration `json:"end_of_data_timeout_ns,omitempty"`
	QuitTimeout      time.Duration `json:"quit_timeout_ns,omitempty"`
	CommandTimeout   time.Duration `json:"command_timeout_ns"`
}

func (c *Config) setDefaults() {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if len(c.Retry) == 0 {
		c.Retry = []time.Duration{time.Second}
	}
	if c.SMTPPort == 0 {
		c.SMTPPort = 25
	}
	if c.Bounce == "" {
		c.Bounce = BounceDSN
	}
	if c.MaxInMemory == 0 {
		c.MaxInMemory = 10000
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = CourierTimeouts.Connect
	}
	for _, p := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.GreetingTimeout, CourierTimeouts.Greeting},
		{&c.HeloTimeout, CourierTimeouts.Helo},
		{&c.MailTimeout, CourierTimeouts.Mail},
		{&c.RcptTimeout, CourierTimeouts.Rcpt},
		{&c.DataTimeout, CourierTimeouts.Data},
		{&c.EndOfDataTimeout, CourierTimeouts.EndOfData},
		{&c.QuitTimeout, CourierTimeouts.Quit},
	} {
		switch {
		case *p.v != 0:
		case c.CommandTimeout != 0:
			*p.v = c.CommandTimeout
		default:
			*p.v = p.def
		}
	}
}

func (c *Config) timeouts() Timeouts {
	return Timeouts{Connect: c.ConnectTimeout, Greeting: c.GreetingTimeout, Helo: c.HeloTimeout,
		Mail: c.MailTimeout, Rcpt: c.RcptTimeout, Data: c.DataTimeout, EndOfData: c.EndOfDataTimeout, Quit: c.QuitTimeout}
}

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
	// held keeps the loader from taking new messages off the queue (Hold):
	// a burst fills the queue before any delivery starts.
	held atomic.Bool

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
	if cfg.MaxConnections < 1 || cfg.MaxPerHost < 1 {
		return nil, fmt.Errorf("sender: connection limits must be at least 1 (total %d, per host %d)", cfg.MaxConnections, cfg.MaxPerHost)
	}
	if cfg.Bounce != BounceDSN && cfg.Bounce != BounceRecord {
		return nil, fmt.Errorf("sender: bounce %q: want %q or %q", cfg.Bounce, BounceDSN, BounceRecord)
	}
	if cfg.MaxInMemory < 1 {
		return nil, fmt.Errorf("sender: max_in_memory must be at least 1, got %d", cfg.MaxInMemory)
	}
	q, err := OpenQueue(cfg.QueueDir)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	q.noFsync = cfg.NoFsync
	ctx, stop := context.WithCancel(context.Background())
	s := &Sender{cfg: cfg, log: log, q: q, ctx: ctx, stop: stop, kick: make(chan struct{}, 1),
		known: map[string]int{}, bad: map[string]bool{},
		res: &resolver.Resolver{Servers: cfg.DNSServers, FirstTimeout: cfg.DNSFirstTimeout, Rounds: cfg.DNSRounds}}
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
	if room <= 0 {
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
	var batch []*job
	defer func() { s.sched.enqueue(batch...) }()
	for _, id := range ids {
		env, err := s.q.Envelope(id)
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
				s.fail(j, failuresOf(j, 0, errors.New("no route to "+host)))
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
	if low {
		s.wakeScan()
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

// open finds the servers for j's host (its static route, else MX and A)
// and opens a session with the first that greets. Like Courier, a 5xx
// greeting or HELO ends the search (permanent); other failures move on to
// the next server.
func (s *Sender) open(j *job) (*smtpConn, error) {
	addrs := []string{j.relay}
	if j.relay == "" {
		var err error
		if addrs, err = s.resolveMX(s.ctx, j.host); err != nil {
			return nil, err
		}
	}
	var err error
	for _, a := range addrs {
		var c *smtpConn
		c, err = dialSMTP(s.ctx, a, s.cfg.Hostname, s.cfg.timeouts())
		if err == nil {
			return c, nil
		}
		if permanent(err) {
			return nil, err
		}
	}
	return nil, err
}

// connection is one SMTP connection's life: resolve and dial, then
// deliver the first job and every job the scheduler hands it, until it
// has none. The slot is held while the DNS is asked, as Courier's esmtp
// child holds its delivery slot, and given back only once the connection
// is closed and its ConnClose logged.
func (s *Sender) connection(w *worker, first *job) {
	defer s.sched.release(w)
	id := "s" + strconv.FormatInt(s.conns.Add(1), 10)
	c, err := s.open(first)
	if err != nil {
		first.attempt++ // a refused connection or greeting is a try too
		s.log.Add(events.Event{Kind: events.ConnClose, Conn: id, Host: first.host, Reason: "connect: " + err.Error()})
		if permanent(err) {
			s.log.Add(events.Event{Kind: events.Attempt, QueueID: first.env.ID, Conn: id, Host: first.host, Code: code(err), Result: "permanent", Error: err.Error()})
			s.fail(first, failuresOf(first, code(err), err))
			return
		}
		s.retry(first, id, code(err), err)
		return
	}
	s.log.Add(events.Event{Kind: events.ConnOpen, Conn: id, Host: first.host})
	count, reason := 0, ""
	for j := first; ; {
		ok := s.deliver(c, id, j)
		if !ok {
			reason = "broken"
			c.close()
			break
		}
		count++
		if s.cfg.MaxPerConnection > 0 && count >= s.cfg.MaxPerConnection {
			reason = "cap" // the next message for this host gets a fresh session
			c.quit()
			break
		}
		var why string
		if j, why = s.sched.next(w); j == nil {
			reason = why
			c.quit()
			break
		}
	}
	s.log.Add(events.Event{Kind: events.ConnClose, Conn: id, Host: first.host, Count: count, Reason: reason})
}

// permanent reports a 5xx reply or a permanent routing failure.
func permanent(err error) bool {
	var r *Reply
	var re *routeError
	return errors.As(err, &r) && r.Permanent() || errors.As(err, &re) && re.permanent
}

func code(err error) int {
	var r *Reply
	if errors.As(err, &r) {
		return r.Code
	}
	return 0
}

func failuresOf(j *job, code int, err error) []failure {
	out := make([]failure, len(j.rcpts))
	for i, r := range j.rcpts {
		out[i] = failure{rcpt: r, host: j.host, code: code, err: err}
	}
	return out
}

// deliver sends one job in one transaction. It returns false when the
// connection can no longer be used. Every recipient of j ends up done,
// failed or handed to retry, whatever the receiver does.
func (s *Sender) deliver(c *smtpConn, conn string, j *job) bool {
	j.attempt++
	text, err := s.q.Text(j.env.ID)
	if err != nil {
		s.fail(j, failuresOf(j, 0, err))
		return true
	}
	o := c.transaction(j.env.From, j.rcpts, text)

	var perm []failure
	var later []string
	var laterErr error
	// refused sorts recipients refused by err: 5xx fails them, else they
	// are tried again.
	refused := func(rcpts []string, err error) {
		if len(rcpts) == 0 {
			return
		}
		if !permanent(err) {
			later, laterErr = append(later, rcpts...), err
			return
		}
		s.log.Add(events.Event{Kind: events.Attempt, QueueID: j.env.ID, Conn: conn, Host: j.host, Code: code(err), Result: "permanent", Error: err.Error()})
		for _, r := range rcpts {
			perm = append(perm, failure{rcpt: r, host: j.host, mta: c.remoteHost(), code: code(err), err: err})
		}
	}
	if o.mail != nil {
		refused(j.rcpts, o.mail)
	} else {
		var accepted []string
		for i, r := range j.rcpts {
			switch {
			case i >= o.answered:
				// The connection broke before this RCPT was answered.
				later, laterErr = append(later, r), o.broken
			case o.rcpt[i] != nil:
				refused([]string{r}, o.rcpt[i])
			default:
				accepted = append(accepted, r)
			}
		}
		switch {
		case o.sent:
			s.log.Add(events.Event{Kind: events.Attempt, QueueID: j.env.ID, Conn: conn, Host: j.host, Code: 250, Result: "ok"})
			if _, derr := s.q.Done(j.env.ID, accepted); derr != nil {
				// The receiver has the message; failing to record it would
				// send it twice. Say so loudly, and never load it again in
				// this process (s.bad): a restart would resend it, and the
				// Failed event says why.
				s.mu.Lock()
				s.bad[j.env.ID] = true
				s.mu.Unlock()
				s.log.Add(events.Event{Kind: events.Failed, QueueID: j.env.ID, MessageID: j.env.MessageID, Rcpts: accepted, Error: "delivered but not marked done: " + derr.Error()})
			}
			s.log.Add(events.Event{Kind: events.Sent, QueueID: j.env.ID, MessageID: j.env.MessageID, Conn: conn, Host: j.host, Rcpts: accepted})
			s.finish(j.env.ID, len(accepted))
		case o.data != nil:
			refused(accepted, o.data)
		default:
			later, laterErr = append(later, accepted...), o.broken
		}
	}
	if len(perm) > 0 {
		s.fail(j, perm)
	}
	if len(later) > 0 {
		s.retry(&job{env: j.env, host: j.host, relay: j.relay, rcpts: later, attempt: j.attempt}, conn, code(laterErr), laterErr)
	}
	if o.broken != nil {
		return false
	}
	if !o.sent {
		return c.reset() == nil
	}
	return true
}

// retry logs a temporary failure and re-queues the job after its wait, or
// fails it when attempts are used up.
func (s *Sender) retry(j *job, conn string, code int, err error) {
	if err == nil {
		err = errors.New("temporary failure")
	}
	ev := events.Event{Kind: events.Attempt, QueueID: j.env.ID, Conn: conn, Host: j.host, Code: code, Result: "temporary", Error: err.Error()}
	if j.attempt >= s.cfg.MaxAttempts {
		s.log.Add(ev)
		s.fail(j, failuresOf(j, code, fmt.Errorf("gave up after %d attempts: %w", j.attempt, err)))
		return
	}
	wait := retryWait(s.cfg.Retry, j.attempt)
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
