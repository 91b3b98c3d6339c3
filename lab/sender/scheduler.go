package sender

import (
	"sync"
	"time"
)

// job is the recipients of one message at one host: one transaction.
type job struct {
	env     Envelope
	host    string
	relay   string
	rcpts   []string
	attempt int
	// peerErr is why the latest try that reached a server failed, and
	// peerMTA that server: what the DSN reports if the job fails for good
	// (gaveUp).
	peerErr error
	peerMTA string
}

// worker is one connection's claim on the scheduler: a slot for its host.
type worker struct {
	host string
	jobs chan *job // buffered 1: a job (or nil: close) handed while idle
	// making room: the connection closes so that a waiting host gets its
	// slot, and counts in scheduler.evicting until released. Under mu.
	makingRoom bool
	idleSince  time.Time // when it last became idle; under mu
}

type hostState struct {
	pending []*job
	conns   int
	idle    []*worker
}

// scheduler shares connections among recipient hosts, as Courier's
// courierd and its courieresmtp module do (svarshavchik/courier:
// courier/cdmsgq.C start_message, courier/cdmsgq3.C process_completion,
// courier/module.esmtp/courieresmtp.C esmtpparent):
//   - at most maxPerHost connections to one host and maxTotal in all
//     (MAXHOST 4 and MAXDELS 40 in module.esmtp's config), at every
//     moment: a slot is taken before dialling and given back, by release,
//     only after the connection is closed;
//   - a job goes to an idle connection to its host first (session reuse),
//     else to a new connection if both limits allow, else it waits;
//   - hosts waiting for a slot are served round-robin;
//   - when a delivery ends, the connection does not simply take its own
//     host's next job: courierd (cdmsgq3.C, msgq::completed) moves the
//     finished host to the front of its recently-used list, then, "to
//     avoid starvation", the least recently used host in front of that,
//     and gives the freed delivery slot to the first host in that order
//     with mail waiting and fewer than four deliveries under way
//     (pickAfter). When that is another host, the connection goes idle and
//     the job goes to an idle connection to its own host, else to a new
//     one; with every slot taken, the longest-idle connection, often the
//     one that just finished, closes to make room. Under a backlog this
//     turns sessions over instead of reusing them;
//   - a connection with nothing left for its host stays open, idle, for
//     idleClose (esmtptimeoutkeepalive, 60 s by default in
//     module.esmtp/esmtpconfig.c) waiting for more mail to its host;
//   - when every slot is taken and another host waits, the connection that
//     has been idle longest closes and gives it its slot (courieresmtp's
//     "Find a process that's been idled the longest, and reuse that one").
//     A busy connection is never closed for another host: with no idle
//     one, the waiting host waits for a connection to finish.
type scheduler struct {
	maxTotal, maxPerHost int
	idleClose            time.Duration
	// run starts a connection for w with its first job. It is called with
	// mu held and must not block (it starts a goroutine); the connection
	// calls release once it is closed.
	run func(w *worker, first *job)

	mu       sync.Mutex
	hosts    map[string]*hostState
	order    []string // hosts by first appearance, for round-robin
	next0    int      // where the next round-robin pass starts
	recent   []string // hosts, most recently finished first (pickAfter)
	total    int
	evicting int // connections closing to make room, not yet released
	closed   bool
}

func newScheduler(maxTotal, maxPerHost int, idleClose time.Duration, run func(*worker, *job)) *scheduler {
	return &scheduler{maxTotal: maxTotal, maxPerHost: maxPerHost, idleClose: idleClose, run: run, hosts: map[string]*hostState{}}
}

func (s *scheduler) state(host string) *hostState {
	h := s.hosts[host]
	if h == nil {
		h = &hostState{}
		s.hosts[host] = h
		s.order = append(s.order, host)
		s.recent = append(s.recent, host) // never served: least recent
	}
	return h
}

// pickAfter is courierd's choice when a delivery to done ends
// (cdmsgq3.C, msgq::completed): done moves to the front of the
// recently-used hosts, then the least recently used one moves in front of
// it; the first host in that order with a job waiting and room for one
// more delivery gets the freed slot. "" when no job waits. Called with mu
// held.
func (s *scheduler) pickAfter(done string) string {
	s.toFront(done)
	if n := len(s.recent); n > 1 {
		s.toFront(s.recent[n-1])
	}
	for _, name := range s.recent {
		h := s.hosts[name]
		// done's finishing connection is still its delivery slot.
		if len(h.pending) > 0 && (name == done || len(h.idle) > 0 || h.conns < s.maxPerHost) {
			return name
		}
	}
	return ""
}

func (s *scheduler) toFront(host string) {
	for i, name := range s.recent {
		if name == host {
			copy(s.recent[1:i+1], s.recent[:i])
			s.recent[0] = host
			return
		}
	}
}

// busy counts the connections with a delivery under way: courierd's
// delivery slots in use. Called with mu held.
func (s *scheduler) busy() int {
	n := s.total - s.evicting
	for _, h := range s.hosts {
		n -= len(h.idle)
	}
	return n
}

