package report

import (
	"sort"
	"time"

	"github.com/smtplab/smtplab/lab/events"
)

// Records are a run's details, one record per message, per connection,
// per DNS query and per fault, all built from the events. The HTML report
// draws its charts from them; they are part of result.json.
type Records struct {
	Messages    []MessageRecord    `json:"messages"`
	Connections []ConnectionRecord `json:"connections"`
	Queries     []QueryRecord      `json:"queries"`
	Faults      []FaultRecord      `json:"faults"`
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
}

// ConnectionRecord is one connection as the sender or the receiver saw it.
type ConnectionRecord struct {
	Role   string    `json:"role"` // "sender" or "receiver"
	Conn   string    `json:"conn"`
	Host   string    `json:"host"` // the far end
	Opened time.Time `json:"opened"`
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
}

// QueryRecord is one DNS query as the stub saw it.
type QueryRecord struct {
	Seq       int           `json:"seq"`
	Arrived   time.Time     `json:"arrived"`
	Name      string        `json:"name"`
	QType     string        `json:"qtype"`
	Class     string        `json:"class"`  // PTR, A, DNSBL, ... (as in Summary.DNSQueriesByType)
	Result    string        `json:"result"` // the rcode, or DROPPED
	Duration  time.Duration `json:"duration_ns"`
	QueueWait time.Duration `json:"queue_wait_ns"`
	OnLine    time.Duration `json:"on_line_ns"`
	Upstream  time.Duration `json:"upstream_ns"`
	SizeIn    int           `json:"size_in"`
	SizeOut   int           `json:"size_out"`
	Fault     string        `json:"fault,omitempty"`
}

// FaultRecord is one fault applied.
type FaultRecord struct {
	Time     time.Time     `json:"time"`
	Role     string        `json:"role"`
	Fault    string        `json:"fault"`
	Name     string        `json:"name,omitempty"` // the query or request it hit
	Seq      int           `json:"seq,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Reason   string        `json:"reason,omitempty"`
}

// BuildRecords builds the records of in.Events and in.Maildir. Lists are
// in time order; they are empty, never nil, so the JSON holds [].
func BuildRecords(in Inputs) Records {
	r := Records{Messages: []MessageRecord{}, Connections: []ConnectionRecord{}, Queries: []QueryRecord{}, Faults: []FaultRecord{}}
	msgs := map[string]*MessageRecord{}
	byQueue := map[string]*MessageRecord{}
	conns := map[string]*ConnectionRecord{} // role+conn
	var order []string
	faultedKeys := map[string]bool{}
	// First the messages and the faulted queries: the events come in any
	// order (a real MTA's log has whole seconds, so a delivery can sort
	// before its injection), and the loop below needs both.
	for _, e := range in.Events {
		switch {
		case e.Kind == events.Fault:
			for _, k := range e.Via {
				faultedKeys[k] = true
			}
		case e.Role == "sender" && e.Kind == events.Queued && e.From != "":
			m := &MessageRecord{MessageID: e.MessageID, QueueID: e.QueueID, Rcpts: e.Rcpts, Queued: e.Time}
			if m.Rcpts == nil {
				m.Rcpts = []string{}
			}
			msgs[e.MessageID] = m
			byQueue[e.QueueID] = m
		}
	}
	conn := func(role, id string) *ConnectionRecord {
		k := role + "\x00" + id
		c := conns[k]
		if c == nil {
			c = &ConnectionRecord{Role: role, Conn: id}
			conns[k] = c
			order = append(order, k)
		}
		return c
	}
	for _, e := range in.Events {
		switch {
		case e.Role == "sender" && e.Kind == events.Attempt:
			if m := byQueue[e.QueueID]; m != nil {
				m.Attempts++
			}
		case e.Role == "sender" && e.Kind == events.Sent:
			if m := byQueue[e.QueueID]; m != nil {
				m.SenderConn = e.Conn
			}
		case e.Role == "sender" && e.Kind == events.Failed:
			if m := byQueue[e.QueueID]; m != nil {
				m.Error = e.Error
			}
		case (e.Role == "sender" || e.Role == "receiver") && e.Kind == events.ConnOpen:
			c := conn(e.Role, e.Conn)
			c.Host, c.Opened = e.Host, e.Time
		case (e.Role == "sender" || e.Role == "receiver") && e.Kind == events.ConnClose:
			c := conn(e.Role, e.Conn)
			c.Closed, c.Reason = e.Time, e.Reason
			if e.Role == "sender" {
				c.Messages = e.Count
			}
		case e.Role == "receiver" && e.Kind == events.Greeting:
			conn(e.Role, e.Conn).Greeting = e.Time
		case e.Role == "receiver" && e.Kind == events.Check:
			c := conn(e.Role, e.Conn)
			cr := CheckRecord{Check: e.Check, Name: e.Name, QType: e.QType, Start: e.Time, Duration: e.Duration, Result: e.Result, Error: e.Error}
			for _, k := range e.Via {
				cr.Faulted = cr.Faulted || faultedKeys[k]
			}
			c.Checks = append(c.Checks, cr)
		case e.Role == "receiver" && e.Kind == events.Delivered:
			if m := msgs[e.MessageID]; m != nil && (m.Delivered.IsZero() || e.Time.Before(m.Delivered)) {
				m.Delivered, m.ReceiverConn = e.Time, e.Conn
			}
			conn(e.Role, e.Conn).Messages++
		case e.Role == "dns" && e.Kind == events.Query:
			r.Queries = append(r.Queries, QueryRecord{Seq: e.Seq, Arrived: e.Time, Name: e.Name, QType: e.QType,
				Class: queryClass(e, in.Blacklists), Result: e.Result, Duration: e.Duration, QueueWait: e.QueueWait,
				OnLine: e.OnLine, Upstream: e.Upstream, SizeIn: e.SizeIn, SizeOut: e.SizeOut, Fault: e.FaultName})
		case e.Kind == events.Fault:
			r.Faults = append(r.Faults, FaultRecord{Time: e.Time, Role: e.Role, Fault: e.FaultName, Name: e.Name,
				Seq: e.Seq, Duration: e.Duration, Reason: e.Reason})
		}
	}
	copies := map[string]int{}
	for _, m := range in.Maildir {
		copies[m.MessageID]++
	}
	for _, m := range msgs {
		m.Copies = copies[m.MessageID]
		switch {
		case m.Copies == 0:
			// The Maildir is the evidence: a receiver's Delivered event
			// without the file is no delivery (as in Build).
			m.Delivered = time.Time{}
		case m.Delivered.IsZero(): // on disk, no event: the file's time
			m.Delivered = maildirTime(in.Maildir, m.MessageID)
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
		r.Messages = append(r.Messages, *m)
	}
	sort.Slice(r.Messages, func(i, j int) bool {
		a, b := r.Messages[i], r.Messages[j]
		if !a.Queued.Equal(b.Queued) {
			return a.Queued.Before(b.Queued)
		}
		return a.MessageID < b.MessageID
	})
	for _, k := range order {
		r.Connections = append(r.Connections, *conns[k])
	}
	sort.SliceStable(r.Connections, func(i, j int) bool { return r.Connections[i].Opened.Before(r.Connections[j].Opened) })
	sort.SliceStable(r.Queries, func(i, j int) bool { return r.Queries[i].Seq < r.Queries[j].Seq })
	return r
}
