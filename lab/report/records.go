package report

import (
	"sort"
	"time"

	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/topology"
)

// Records are a run's details, one record per message, per connection,
// per DNS query and per fault, all built from the events. The HTML report
// draws its charts from them; they are part of result.json.
type Records struct {
	Messages    []MessageRecord    `json:"messages"`
	Connections []ConnectionRecord `json:"connections"`
	Queries     []QueryRecord      `json:"queries"`
	Faults      []FaultRecord      `json:"faults"`
	// Outages are the faults on the mail path (lab/outage), one per rule
	// as it happened, in the order they began; Link the modelled SMTP
	// link's faults, nil when it had none (outage.go).
	Outages []OutageRecord `json:"outages,omitempty"`
	Link    *LinkRecord    `json:"link_faults,omitempty"`
}

// MessageRecord is one injected message's story.
type MessageRecord struct {
	MessageID string    `json:"message_id"`
	QueueID   string    `json:"queue_id"`
	Rcpts     []string  `json:"rcpts"`
	Queued    time.Time `json:"queued"`
	// Delivered is when its first copy reached the Maildir: the
	// receiver's Delivered event, else the file's time; zero when no copy
	// is on disk. Latency is Delivered - Queued, never below 0.
	Delivered time.Time     `json:"delivered,omitzero"`
	Latency   time.Duration `json:"latency_ns,omitempty"`
	Copies    int           `json:"copies"` // copies in the Maildir
	// Status: "delivered", "lost", "duplicated" or "failed".
	Status       string `json:"status"`
	Attempts     int    `json:"attempts"`                // the sender's tries
	SenderConn   string `json:"sender_conn,omitempty"`   // the connection that carried it
	ReceiverConn string `json:"receiver_conn,omitempty"` // the session it arrived in
	Error        string `json:"error,omitempty"`         // why it failed
	// Faults are the faults on the mail path that touched it (outage.go).
	Faults []MessageFault `json:"faults,omitempty"`
}

// ConnectionRecord is one connection as the sender or the receiver saw it.
type ConnectionRecord struct {
	Role   topology.Role `json:"role"` // topology.Sender or topology.Receiver
	Conn   string        `json:"conn"`
	Host   string        `json:"host"` // the far end
	Opened time.Time     `json:"opened"`
	// Closed is zero for a connection still open when the events were read.
	Closed   time.Time `json:"closed,omitzero"`
	Messages int       `json:"messages"`
	Reason   string    `json:"reason,omitempty"` // why it closed
	// Greeting is when the receiver's 220 went out (its checks done).
	Greeting time.Time     `json:"greeting,omitzero"`
	Checks   []CheckRecord `json:"checks,omitempty"`
}

// CheckRecord is one of the receiver's lookups for a connection.
type CheckRecord struct {
	Check    string        `json:"check"` // ident, reverse, forward, dnsbl, ...
	Name     string        `json:"name,omitempty"`
	QType    string        `json:"qtype,omitempty"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	Result   string        `json:"result,omitempty"`
	Error    string        `json:"error,omitempty"`
	Faulted  bool          `json:"faulted,omitempty"` // one of its queries was hit by a fault
	// Tries are the queries the check sent, as the DNS server saw them, in
	// order: a resolver that asks again on the same socket with the same id
	// (Courier's, lab/resolver) sends one lookup several times.
	Tries []CheckTry `json:"tries,omitempty"`
}

// CheckTry is one query a check sent: when it reached the DNS server,
// after the check began, and what became of it.
type CheckTry struct {
	Seq    int           `json:"seq"`
	After  time.Duration `json:"after_ns"`
	Result string        `json:"result"` // the rcode, DROPPED or PENDING
	Fault  string        `json:"fault,omitempty"`
}

// QueryRecord is one DNS query as the stub saw it.
type QueryRecord struct {
	Seq       int           `json:"seq"`
	Arrived   time.Time     `json:"arrived"`
	Name      string        `json:"name"`
	QType     string        `json:"qtype"`
	Class     string        `json:"class"`  // PTR, A, DNSBL, ... (as in Summary.DNSQueriesByType)
	Result    string        `json:"result"` // the rcode, DROPPED, or PENDING (still held when the run ended; Duration: held so far)
	Duration  time.Duration `json:"duration_ns"`
	QueueWait time.Duration `json:"queue_wait_ns"`
	OnLine    time.Duration `json:"on_line_ns"`
	Upstream  time.Duration `json:"upstream_ns"`
	SizeIn    int           `json:"size_in"`
	SizeOut   int           `json:"size_out"`
	Fault     string        `json:"fault,omitempty"`
	Key       string        `json:"key,omitempty"` // the resolver's socket and the query id (events.QueryKey)
}

// FaultRecord is one fault applied.
type FaultRecord struct {
	Time     time.Time     `json:"time"`
	Role     topology.Role `json:"role"`
	Fault    string        `json:"fault"`
	Name     string        `json:"name,omitempty"` // the query or request it hit
	Seq      int           `json:"seq,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Reason   string        `json:"reason,omitempty"`
}