// startFor gives host's first waiting job to an idle connection to it, or
// a new connection if the limits allow; else the job keeps waiting and an
// idle connection is asked to make room. Called with mu held.
func (s *scheduler) startFor(host string) {
	h := s.hosts[host]
	j := h.pending[0]
	if n := len(h.idle); n > 0 {
		h.pending = h.pending[1:]
		w := h.idle[n-1]
		h.idle = h.idle[:n-1]
		w.jobs <- j
		return
	}
	if s.total < s.maxTotal && h.conns < s.maxPerHost {
		h.pending = h.pending[1:]
		h.conns++
		s.total++
		s.run(&worker{host: host, jobs: make(chan *job, 1)}, j)
		return
	}
	s.makeRoom()
}

// enqueue hands each job to an idle connection to its host, or queues
// it, then starts what the limits allow. The batch is taken whole under
// the lock, so connections are shared out over every host in it, round
// robin (a burst gives each host its share of the slots), whatever the
// first connections do meanwhile.
func (s *scheduler) enqueue(jobs ...*job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, j := range jobs {
		h := s.state(j.host)
		if n := len(h.idle); n > 0 {
			w := h.idle[n-1]
			h.idle = h.idle[:n-1]
			w.jobs <- j
			continue
		}
		h.pending = append(h.pending, j)
	}
	s.fill()
}

// fill starts connections for waiting hosts while the limits allow, and
// asks an idle connection to close when a waiting host has no slot.
// Called with mu held.
func (s *scheduler) fill() {
	for s.total < s.maxTotal {
		started := false
		n := len(s.order)
		for i := 0; i < n && s.total < s.maxTotal; i++ {
			name := s.order[(s.next0+i)%n]
			h := s.hosts[name]
			if len(h.pending) == 0 || h.conns >= s.maxPerHost {
				continue
			}
			j := h.pending[0]
			h.pending = h.pending[1:]
			h.conns++
			s.total++
			w := &worker{host: name, jobs: make(chan *job, 1)}
			s.run(w, j)
			started = true
			s.next0 = (s.next0 + i + 1) % n
			break
		}
		if !started {
			break
		}
	}
	s.makeRoom()
}

// makeRoom closes the longest-idle connections, one for each waiting
// host beyond those already closing, when every slot is taken. Called
// with mu held.
func (s *scheduler) makeRoom() {
	for s.total >= s.maxTotal && s.starving() > s.evicting {
		var oldest *hostState
		for _, name := range s.order {
			h := s.hosts[name]
			if len(h.idle) > 0 && (oldest == nil || h.idle[0].idleSince.Before(oldest.idle[0].idleSince)) {
				oldest = h
			}
		}
		if oldest == nil {
			return // every connection is busy: the waiting host waits
		}
		w := oldest.idle[0]
		oldest.idle = oldest.idle[1:]
		w.makingRoom = true
		s.evicting++
		w.jobs <- nil
	}
}

// starving counts hosts with pending jobs that could start a connection
// if a global slot were free. Called with mu held.
func (s *scheduler) starving() int {
	n := 0
	for _, h := range s.hosts {
		if len(h.pending) > 0 && h.conns < s.maxPerHost {
			n++
		}
	}
	return n
}

// next gives connection w its next job, waiting up to idleClose. nil means
// close the connection, then release its slot; why says why.
func (s *scheduler) next(w *worker) (j *job, why string) {
	s.mu.Lock()
	h := s.hosts[w.host]
	if s.closed {
		s.mu.Unlock()
		return nil, "shutdown"
	}
	pick := s.pickAfter(w.host)
	if pick == w.host {
		j = h.pending[0]
		h.pending = h.pending[1:]
		s.mu.Unlock()
		return j, ""
	}
	w.idleSince = time.Now()
	h.idle = append(h.idle, w)
	if pick != "" {
		s.startFor(pick) // may hand w's slot to another host's new connection
	}
	// A delivery slot still free after that goes to w's own host's next
	// job, on w: courierd starts a message whenever a slot is free and its
	// host has room (cdmsgq.C, msgq::start_message).
	if len(h.pending) > 0 && s.busy() < s.maxTotal && removeWorker(h, w) {
		j = h.pending[0]
		h.pending = h.pending[1:]
		s.mu.Unlock()
		return j, ""
	}
	s.makeRoom() // may pick w itself, if it has been idle longest
	s.mu.Unlock()

	t := time.NewTimer(s.idleClose)
	defer t.Stop()
	select {
	case j = <-w.jobs:
	case <-t.C:
		s.mu.Lock()
		if removeWorker(h, w) {
			s.mu.Unlock()
			return nil, "idle"
		}
		s.mu.Unlock()
		j = <-w.jobs // handed a job (or told to close) just as the timer fired
	}
	if j == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return nil, "shutdown"
		}
		return nil, "yield"
	}
	return j, ""
}

func removeWorker(h *hostState, w *worker) bool {
	for i, x := range h.idle {
		if x == w {
			h.idle = append(h.idle[:i], h.idle[i+1:]...)
			return true
		}
	}
	return false
}

// release gives w's slot back once its connection is closed (or failed
// to open), and starts what waited for a slot.
func (s *scheduler) release(w *worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[w.host]
	h.conns--
	s.total--
	if w.makingRoom {
		w.makingRoom = false
		s.evicting--
	}
	if !s.closed {
		s.fill()
	}
}

// shutdown closes idle connections and starts no more.
func (s *scheduler) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, h := range s.hosts {
		for _, w := range h.idle {
			w.makingRoom = true
			s.evicting++
			w.jobs <- nil
		}
		h.idle = nil
	}
}
