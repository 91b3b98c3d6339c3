package sender

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// TestSchedulerLimits sends 60 messages to 6 hosts through one receiver
// whose DATA takes a moment, so connections overlap, and whose answer to
// QUIT is slow, so a connection whose slot is given back before it is
// closed overlaps the next one. Neither the receiver nor the sender's own
// events may ever see more than MaxPerHost connections to a host or
// MaxConnections in all.
func TestSchedulerLimits(t *testing.T) {
	const (
		hosts      = 6
		perHost    = 10
		maxPerHost = 2
		maxTotal   = 3
	)
	f := newFake(t)
	f.set(func(f *fake) {
		f.hold = 2 * time.Millisecond
		f.quitDelay = 15 * time.Millisecond
	})
	cfg := testConfig(t, f.addr)
	cfg.MaxPerHost, cfg.MaxConnections = maxPerHost, maxTotal
	q := openQueue(t, cfg.QueueDir)
	var want []string
	for i := 0; i < hosts*perHost; i++ {
		id := fmt.Sprintf("<m%d@limits.test>", i)
		rcpt := fmt.Sprintf("u%d@h%d.test", i, i%hosts)
		put(t, q, id, "from@src.test", rcpt)
		want = append(want, id+" "+rcpt)
	}
	_, log := startSender(t, cfg)
	labtest.Until(t, "every message sent", func() bool {
		return countEvents(log, events.Sent, "") == len(want) && len(queueIDs(t, q)) == 0
	})
	// Let the idle connections close, so every ConnClose is in.
	labtest.Until(t, "every connection closed", func() bool {
		return get(f, func(f *fake) int { return f.open }) == 0 &&
			countEvents(log, events.ConnClose, "") == countEvents(log, events.ConnOpen, "")
	})

	checkOnce(t, f, want)
	if n := countEvents(log, events.Sent, ""); n != len(want) {
		t.Errorf("%d Sent events, want %d", n, len(want))
	}

	// The receiver's view.
	f.mu.Lock()
	if f.peak > maxTotal {
		t.Errorf("receiver saw %d connections at once, limit %d", f.peak, maxTotal)
	}
	if f.peak < 2 {
		t.Errorf("receiver never saw two connections at once (peak %d): the test did not exercise the limits", f.peak)
	}
	for h, p := range f.hostPeak {
		if p > maxPerHost {
			t.Errorf("receiver saw %d connections at once for %s, limit %d", p, h, maxPerHost)
		}
	}
	if len(f.hostPeak) != hosts {
		t.Errorf("receiver saw %d hosts, want %d", len(f.hostPeak), hosts)
	}
	for _, v := range f.violations {
		t.Error(v)
	}
	// Every host has mail waiting until near the end, so courierd's order
	// (pickAfter) gives nearly every freed slot to another host: sessions
	// turn over, far more connections than hosts, never more than messages.
	if f.accepted <= 2*hosts || f.accepted > len(want) {
		t.Errorf("%d connections for %d messages to %d hosts: want sessions turned over (more than %d), at most one per message", f.accepted, len(want), hosts, 2*hosts)
	}
	accepted := f.accepted
	f.mu.Unlock()

	// The sender's view: replay its connection events.
	open := map[string]string{} // conn -> host
	perHostOpen := map[string]int{}
	peak, opens, carried := 0, 0, 0
	for _, e := range log.Events() {
		switch e.Kind {
		case events.ConnOpen:
			opens++
			open[e.Conn] = e.Host
			perHostOpen[e.Host]++
			if perHostOpen[e.Host] > maxPerHost {
				t.Errorf("events: %d connections open to %s at once (at %s), limit %d", perHostOpen[e.Host], e.Host, e.Conn, maxPerHost)
			}
			peak = max(peak, len(open))
		case events.ConnClose:
			carried += e.Count
			if h, ok := open[e.Conn]; ok {
				perHostOpen[h]--
				delete(open, e.Conn)
			}
		}
	}
	if peak > maxTotal {
		t.Errorf("events: %d connections open at once, limit %d", peak, maxTotal)
	}
	if len(open) != 0 {
		t.Errorf("events: connections never closed: %v", open)
	}
	if opens != accepted {
		t.Errorf("events: %d ConnOpen, receiver accepted %d", opens, accepted)
	}
	if carried != len(want) {
		t.Errorf("events: connections carried %d messages in all, want %d", carried, len(want))
	}
}

