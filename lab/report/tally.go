package report

import (
	"strconv"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/topology"
)

// tally is what one pass over a run's events gathers, role by role; Build
// and BuildRecords both start from it. The events come in any order (a
// real MTA's log has whole seconds, so a delivery can sort before its
// injection): what ties an event to one of another role (a delivery to
// its message, a check to a faulted query) is resolved after the pass,
// from what the tallies kept.
type tally struct {
	sender   senderTally
	receiver receiverTally
	dns      dnsTally
	identd   identdTally
	phases   *timings // Summary.Phases, from every role's events
	// faults are every role's Fault events, in event order: the DNS
	// stub's and the identd's.
	faults []events.Event
	// outages are the lab's Outage events and links the sender's
	// LinkFault events, in event order: the faults on the mail path
	// (pathFaults).
	outages, links []events.Event
	end            time.Time // the latest event's time: the run's end
	conns          *connBook
}

// tallyEvents makes the one pass over in.Events.
func tallyEvents(in Inputs) *tally {
	conns := &connBook{byKey: map[connKey]*ConnectionRecord{}}
	t := &tally{
		sender:   newSenderTally(conns),
		receiver: newReceiverTally(conns),
		dns:      newDNSTally(in.Blacklists),
		phases:   newTimings(),
		conns:    conns,
	}
	for e := range in.each() {
		if name, d := phaseOf(e); name != "" {
			t.phases.add(name, d, e.Error != "")
		}
		switch e.Kind {
		case events.Fault:
			t.faults = append(t.faults, e)
		case events.Outage:
			t.outages = append(t.outages, e)
		case events.LinkFault:
			t.links = append(t.links, e)
		}
		if e.Time.After(t.end) {
			t.end = e.Time
		}
		switch e.Role {
		case topology.Sender:
			t.sender.add(e)
		case topology.Receiver:
			t.receiver.add(e)
		case topology.DNS:
			t.dns.add(e)
		case topology.Identd:
			t.identd.add(e)
		case topology.Final:
			// The relay topology's last hop: what reached the lab's final
			// receiver is what was delivered (Inputs.Relay). Its sessions
			// are the relay's, not the sender's: only deliveries count.
			if e.Kind == events.Delivered {
				t.receiver.delivered(events.Event{Time: e.Time, MessageID: e.MessageID})
			}
		}
	}
	return t
}

// senderTally is what the sender's events say: the messages it queued,
// its connections and how they ended, its tries and failures.
type senderTally struct {
	queued   []events.Event       // the workload's Queued events, in event order
	queuedAt map[string]time.Time // Message-ID -> injection time
	rcptsOf  map[string][]string  // Message-ID -> its recipients, to name it
	first    time.Time            // the first injection
	dsns     int                  // bounces it queued (null sender)
	opened   int                  // connections opened
	open     map[string]bool      // connections opened and not closed
	sentOver map[string]int       // connection -> transactions sent over it
	reused   int                  // transactions sent over a connection that had carried one
	closes   map[string]int       // why connections closed, by kind; nil when none did
	retries  int                  // tries that failed for now
	attempts map[string]int       // queue id -> tries
	sentConn map[string]string    // queue id -> the connection that carried it (the last Sent)
	sentAt   map[string]time.Time // Message-ID -> when the receiver first took it (its first Sent)
	failed   []events.Event       // Failed events, in event order
	conns    *connBook
}

func newSenderTally(conns *connBook) senderTally {
	return senderTally{queuedAt: map[string]time.Time{}, rcptsOf: map[string][]string{}, open: map[string]bool{},
		sentOver: map[string]int{}, attempts: map[string]int{}, sentConn: map[string]string{}, sentAt: map[string]time.Time{}, conns: conns}
}

func (t *senderTally) add(e events.Event) {
	switch e.Kind {
	case events.Queued:
		if e.From == "" {
			t.dsns++ // a bounce the sender made (null sender), not the workload
			return
		}
		t.queued = append(t.queued, e)
		t.queuedAt[e.MessageID] = e.Time
		t.rcptsOf[e.MessageID] = e.Rcpts
		if t.first.IsZero() || e.Time.Before(t.first) {
			t.first = e.Time
		}
	case events.ConnOpen:
		t.opened++
		t.open[e.Conn] = true
		t.conns.opened(e)
	case events.Sent:
		if _, ok := t.sentAt[e.MessageID]; !ok && e.MessageID != "" {
			t.sentAt[e.MessageID] = e.Time
		}
		// Counted from what each connection sent, not from its close:
		// a session still open when the run ended carried mail too.
		if t.sentOver[e.Conn]++; t.sentOver[e.Conn] > 1 {
			t.reused++
		}
		t.sentConn[e.QueueID] = e.Conn
	case events.ConnClose:
		delete(t.open, e.Conn) // a failed connect closes what never opened
		if t.closes == nil {
			t.closes = map[string]int{}
		}
		reason, _, _ := strings.Cut(e.Reason, ":") // "connect: dial tcp ...": the kind, not the text
		t.closes[reason]++
		t.conns.closed(e).Messages = e.Count
	case events.Attempt:
		t.attempts[e.QueueID]++
		if e.Result == "temporary" {
			t.retries++
		}
	case events.Failed:
		t.failed = append(t.failed, e)
	}
}