// BuildRecords builds the records of in.Events and in.Maildir, from one
// pass over the events (tallyEvents). Lists are in time order; they are
// empty, never nil, so the JSON holds [].
func BuildRecords(in Inputs) Records {
	t := tallyEvents(in)
	r := Records{
		Messages:    t.messageRecords(in.Maildir),
		Connections: t.connectionRecords(),
		Queries:     t.dns.records,
		Faults:      []FaultRecord{},
	}
	sort.SliceStable(r.Queries, func(i, j int) bool { return r.Queries[i].Seq < r.Queries[j].Seq })
	p := t.pathFaults(in)
	r.Outages, r.Link = p.outages, p.link
	for i := range r.Messages {
		r.Messages[i].Faults = p.touched[r.Messages[i].MessageID]
	}
	for _, e := range t.faults {
		r.Faults = append(r.Faults, FaultRecord{Time: e.Time, Role: e.Role, Fault: e.FaultName, Name: e.Name,
			Seq: e.Seq, Duration: e.Duration, Reason: e.Reason})
	}
	return r
}

// messageRecords are the workload's messages, each with what the sender
// and the receiver said of it and its copies in the Maildir, in the order
// they were queued.
func (t *tally) messageRecords(disk []maildir.Message) []MessageRecord {
	msgs := map[string]*MessageRecord{}    // by Message-ID
	byQueue := map[string]*MessageRecord{} // by queue id
	for _, e := range t.sender.queued {
		m := &MessageRecord{MessageID: e.MessageID, QueueID: e.QueueID, Rcpts: e.Rcpts, Queued: e.Time}
		if m.Rcpts == nil {
			m.Rcpts = []string{}
		}
		msgs[e.MessageID] = m
		byQueue[e.QueueID] = m
	}
	for q, n := range t.sender.attempts {
		if m := byQueue[q]; m != nil {
			m.Attempts = n
		}
	}
	for q, conn := range t.sender.sentConn {
		if m := byQueue[q]; m != nil {
			m.SenderConn = conn
		}
	}
	for _, e := range t.sender.failed {
		if m := byQueue[e.QueueID]; m != nil {
			m.Error = e.Error
		}
	}
	for id, d := range t.receiver.recordCopy {
		if m := msgs[id]; m != nil {
			m.Delivered, m.ReceiverConn = d.at, d.conn
		}
	}
	copies := map[string]int{}
	for _, m := range disk {
		copies[m.MessageID]++
	}
	out := []MessageRecord{}
	for _, m := range msgs {
		m.Copies = copies[m.MessageID]
		switch {
		case m.Copies == 0:
			// The Maildir is the evidence: a receiver's Delivered event
			// without the file is no delivery (as in Build).
			m.Delivered = time.Time{}
		case m.Delivered.IsZero(): // on disk, no event: the file's time
			m.Delivered = maildirTime(disk, m.MessageID)
		}
		switch {
		case m.Copies > 1:
			m.Status = "duplicated"
		case m.Copies == 1:
			m.Status = "delivered"
		case m.Error != "":
			m.Status = "failed"
		default:
			m.Status = "lost"
		}
		if m.Copies > 0 {
			// Never below 0: a file's time can read before the queue's
			// (coarser clock), and Build counts such a message as
			// delivered at once too.
			m.Latency = max(m.Delivered.Sub(m.Queued), 0)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.Queued.Equal(b.Queued) {
			return a.Queued.Before(b.Queued)
		}
		return a.MessageID < b.MessageID
	})
	return out
}

// connectionRecords are the sender's and the receiver's connections, in
// the order they opened, each receiver session with its checks.
func (t *tally) connectionRecords() []ConnectionRecord {
	faultedKeys := map[string]bool{} // events.QueryKey of every query a fault hit
	for _, f := range t.faults {
		for _, k := range f.Via {
			faultedKeys[k] = true
		}
	}
	byKey := map[string][]QueryRecord{}
	for _, q := range t.dns.records {
		if q.Key != "" {
			byKey[q.Key] = append(byKey[q.Key], q)
		}
	}
	for _, e := range t.receiver.checks {
		cr := CheckRecord{Check: e.Check, Name: e.Name, QType: e.QType, Start: e.Time, Duration: e.Duration, Result: e.Result, Error: e.Error}
		for _, k := range e.Via {
			cr.Faulted = cr.Faulted || faultedKeys[k]
			for _, q := range byKey[k] {
				cr.Tries = append(cr.Tries, CheckTry{Seq: q.Seq, After: max(q.Arrived.Sub(e.Time), 0), Result: q.Result, Fault: q.Fault})
			}
		}
		sort.Slice(cr.Tries, func(i, j int) bool { return cr.Tries[i].Seq < cr.Tries[j].Seq })
		c := t.conns.get(e.Role, e.Conn)
		c.Checks = append(c.Checks, cr)
	}
	out := []ConnectionRecord{}
	for _, c := range t.conns.order {
		out = append(out, *c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Opened.Before(out[j].Opened) })
	return out
}