// TestSchedulerYieldsToWaitingHost: with one slot in all, a connection
// idling on a host with nothing to send must give the slot up for a host
// that is waiting, long before its idle time is over.
func TestSchedulerYieldsToWaitingHost(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	cfg.MaxConnections, cfg.MaxPerHost = 1, 1
	cfg.IdleClose = duration.Duration(time.Hour) // the test would hang if the slot were not given up
	q := openQueue(t, cfg.QueueDir)
	_, log := startSender(t, cfg)
	put(t, q, "<a@yield.test>", "from@src.test", "u@a.test")
	wake(cfg.QueueDir)
	labtest.Until(t, "first message sent", func() bool { return countEvents(log, events.Sent, "") == 1 })
	put(t, q, "<b@yield.test>", "from@src.test", "u@b.test")
	wake(cfg.QueueDir)
	labtest.Until(t, "second message sent", func() bool { return countEvents(log, events.Sent, "") == 2 })
	checkOnce(t, f, []string{"<a@yield.test> u@a.test", "<b@yield.test> u@b.test"})
	var reasons []string
	for _, e := range eventsOf(log, events.ConnClose) {
		reasons = append(reasons, e.Host+":"+e.Reason)
	}
	if len(reasons) != 1 || reasons[0] != "a.test:yield" {
		t.Errorf("connection closes %v, want [a.test:yield]", reasons)
	}
	if p := get(f, func(f *fake) int { return f.peak }); p != 1 {
		t.Errorf("receiver saw %d connections at once, limit 1", p)
	}
}

// TestCloseWaitsForConnections: Close returns only once every connection
// has ended, so that afterwards each message is either delivered and out
// of the queue or undelivered and in it, and the log balances.
func TestCloseWaitsForConnections(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) { f.hold = 5 * time.Millisecond })
	cfg := testConfig(t, f.addr)
	cfg.MaxConnections, cfg.MaxPerHost = 4, 2
	q := openQueue(t, cfg.QueueDir)
	const n = 40
	for i := 0; i < n; i++ {
		put(t, q, fmt.Sprintf("<c%d@close.test>", i), "from@src.test", fmt.Sprintf("u%d@h%d.test", i, i%4))
	}
	s, log := startSender(t, cfg)
	labtest.Until(t, "some deliveries", func() bool { return len(f.delivered()) >= 4 })
	s.Close()

	if o, c := countEvents(log, events.ConnOpen, ""), countEvents(log, events.ConnClose, ""); o != c {
		t.Errorf("after Close: %d ConnOpen, %d ConnClose", o, c)
	}
	// The receiver sees each closed socket a moment later.
	labtest.Until(t, "the receiver's connections closed", func() bool { return get(f, func(f *fake) int { return f.open }) == 0 })
	queued := map[string]bool{}
	for _, id := range queueIDs(t, q) {
		env, err := q.Envelope(id)
		if err != nil {
			t.Fatal(err)
		}
		queued[env.MessageID] = true
	}
	delivered := map[string]bool{}
	for _, d := range get(f, func(f *fake) []delivery { return f.deliveries }) {
		if delivered[d.MessageID] {
			t.Errorf("%s delivered twice", d.MessageID)
		}
		delivered[d.MessageID] = true
		if queued[d.MessageID] {
			t.Errorf("%s delivered but still queued after Close", d.MessageID)
		}
	}
	if len(queued)+len(delivered) != n {
		t.Errorf("%d queued + %d delivered, want %d", len(queued), len(delivered), n)
	}
	if sent := countEvents(log, events.Sent, ""); sent != len(delivered) {
		t.Errorf("%d Sent events, %d deliveries", sent, len(delivered))
	}
}