// summarize puts the sender's figures in s.
func (t *senderTally) summarize(s *Summary) {
	s.DSNs = t.dsns
	s.SenderConnections = t.opened
	s.SenderReused = t.reused
	s.SenderCloses = t.closes
	s.Retries = t.retries
	if open := len(t.open); open > 0 {
		if s.SenderCloses == nil {
			s.SenderCloses = map[string]int{}
		}
		s.SenderCloses["open"] = open // idle, waiting for more when the run ended
	}
}

// name names a message by its Message-ID and recipients.
func (t *senderTally) name(id string) string {
	if r := t.rcptsOf[id]; len(r) > 0 {
		return id + " to " + strings.Join(r, ", ")
	}
	return id
}

// delivery is a Delivered event's time and the session it came in.
type delivery struct {
	at   time.Time
	conn string
}

// receiverTally is what the receiver's events say: its sessions, the
// commands it refused, its checks and the copies it delivered.
type receiverTally struct {
	sessions   int            // accepted, less those turned away before any greeting
	refused    int            // turned away over a limit
	rejections map[string]int // refused commands by reply code; nil when none
	// firstCopy is each message's earliest Delivered event as Build
	// reads them: the first one, then any earlier. recordCopy is the same
	// as BuildRecords reads them, where a zero time counts as no delivery
	// yet; the two differ only for an event with no time.
	firstCopy, recordCopy map[string]delivery // by Message-ID
	checks                []events.Event      // Check events, in event order
	checkTimes            *timings            // Summary.Checks
	conns                 *connBook
}

func newReceiverTally(conns *connBook) receiverTally {
	return receiverTally{firstCopy: map[string]delivery{}, recordCopy: map[string]delivery{},
		checkTimes: newTimings(), conns: conns}
}

func (t *receiverTally) add(e events.Event) {
	switch e.Kind {
	case events.ConnOpen:
		t.sessions++
		t.conns.opened(e)
	case events.ConnClose:
		t.conns.closed(e)
	case events.Refused:
		t.sessions-- // accepted, then turned away before any greeting
		t.refused++
	case events.Rejected:
		if t.rejections == nil {
			t.rejections = map[string]int{}
		}
		t.rejections[strconv.Itoa(e.Code)]++
	case events.Greeting:
		t.conns.get(e.Role, e.Conn).Greeting = e.Time
	case events.Check:
		t.checks = append(t.checks, e)
		t.checkTimes.add(e.Check, e.Duration, e.Error != "")
		// The connection's record is made here, in event order; the
		// check's own record waits for every fault (connectionRecords).
		t.conns.get(e.Role, e.Conn)
	case events.Delivered:
		t.delivered(e)
		t.conns.get(e.Role, e.Conn).Messages++
	}
}

// delivered keeps a Delivered event's time as its message's copy.
func (t *receiverTally) delivered(e events.Event) {
	if d, ok := t.firstCopy[e.MessageID]; !ok || e.Time.Before(d.at) {
		t.firstCopy[e.MessageID] = delivery{e.Time, e.Conn}
	}
	if d := t.recordCopy[e.MessageID]; d.at.IsZero() || e.Time.Before(d.at) {
		t.recordCopy[e.MessageID] = delivery{e.Time, e.Conn}
	}
}

// summarize puts the receiver's figures in s.
func (t *receiverTally) summarize(s *Summary) {
	s.Connections = t.sessions
	s.Refused = t.refused
	s.Rejections = t.rejections
	s.Checks = t.checkTimes.done()
}

// identdTally is what the identd's events say.
type identdTally struct {
	queries int // RFC 1413 requests, answered or not
}

func (t *identdTally) add(e events.Event) {
	if e.Kind == events.IdentQuery {
		t.queries++
	}
}

// connBook is the sender's and the receiver's connections as
// ConnectionRecords, in the order the events first name them.
type connBook struct {
	byKey map[connKey]*ConnectionRecord
	order []*ConnectionRecord
}

type connKey struct {
	role topology.Role
	conn string
}

// get is the record of role's connection id, made on first use.
func (b *connBook) get(role topology.Role, id string) *ConnectionRecord {
	k := connKey{role, id}
	c := b.byKey[k]
	if c == nil {
		c = &ConnectionRecord{Role: role, Conn: id}
		b.byKey[k] = c
		b.order = append(b.order, c)
	}
	return c
}

// opened records a ConnOpen event.
func (b *connBook) opened(e events.Event) {
	c := b.get(e.Role, e.Conn)
	c.Host, c.Opened = e.Host, e.Time
}

// closed records a ConnClose event.
func (b *connBook) closed(e events.Event) *ConnectionRecord {
	c := b.get(e.Role, e.Conn)
	c.Closed, c.Reason = e.Time, e.Reason
	return c
}
