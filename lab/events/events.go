// Package events is the typed event log every role of the lab writes and the
// lab collects. A report is built from these events, never from parsing
// free-form logs.
//
// Contract:
//   - Every role keeps one Log and adds an Event for each thing the report
//     counts or times (a query answered, a connection opened, a message
//     queued or delivered). Time is the wall clock of the container; all
//     containers share the host's kernel clock, so times compare across roles.
//   - A role serves its log over HTTP (Handler): GET /events gives every event
//     so far as JSON lines, GET /status the number of events of each kind.
//   - Events are only appended; a reader may poll while the role runs.
package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/smtplab/smtplab/lab/topology"
)

// Kind names what happened.
type Kind string

// The kinds of event. The role that writes each is named in its comment.
const (
	// Queued: sender. A message entered the on-disk queue (Time is when
	// sendmail committed it). QueueID, MessageID, From, Rcpts.
	Queued Kind = "queued"
	// ConnOpen: sender (dialled, greeting read) or receiver (accepted).
	// Conn, Host (destination or client address).
	ConnOpen Kind = "conn_open"
	// ConnClose: sender or receiver. Conn, Reason; Count is the number of
	// messages the connection carried.
	ConnClose Kind = "conn_close"
	// Attempt: sender. One try to hand a message to a host. QueueID, Conn,
	// Host, Result ("ok", "temporary", "permanent"); for a temporary
	// failure Duration is the wait before the next try. The peer's reply
	// that decided the try: Code, Enhanced, and its text as it came, in
	// Reason for "ok" ("250 2.0.0 queued"), in Error after the command it
	// answered for a failure ("RCPT TO:<a@b.test>: 450 4.3.0 busy"). When
	// no server answered (refused, unreachable, timed out), Code is 0,
	// Enhanced empty, and Error is "no reply: " and what happened instead.
	Attempt Kind = "attempt"
	// Sent: sender. The receiver answered 2xx to the end of data; the
	// message (for Rcpts) left the queue. QueueID, MessageID, Conn, Host.
	Sent Kind = "sent"
	// Failed: sender. A permanent failure; the message left the queue
	// undelivered. QueueID, MessageID, Code, Error.
	Failed Kind = "failed"
	// Check: receiver. One lookup for a connection: Check is "ident",
	// "reverse", "forward", "local_reverse", "local_forward" (its own
	// names, courier-1.0.16 profile), "dnsbl", or "mailfrom" (BOFHCHECKDNS);
	// Name (the query), QType, Result, Duration, Via.
	Check Kind = "check"
	// Delivered: receiver. A message is in the Maildir (renamed into new/).
	// MessageID, Rcpts, Path, Conn; Duration is the write, fsync and
	// rename of this copy (the disk's share of the message).
	Delivered Kind = "delivered"
	// Rejected: receiver. A command refused. Conn, Code, Error.
	Rejected Kind = "rejected"
	// Refused: receiver. A connection turned away at admission (over a
	// limit). Host, Reason ("max_sessions", "max_per_c", "max_per_ip").
	Refused Kind = "refused"
	// Greeting: receiver. The checks are done and the session starts: the
	// 220 goes out. Conn.
	Greeting Kind = "greeting"
	// Command: receiver. One SMTP command answered. Conn, Name (the verb:
	// "MAIL", "RCPT", "DATA", ...), Code (the reply), Duration (command
	// received to reply, for DATA the whole message), Error.
	Command Kind = "command"
	// Received: receiver. A whole message came in (before delivery).
	// Conn, MessageID, From, Rcpts, SizeIn.
	Received Kind = "received"
	// Query: dns. One DNS query answered (or dropped). Time is its arrival;
	// Name, QType, Result (the rcode, e.g. "NOERROR", "NXDOMAIN", or
	// "DROPPED"), Duration (arrival to answer sent), SizeIn/SizeOut (wire
	// bytes), QueueWait and OnLine (time waiting for and crossing the
	// simulated line, both directions summed), Upstream (far-side cost),
	// Fault (the fault that hit it, if any), Seq (1-based arrival order).
	Query Kind = "dns_query"
	// Fault: dns or identd. A fault was applied: FaultName (and Reason)
	// name it, Name the query it hit, Seq the query's number, Duration the
	// hold, Via the DNS query's key.
	Fault Kind = "fault"
	// IdentQuery: identd. One RFC 1413 request, answered or not. Name is
	// the request line, Result the reply ("" when none was sent), Seq its
	// number; Reason "malformed" for a request that did not parse.
	IdentQuery Kind = "ident_query"
	// Outage: lab. A mail-path fault (lab/outage) on Role, written by the
	// lab, which runs it: Reason "begin" or "end" ("skipped" at the start
	// for a rule whose seeded draw said no); FaultName its type
	// ("kill", "pause", "partition"); Name the rule ("faults[0]"), Result
	// its trigger as the scenario gave it ("after 50 delivered"), Seq the
	// rule's number (1-based); on "end", Duration how long the role was
	// out. A kill without restart has no "end".
	Outage Kind = "outage"
	// LinkFault: sender. The modelled SMTP link between sender and
	// receiver (lab/line) hit a connection: FaultName "loss" (a segment
	// lost and sent again: Duration the wait it cost) or "reset" (the
	// connection was reset: Count the bytes it had carried). Conn, Host.
	LinkFault Kind = "link_fault"
)