// TestNothingAfterClose: Close racing with the start of many connections.
// Once Close has returned, the sender does nothing more: no event is
// logged, no connection is made.
func TestNothingAfterClose(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	const n = 100
	cfg.MaxConnections, cfg.MaxPerHost = n, 1
	q := openQueue(t, cfg.QueueDir)
	for i := 0; i < n; i++ {
		put(t, q, fmt.Sprintf("<n%d@after.test>", i), "from@src.test", fmt.Sprintf("u@h%d.test", i))
	}
	s, log := startSender(t, cfg)
	labtest.Until(t, "the first connection", func() bool { return get(f, func(f *fake) int { return f.accepted }) > 0 })
	s.Close()
	before := len(log.Events())
	// Commands the sender wrote before Close returned may still be on
	// their way to the fake: count its transactions once it has seen every
	// connection end (all that was sent, read), then look again later.
	labtest.Until(t, "the fake to see every connection end", func() bool { return get(f, func(f *fake) int { return f.open }) == 0 })
	mails := get(f, func(f *fake) int { return f.mails })
	time.Sleep(100 * time.Millisecond) // room for stragglers to show
	if after := len(log.Events()); after != before {
		t.Errorf("%d events logged after Close returned: %v", after-before, log.Events()[before:])
	}
	if m := get(f, func(f *fake) int { return f.mails }); m != mails {
		t.Errorf("%d transactions started after Close returned", m-mails)
	}
}

// TestSchedulerYieldsLongestIdle: with every slot taken by idle
// connections, the one idle longest gives its slot to a waiting host
// (courieresmtp.C's "Find a process that's been idled the longest"), not
// the one that just finished.
func TestSchedulerYieldsLongestIdle(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	cfg.MaxConnections, cfg.MaxPerHost = 2, 1
	cfg.IdleClose = duration.Duration(time.Hour)
	q := openQueue(t, cfg.QueueDir)
	_, log := startSender(t, cfg)
	for i, host := range []string{"a", "b", "c", "d"} {
		put(t, q, fmt.Sprintf("<%s@lru.test>", host), "from@src.test", "u@"+host+".test")
		wake(cfg.QueueDir)
		labtest.Until(t, host+" sent", func() bool { return countEvents(log, events.Sent, "") == i+1 })
	}
	var reasons []string
	for _, e := range eventsOf(log, events.ConnClose) {
		reasons = append(reasons, e.Host+":"+e.Reason)
	}
	// c takes a's slot (idle since before b's), d takes b's.
	if fmt.Sprint(reasons) != "[a.test:yield b.test:yield]" {
		t.Errorf("connection closes %v, want [a.test:yield b.test:yield]", reasons)
	}
}

// TestSchedulerKeepsSessions: messages that come one at a time, each to
// one of four hosts, with slots to spare, all go over one session per
// host, kept open between them (Courier's keep-alive): the connection
// count is the number of hosts, however the messages are spaced.
func TestSchedulerKeepsSessions(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	cfg.MaxConnections, cfg.MaxPerHost = 40, 4
	cfg.IdleClose = duration.Duration(time.Hour)
	q := openQueue(t, cfg.QueueDir)
	_, log := startSender(t, cfg)
	var want []string
	for i := range 20 {
		id, rcpt := fmt.Sprintf("<m%d@keep.test>", i), fmt.Sprintf("u%d@h%d.test", i, i%4)
		put(t, q, id, "from@src.test", rcpt)
		want = append(want, id+" "+rcpt)
		wake(cfg.QueueDir)
		labtest.Until(t, "message sent", func() bool { return countEvents(log, events.Sent, "") == i+1 })
	}
	checkOnce(t, f, want)
	if n := countEvents(log, events.ConnOpen, ""); n != 4 {
		t.Errorf("%d connections for 20 messages to 4 hosts, want 4 (one kept per host)", n)
	}
	if n := countEvents(log, events.ConnClose, ""); n != 0 {
		t.Errorf("%d connections closed while their hosts' mail kept coming", n)
	}
}

