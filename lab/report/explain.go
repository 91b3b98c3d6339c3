package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/topology"
)

// NoFaultExplains ends an exception of a run with faults on the mail
// path that none of them touched.
const NoFaultExplains = "no fault explains it"

// explainSep parts an Outcome entry from the fault that explains it.
const explainSep = " — "

// explain is what explains how message id ended (how: "lost",
// "duplicated" or "failed"), to append to its Outcome entry: the faults
// that touched it, or NoFaultExplains; "" when the run had no fault on
// the mail path.
func (p *pathFaults) explain(id, how string) string {
	if !p.happened() {
		return ""
	}
	var parts []string
	for _, f := range p.touched[id] {
		parts = append(parts, p.cause(f)+" "+ending(f, how))
	}
	if len(parts) == 0 {
		return explainSep + NoFaultExplains
	}
	s := strings.Join(parts, "; ")
	if how == "duplicated" {
		// RFC 1047: a message the receiver has, whose 250 the sender
		// never read, is sent again; at least once, not exactly once.
		s = "within SMTP's at-least-once window (RFC 1047): " + s
	}
	return explainSep + s
}

// cause says what a fault did: "the receiver was killed (faults[0],
// kill, after 50 delivered)", "the link lost 2 segments on its
// connection s1 (400 ms waited)".
func (p *pathFaults) cause(f MessageFault) string {
	switch {
	case f.Rule != "":
		return outageCause(p.outage(f.Rule))
	case f.Fault == "loss":
		return fmt.Sprintf("the link lost %s on its connection %s (%s waited)", plural(f.Count, "segment", "segments"), f.Conn, secs(f.Waited))
	case f.Fault == "reset" && f.Count > 1:
		return fmt.Sprintf("the link reset its connection %s %d times", f.Conn, f.Count)
	}
	return fmt.Sprintf("the link %s its connection %s", f.Fault, f.Conn)
}

// outage is the record of rule, as it began.
func (p *pathFaults) outage(rule string) OutageRecord {
	for _, o := range p.outages {
		if o.Rule == rule && o.happened() {
			return o
		}
	}
	return OutageRecord{Rule: rule}
}

// outageCause says what an outage did to its role.
func outageCause(o OutageRecord) string {
	verb := map[string]string{"kill": "killed", "pause": "paused", "partition": "cut off from the network"}[o.Fault]
	if verb == "" {
		verb = "hit by " + o.Fault
	}
	if o.Fault == "kill" && o.Ended.IsZero() {
		verb += " and not restarted"
	}
	return fmt.Sprintf("%s was %s (%s, %s, %s)", roleNoun(o.Role), verb, o.Rule, o.Fault, o.Trigger)
}

// ending says when the fault fell in the message's life, as how it ended
// needs it.
func ending(f MessageFault, how string) string {
	if how != "duplicated" {
		return "while it was in flight"
	}
	switch f.Role {
	case topology.Receiver:
		return "after it had the message and before the sender read the 250"
	case topology.Sender:
		return "after the receiver had the message and before it read the 250"
	}
	return "after the receiver had the message and before the sender read the 250"
}

// explainNotQueued is what explains a message of the workload that never
// reached the queue, due between from and to (its neighbours' queueing):
// an outage of the sender, where sendmail runs, in that time.
func (p *pathFaults) explainNotQueued(from, to time.Time) string {
	if !p.happened() {
		return ""
	}
	var parts []string
	for _, o := range p.outages {
		if o.Role != topology.Sender || !o.happened() {
			continue
		}
		if b, e := o.window(p.end); !b.After(to) && !e.Before(from) {
			parts = append(parts, outageCause(o)+" before it was queued")
		}
	}
	if len(parts) == 0 {
		return explainSep + NoFaultExplains
	}
	return explainSep + strings.Join(parts, "; ")
}

// neverQueued names each message of the workload (Message-IDs in order)
// that has no Queued event, with what explains it.
func (t *tally) neverQueued(workload []string, p *pathFaults) []string {
	queued := t.sender.queuedAt
	// after[i]: the latest queueing before message i; before[i]: the
	// earliest after it (the run's end when none).
	after, before := make([]time.Time, len(workload)), make([]time.Time, len(workload))
	var last time.Time
	for i, id := range workload {
		after[i] = last
		if q, ok := queued[id]; ok {
			last = later(last, q)
		}
	}
	next := t.end
	for i := len(workload) - 1; i >= 0; i-- {
		before[i] = next
		if q, ok := queued[workload[i]]; ok {
			next = earlier(next, q)
		}
	}
	var out []string
	for i, id := range workload {
		if _, ok := queued[id]; !ok {
			out = append(out, fmt.Sprintf("%s (message %d of the workload's %d) never reached the queue%s",
				id, i+1, len(workload), p.explainNotQueued(after[i], before[i])))
		}
	}
	return out
}

// Exceptions are the outcome's lost, duplicated, failed and not queued
// entries, each after its kind ("lost: <id> to ..."), as the reports
// list them with the fault that explains each.
func (o Outcome) Exceptions() []string {
	var out []string
	for _, l := range []struct {
		name string
		ids  []string
	}{{"lost", o.Lost}, {"duplicated", o.Duplicated}, {"failed", o.Failed}, {"not queued", o.NotQueued}} {
		for _, id := range l.ids {
			out = append(out, l.name+": "+id)
		}
	}
	return out
}

// FaultStory tells in one line what the faults on the mail path did to
// a message: "<a> to r@x: 2.00 s in faults[0] (kill receiver), 2 link
// losses on s1 (400 ms); 3 attempts (retried); 2 copies (duplicated)".
func (m MessageRecord) FaultStory() string {
	var fs []string
	for _, f := range m.Faults {
		switch {
		case f.Rule != "":
			fs = append(fs, fmt.Sprintf("%s in %s (%s %s)", secs(f.Waited), f.Rule, f.Fault, f.Role))
		case f.Fault == "loss":
			fs = append(fs, fmt.Sprintf("%s on %s (%s)", plural(f.Count, "link loss", "link losses"), f.Conn, secs(f.Waited)))
		default:
			fs = append(fs, fmt.Sprintf("%s on %s", plural(f.Count, "link "+f.Fault, "link "+f.Fault+"s"), f.Conn))
		}
	}
	tries := plural(m.Attempts, "attempt", "attempts")
	if m.Attempts > 1 {
		tries += " (retried)"
	}
	copies := plural(m.Copies, "copy", "copies")
	if m.Status != "delivered" {
		copies += " (" + m.Status + ")"
	}
	return fmt.Sprintf("%s to %s: %s; %s; %s", m.MessageID, strings.Join(m.Rcpts, ", "), strings.Join(fs, ", "), tries, copies)
}

// Touched are the messages a fault on the mail path touched, in the
// order they were queued.
func (r Records) Touched() []MessageRecord {
	var out []MessageRecord
	for _, m := range r.Messages {
		if len(m.Faults) > 0 {
			out = append(out, m)
		}
	}
	return out
}

// roleNoun names a role in a sentence: "the receiver", "the DNS stub".
func roleNoun(r topology.Role) string {
	switch r {
	case topology.DNS:
		return "the DNS stub"
	case "":
		return "a role"
	}
	return "the " + string(r)
}

// plural is "1 loss", "2 losses".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