// Event is one thing that happened in one role.
type Event struct {
	Time      time.Time     `json:"time"`
	Role      topology.Role `json:"role"`
	Kind      Kind          `json:"kind"`
	Conn      string        `json:"conn,omitempty"`
	Host      string        `json:"host,omitempty"`
	QueueID   string        `json:"queue_id,omitempty"`
	MessageID string        `json:"message_id,omitempty"`
	From      string        `json:"from,omitempty"`
	Rcpts     []string      `json:"rcpts,omitempty"`
	Check     string        `json:"check,omitempty"`
	Name      string        `json:"name,omitempty"`
	QType     string        `json:"qtype,omitempty"`
	Result    string        `json:"result,omitempty"`
	Code      int           `json:"code,omitempty"`
	// Enhanced is the RFC 3463 status code that began the reply of Code
	// ("4.3.0"), empty when the reply had none.
	Enhanced  string        `json:"enhanced,omitempty"`
	Error     string        `json:"error,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Path      string        `json:"path,omitempty"`
	Count     int           `json:"count,omitempty"`
	Duration  time.Duration `json:"duration_ns,omitempty"`
	Seq       int           `json:"seq,omitempty"`
	SizeIn    int           `json:"size_in,omitempty"`
	SizeOut   int           `json:"size_out,omitempty"`
	QueueWait time.Duration `json:"queue_wait_ns,omitempty"`
	OnLine    time.Duration `json:"on_line_ns,omitempty"`
	Upstream  time.Duration `json:"upstream_ns,omitempty"`
	FaultName string        `json:"fault,omitempty"`
	// Via ties a DNS lookup to the queries it cost: on a receiver Check,
	// the QueryKey of every query the lookup sent; on a dns_query, the
	// query's own key.
	Via []string `json:"via,omitempty"`
}

// QueryKey names one DNS query as both ends see it: the client's address
// and port, and the query's id.
func QueryKey(client string, id uint16) string {
	return client + "#" + strconv.Itoa(int(id))
}

// Log is an append-only, concurrency-safe event log of one role.
type Log struct {
	role topology.Role
	now  func() time.Time

	mu sync.Mutex
	// chunks hold the events in memory as their JSON lines (the form
	// Stream serves and a spool holds), in fixed-size blocks: appending
	// never copies what is already logged, and the blocks hold no
	// pointers, so the garbage collector never scans the log (as []Event
	// it was scanned at every collection, and each event took about twice
	// the memory). A block's bytes up to its length are never written
	// again, so Stream can read them outside the lock.
	chunks    [][]byte
	n         int
	counts    map[Kind]int
	observers []func(Event)
	spool     *os.File // Spool: the log on disk, not in memory; nil: memory only
	spooled   int64    // bytes of whole lines in spool
}

// chunkBytes is the size of one block of the memory log: a line longer
// than that gets a block of its own.
const chunkBytes = 256 << 10

// lineBufSize is the stack buffer Add encodes an event in; a longer line
// (an event with a long error text, a check's many queries) goes to the
// heap.
const lineBufSize = 512

// Observe calls f with every event added from now on, in order, after it
// is in the log (live metrics are built this way). f must be quick.
func (l *Log) Observe(f func(Event)) {
	l.mu.Lock()
	l.observers = append(l.observers, f)
	l.mu.Unlock()
}

// NewLog returns an empty log whose events carry role.
func NewLog(role topology.Role) *Log {
	return &Log{role: role, now: time.Now, counts: map[Kind]int{}}
}

// Add appends e, filling in Role and, when zero, Time. With a spool, the
// event's line is one write(2), made before Add returns: a kill -9 of
// the role loses no event Add returned for.
func (l *Log) Add(e Event) {
	if l == nil {
		return
	}
	e.Role = l.role
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	var buf [lineBufSize]byte
	line, err := marshalLine(buf[:0], &e)
	l.mu.Lock()
	l.n++
	l.counts[e.Kind]++
	if err == nil {
		if l.spool != nil {
			// On disk only: memory stays flat however long the role runs.
			if n, err := l.spool.Write(line); err == nil {
				l.spooled += int64(n)
			}
		} else {
			l.append(line)
		}
	}
	for _, f := range l.observers {
		f(e)
	}
	l.mu.Unlock()
}

// AddAll adds evs in order as Add would, filling in each one's Role and,
// when zero, Time (one reading of the clock for all), but in one turn of
// the lock and, with a spool, in one write(2) for all of them: a role
// logging several events at one moment (the receiver's Delivered copies
// and the DATA command they answer) pays the system call once. The
// promise is Add's: when AddAll returns, every one of them is in the log.
func (l *Log) AddAll(evs ...Event) {
	if l == nil || len(evs) == 0 {
		return
	}
	var buf [2 * lineBufSize]byte
	lines := buf[:0]
	var now time.Time
	for i := range evs {
		e := &evs[i]
		e.Role = l.role
		if e.Time.IsZero() {
			if now.IsZero() {
				now = l.now()
			}
			e.Time = now
		}
		lines, _ = marshalLine(lines, e) // an event it cannot write is counted only, as in Add
	}
	l.mu.Lock()
	l.n += len(evs)
	for i := range evs {
		l.counts[evs[i].Kind]++
	}
	if len(lines) > 0 {
		if l.spool != nil {
			if n, err := l.spool.Write(lines); err == nil {
				l.spooled += int64(n)
			}
		} else {
			l.append(lines)
		}
	}
	for i := range evs {
		for _, f := range l.observers {
			f(evs[i])
		}
	}
	l.mu.Unlock()
}

// append adds whole JSON lines to the memory log; l.mu is held.
func (l *Log) append(line []byte) {
	last := len(l.chunks) - 1
	if last < 0 || len(l.chunks[last])+len(line) > cap(l.chunks[last]) {
		l.chunks = append(l.chunks, make([]byte, 0, max(chunkBytes, len(line))))
		last++
	}
	l.chunks[last] = append(l.chunks[last], line...)
}

// lines returns the memory log's blocks as they are now; l.mu is held.
// The bytes they show are never written again.
func (l *Log) lines() [][]byte {
	return append([][]byte(nil), l.chunks...)
}

// Events returns a copy of every event so far, in the order added (read
// back from the spool when the log has one: see Stream for a stream).
// An event comes back as its JSON line reads: its time without the
// monotonic clock reading, in the zone the line gives.
func (l *Log) Events() []Event {
	l.mu.Lock()
	if l.spool != nil {
		n := l.spooled
		l.mu.Unlock()
		var out []Event
		_ = l.readSpooled(n, func(r io.Reader) error {
			var err error
			out, err = ReadJSONL(r)
			return err
		})
		return out
	}
	chunks, n := l.lines(), l.n
	l.mu.Unlock()
	out := make([]Event, 0, n)
	for _, c := range chunks {
		for len(c) > 0 {
			i := bytes.IndexByte(c, '\n') // every line Add wrote ends in one
			if i < 0 {
				break
			}
			var e Event
			if json.Unmarshal(c[:i], &e) == nil {
				out = append(out, e)
			}
			c = c[i+1:]
		}
	}
	return out
}

// Counts returns how many events of each kind were added so far.
func (l *Log) Counts() map[Kind]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := make(map[Kind]int, len(l.counts))
	for k, v := range l.counts {
		c[k] = v
	}
	return c
}

// WriteJSONL writes events as JSON lines.
func WriteJSONL(w io.Writer, evs []Event) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range evs {
		if err := enc.Encode(&evs[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadJSONL reads JSON lines written by WriteJSONL. A malformed line is an
// error naming its line number.
func ReadJSONL(r io.Reader) ([]Event, error) {
	var out []Event
	err := EachJSONL(r, func(e Event) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// EachJSONL reads JSON lines written by WriteJSONL and calls each with
// every event in turn, holding one at a time: a log of any size is read
// in constant memory. It stops at the first error each returns, or at a
// malformed line (named by its number).
func EachJSONL(r io.Reader, each func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("events line %d: %w", line, err)
		}
		if err := each(e); err != nil {
			return err
		}
	}
	return sc.Err()
}