// TestHoldKeepsTheQueue: a held sender takes nothing off its queue,
// whatever wakes it; released, it takes the whole queue at once, so a
// burst opens one connection per slot (here 2 hosts x 2), not one per
// message as they arrive.
func TestHoldKeepsTheQueue(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	cfg.MaxConnections, cfg.MaxPerHost = 4, 2
	cfg.IdleClose = duration.Duration(time.Hour)
	q := openQueue(t, cfg.QueueDir)
	s, log := startSender(t, cfg)
	s.Hold()
	var want []string
	for i := range 12 {
		id, rcpt := fmt.Sprintf("<m%d@hold.test>", i), fmt.Sprintf("u%d@h%d.test", i, i%2)
		put(t, q, id, "from@src.test", rcpt)
		want = append(want, id+" "+rcpt)
		wake(cfg.QueueDir)
	}
	s.scan() // what the wake-ups and the ticker run: held, it takes nothing
	if n := s.InMemory(); n != 0 {
		t.Fatalf("held sender took %d messages off its queue", n)
	}
	s.Release()
	labtest.Until(t, "every message sent", func() bool { return countEvents(log, events.Sent, "") == len(want) })
	checkOnce(t, f, want)
	if n := countEvents(log, events.ConnOpen, ""); n != 4 {
		t.Errorf("%d connections for a burst of 12 to 2 hosts with 2 slots each, want 4", n)
	}
}

// pickAfter is courierd's order when a delivery ends (cdmsgq3.C,
// msgq::completed): the finished host to the front, the least recently
// used one in front of it, the first with mail waiting and room wins.
func TestPickAfterCourierOrder(t *testing.T) {
	s := newScheduler(40, 4, time.Minute, func(*worker, *job) {})
	for _, h := range []string{"a", "b", "c"} {
		s.state(h)
	}
	wait := func(host string, n int) {
		h := s.hosts[host]
		h.pending = nil
		for range n {
			h.pending = append(h.pending, &job{host: host})
		}
	}
	// Every host has mail: a delivery to a ends, and c, the least recently
	// used, goes first (recent: c a b).
	wait("a", 1)
	wait("b", 1)
	wait("c", 1)
	if got := s.pickAfter("a"); got != "c" {
		t.Errorf("all waiting, after a: %q, want c (least recently used)", got)
	}
	if !slices.Equal(s.recent, []string{"c", "a", "b"}) {
		t.Errorf("recent %q, want [c a b]", s.recent)
	}
	// Only the finished host has mail: it keeps its session (recent: b a c).
	wait("b", 0)
	wait("c", 0)
	if got := s.pickAfter("a"); got != "a" {
		t.Errorf("only a waiting, after a: %q, want a", got)
	}
	// A host with four deliveries under way and no idle session has no
	// room; with three it has.
	wait("a", 0)
	wait("b", 2)
	s.hosts["b"].conns = 4
	if got := s.pickAfter("c"); got != "" {
		t.Errorf("only b waiting, with four under way: %q, want none", got)
	}
	s.hosts["b"].conns = 3
	if got := s.pickAfter("c"); got != "b" {
		t.Errorf("only b waiting, with three under way: %q, want b", got)
	}
	// Nothing waits anywhere.
	wait("a", 0)
	wait("b", 0)
	if got := s.pickAfter("a"); got != "" {
		t.Errorf("nothing waiting: %q", got)
	}
}
