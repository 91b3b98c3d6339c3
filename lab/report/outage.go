package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/topology"
)

// Faults on the mail path: a role killed, paused or cut off (lab/outage,
// the lab's Outage events) and the modelled SMTP link's lost segments and
// resets (lab/line, the sender's LinkFault events). From them and the
// messages' own events this file says what each fault did, which messages
// it touched, and which of the run's exceptions it explains. The DNS
// faults (FaultRecord, Summary.HeldByFaults) are apart.
//
// A message is touched by an outage whose window (begin to end, or to the
// run's last event) overlaps the message's life (queued to its last copy
// in the Maildir or the sender's 250 for it, whichever is later; to its
// permanent failure; to the run's end when no copy arrived), and by a link
// fault on a connection when its own try on that connection was the next
// to end after the fault (the transaction the fault fell in, or the next
// one on the same connection).

// OutageRecord is one rule of the scenario's faults on the mail path as
// it happened, from the lab's Outage events.
type OutageRecord struct {
	Rule    string        `json:"rule"`    // "faults[0]"
	Seq     int           `json:"seq"`     // the rule's number, 1-based
	Fault   string        `json:"fault"`   // kill, pause or partition
	Role    topology.Role `json:"role"`    // the role it hit
	Trigger string        `json:"trigger"` // as the scenario gave it: "after 50 delivered"
	// Skipped: the rule's seeded draw said no; it never began.
	Skipped bool      `json:"skipped,omitempty"`
	Began   time.Time `json:"began,omitzero"`
	// Ended is when the role was back; zero when it never came back (a
	// kill without restart). Duration is how long it was out: to Ended,
	// else to the run's last event.
	Ended    time.Time     `json:"ended,omitzero"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Error is why it did not begin (then it did nothing) or why the role
	// was not restored at its end.
	Error string `json:"error,omitempty"`
}

// LinkRecord sums up the link's faults on the sender's connections.
type LinkRecord struct {
	Losses     int           `json:"losses"`       // segments lost and sent again
	LossWait   time.Duration `json:"loss_wait_ns"` // the retransmission waits they cost
	Resets     int           `json:"resets"`
	ResetBytes int           `json:"reset_bytes"` // what the reset connections had carried
	Conns      []string      `json:"conns"`       // the connections hit, in order
}

// MessageFault is one fault on the mail path that touched a message: an
// outage (Rule, Role) or the link's faults of one kind on one of its
// connections (Conn, Count).
type MessageFault struct {
	Fault string        `json:"fault"` // kill, pause, partition; loss or reset
	Rule  string        `json:"rule,omitempty"`
	Role  topology.Role `json:"role,omitempty"`
	Conn  string        `json:"conn,omitempty"`
	Count int           `json:"count,omitempty"`
	// Waited is how long the message's life lay in the outage's window,
	// or the retransmission waits the link's losses cost it.
	Waited time.Duration `json:"waited_ns"`
}

// happened says whether the outage did something: it began.
func (o OutageRecord) happened() bool { return !o.Began.IsZero() }

// window is when the role was out; end is the run's last event.
func (o OutageRecord) window(end time.Time) (from, to time.Time) {
	if o.Ended.IsZero() {
		return o.Began, end
	}
	return o.Began, o.Ended
}

// outageRecords pairs the Outage events into one record per rule as it
// happened, in the order they began; end is the run's last event.
func outageRecords(evs []events.Event, end time.Time) []OutageRecord {
	evs = append([]events.Event(nil), evs...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	var out []OutageRecord
	open := map[string]int{} // rule -> its record, begun and not ended
	for _, e := range evs {
		switch e.Reason {
		case "skipped", "begin":
			out = append(out, OutageRecord{Rule: e.Name, Seq: e.Seq, Fault: e.FaultName, Role: e.Role, Trigger: e.Result,
				Skipped: e.Reason == "skipped", Error: e.Error})
			if e.Reason == "begin" && e.Error == "" {
				out[len(out)-1].Began = e.Time
				open[e.Name] = len(out) - 1
			}
		case "end":
			i, ok := open[e.Name]
			if !ok {
				continue
			}
			delete(open, e.Name)
			o := &out[i]
			o.Ended, o.Duration, o.Error = e.Time, e.Duration, e.Error
			if o.Duration <= 0 {
				o.Duration = max(e.Time.Sub(o.Began), 0)
			}
		}
	}
	for _, i := range open {
		out[i].Duration = max(end.Sub(out[i].Began), 0)
	}
	return out
}

// linkRecord sums the LinkFault events; nil when there were none.
func linkRecord(evs []events.Event) *LinkRecord {
	if len(evs) == 0 {
		return nil
	}
	l := &LinkRecord{Conns: []string{}}
	seen := map[string]bool{}
	for _, e := range evs {
		switch e.FaultName {
		case "loss":
			l.Losses++
			l.LossWait += e.Duration
		case "reset":
			l.Resets++
			l.ResetBytes += e.Count
		}
		if !seen[e.Conn] {
			seen[e.Conn] = true
			l.Conns = append(l.Conns, e.Conn)
		}
	}
	return l
}

// String says what the link did: "3 losses (1.20 s waited), 1 reset (2048
// bytes carried) on s1, s2".
func (l LinkRecord) String() string {
	var parts []string
	if l.Losses > 0 {
		parts = append(parts, fmt.Sprintf("%s (%s waited)", plural(l.Losses, "loss", "losses"), secs(l.LossWait)))
	}
	if l.Resets > 0 {
		parts = append(parts, fmt.Sprintf("%s (%d bytes carried)", plural(l.Resets, "reset", "resets"), l.ResetBytes))
	}
	return strings.Join(parts, ", ") + " on " + strings.Join(l.Conns, ", ")
}

// pathFaults is what the faults on the mail path did in one run.
type pathFaults struct {
	outages []OutageRecord
	link    *LinkRecord
	touched map[string][]MessageFault // by Message-ID
	end     time.Time                 // the run's last event
}

// happened says whether any outage began or the link faulted: only then
// are the run's exceptions explained.
func (p *pathFaults) happened() bool {
	for _, o := range p.outages {
		if o.happened() {
			return true
		}
	}
	return p.link != nil
}

// pathFaults finds what the faults on the mail path did. Only when there
// were any does it read the messages' tries again (a second pass over
// in.Events, which a run without them is spared).
func (t *tally) pathFaults(in Inputs) *pathFaults {
	p := &pathFaults{outages: outageRecords(t.outages, t.end), link: linkRecord(t.links),
		touched: map[string][]MessageFault{}, end: t.end}
	if !p.happened() {
		return p
	}
	lives, tries := t.lives(in)
	for _, q := range t.sender.queued {
		l := lives[q.MessageID]
		for _, o := range p.outages {
			if !o.happened() {
				continue
			}
			from, to := o.window(t.end)
			if from.After(l.to) || to.Before(l.from) {
				continue
			}
			waited := max(earlier(to, l.to).Sub(later(from, l.from)), 0)
			p.touched[q.MessageID] = append(p.touched[q.MessageID], MessageFault{Fault: o.Fault, Rule: o.Rule, Role: o.Role, Waited: waited})
		}
	}
	p.touchByLink(t.links, tries, t.sender.queued)
	return p
}

// touchByLink gives each link fault to the message whose try on the
// same connection ended next (tries by connection, in time order).
func (p *pathFaults) touchByLink(links []events.Event, tries map[string][]events.Event, queued []events.Event) {
	idOf := map[string]string{} // queue id -> Message-ID
	for _, q := range queued {
		idOf[q.QueueID] = q.MessageID
	}
	links = append([]events.Event(nil), links...)
	sort.SliceStable(links, func(i, j int) bool { return links[i].Time.Before(links[j].Time) })
	for _, l := range links {
		ts := tries[l.Conn]
		i := sort.Search(len(ts), func(i int) bool { return !ts[i].Time.Before(l.Time) })
		if i == len(ts) {
			continue // after the connection's last try: no message in it
		}
		id, ok := idOf[ts[i].QueueID]
		if !ok {
			continue // a bounce's, not the workload's
		}
		fs := p.touched[id]
		j := 0
		for j < len(fs) && (fs[j].Rule != "" || fs[j].Fault != l.FaultName || fs[j].Conn != l.Conn) {
			j++
		}
		if j == len(fs) {
			fs = append(fs, MessageFault{Fault: l.FaultName, Conn: l.Conn})
		}
		fs[j].Count++
		if l.FaultName == "loss" {
			fs[j].Waited += l.Duration
		}
		p.touched[id] = fs
	}
}

// life is a queued message's time in flight (see the file's comment).
type life struct{ from, to time.Time }

// lives are the workload's messages' lives, by Message-ID, and the
// sender's tries (Attempt and Sent events) by connection, in time order.
func (t *tally) lives(in Inputs) (map[string]life, map[string][]events.Event) {
	last := map[string]time.Time{}  // Message-ID -> its last copy
	sent := map[string]time.Time{}  // queue id -> the sender's last 250
	ended := map[string]time.Time{} // queue id -> its permanent failure
	tries := map[string][]events.Event{}
	for e := range in.each() {
		switch {
		case e.Kind == events.Delivered && e.Role == topology.Receiver:
			last[e.MessageID] = later(last[e.MessageID], e.Time)
		case e.Role != topology.Sender:
		case e.Kind == events.Sent:
			sent[e.QueueID] = later(sent[e.QueueID], e.Time)
			tries[e.Conn] = append(tries[e.Conn], e)
		case e.Kind == events.Attempt:
			tries[e.Conn] = append(tries[e.Conn], e)
		case e.Kind == events.Failed:
			ended[e.QueueID] = e.Time
		}
	}
	onDisk := map[string]time.Time{}
	for _, m := range in.Maildir {
		onDisk[m.MessageID] = later(onDisk[m.MessageID], m.ModTime)
	}
	lives := map[string]life{}
	for _, q := range t.sender.queued {
		l := life{from: q.Time, to: t.end}
		if _, ok := onDisk[q.MessageID]; ok {
			l.to = later(later(last[q.MessageID], onDisk[q.MessageID]), sent[q.QueueID])
		} else if f, ok := ended[q.QueueID]; ok {
			l.to = f
		}
		l.to = later(l.to, l.from)
		lives[q.MessageID] = l
	}
	for _, ts := range tries {
		sort.SliceStable(ts, func(i, j int) bool { return ts[i].Time.Before(ts[j].Time) })
	}
	return lives, tries
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
