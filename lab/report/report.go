// Package report turns one run's events and Maildir into the figures the
// lab prints beside 1999's, and writes them as text and JSON.
//
// Every figure comes from evidence: deliveries from the Maildir on disk
// (matched to injections by Message-ID), connections from the receiver's
// events, lookups from the DNS stub's, IDENT queries from the identd's.
// A figure with no evidence (a real MTA's mail log lacks the events it is
// made from) is not measured (Summary.Unmeasured), never a 0.
package report

import (
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/line"
	"github.com/smtplab/smtplab/lab/maildir"
)

// Outcome says, per injected message, whether it arrived exactly once.
type Outcome struct {
	Lost       []string `json:"lost,omitempty"`       // injected, never in the Maildir
	Duplicated []string `json:"duplicated,omitempty"` // in the Maildir more than once
	Unexpected []string `json:"unexpected,omitempty"` // in the Maildir, never injected
	Failed     []string `json:"failed,omitempty"`     // the sender gave up (with its reason)
	NotQueued  []string `json:"not_queued,omitempty"` // sendmail refused them
}

// OK reports whether every injected message was delivered exactly once.
func (o Outcome) OK() bool {
	return len(o.Lost)+len(o.Duplicated)+len(o.Unexpected)+len(o.Failed)+len(o.NotQueued) == 0
}

// Inputs is what a report is built from.
type Inputs struct {
	Events []events.Event // all roles, any order
	// Stream, when set, is used instead of Events: every event in time
	// order, read again for each pass (the lab reads its run's
	// events.jsonl, so that no run holds all its events in memory).
	Stream     iter.Seq[events.Event]
	Maildir    []maildir.Message // what is on disk in the receiver's Maildir
	NotQueued  []string          // injection errors
	Blacklists []string          // DNSBL zones, to tell their queries apart
	Line       *line.Config      // the DNS line, nil when there was none
	Expected   int               // messages the workload injects
	// Workload are the Message-IDs the workload meant to inject, in
	// workload order; when given, each one never queued is named in
	// Outcome.NotQueued (Expected only counts them).
	Workload []string
	// SenderLogPartial and ReceiverLogPartial say that the role's log has
	// fewer events than a Go role writes (a real MTA's mail log, lab/mta;
	// the run asks the role's Handle): the figures made from the missing
	// ones are left unmeasured (Summary.Unmeasured) rather than counted as
	// 0.
	SenderLogPartial, ReceiverLogPartial bool
	// ReceiverLogNone says the receiver keeps no log the lab reads (an
	// image the user brings, receiver.impl image): its ESMTP connections
	// are then the sender's count of the connections it opened, when the
	// sender's log has them (Summary.ConnectionsFrom).
	ReceiverLogNone bool
	// Relay says the receiver relayed every message to the lab's final
	// receiver (receiver.evidence relay): Maildir is the final receiver's,
	// and its Delivered events time the last hop (Summary.RelayHop).
	Relay bool
}

// each is every event of the run: Stream when set, else Events.
func (in Inputs) each() iter.Seq[events.Event] {
	if in.Stream != nil {
		return in.Stream
	}
	return slices.Values(in.Events)
}

// Build computes the summary and the outcome, from one pass over the
// events (tallyEvents) and the Maildir.
func Build(in Inputs) (Summary, Outcome) {
	t := tallyEvents(in)
	var s Summary
	t.sender.summarize(&s)
	t.receiver.summarize(&s)
	t.dns.summarize(&s, in.Line)
	s.IdentQueries = t.identd.queries
	s.Phases = t.phases.done()
	copies := map[string]int{} // Message-ID -> copies in the Maildir
	for _, m := range in.Maildir {
		copies[m.MessageID]++
	}
	o := t.outcome(&s, in, copies, t.pathFaults(in))
	s.HeldByFaults, s.HeldInSession = t.heldByFaults(copies)
	if in.Relay {
		s.Evidence, s.RelayHop = "relay", t.relayHop()
	}
	if in.ReceiverLogNone && !in.SenderLogPartial {
		// The same TCP sessions, counted at the other end.
		s.Connections, s.ConnectionsFrom = s.SenderConnections, "sender"
	}
	if s.Connections > 0 {
		s.LookupsPerConnection = float64(s.DNSQueries) / float64(s.Connections)
		s.MessagesPerConn = float64(s.Delivered) / float64(s.Connections) // as 1999's 196/57
	}
	leaveUnmeasured(&s, in, t.dns.faulted)
	return s, o
}

// outcome matches the injected messages to the Maildir's copies: it
// fills in s the figures of what arrived (how many, how late, the total
// time) and says what did not arrive exactly once, each with the fault
// on the mail path that explains it (p) when the run had any.
func (t *tally) outcome(s *Summary, in Inputs, copies map[string]int, p *pathFaults) Outcome {
	var o Outcome
	queued := t.sender.queuedAt
	for _, e := range t.sender.failed {
		_, ok := queued[e.MessageID]
		switch {
		case ok:
			o.Failed = append(o.Failed, fmt.Sprintf("%s: %s%s", t.sender.name(e.MessageID), e.Error, p.explain(e.MessageID, "failed")))
		case e.From == "":
			s.DSNsFailed++ // a bounce (null sender) that could not be delivered either
		default:
			// A real sender's failure its log does not tie to one message
			// (the same recipient injected in several rounds).
			o.Failed = append(o.Failed, fmt.Sprintf("queue id %s from %s to %s: %s (not tied to one message: the log names no Message-ID)",
				e.QueueID, e.From, strings.Join(e.Rcpts, ", "), e.Error))
		}
	}
	s.Injected = len(queued)
	o.NotQueued = in.NotQueued
	if len(in.Workload) > 0 {
		o.NotQueued = append(o.NotQueued, t.neverQueued(in.Workload, p)...)
	} else if missing := in.Expected - len(queued); missing > 0 {
		o.NotQueued = append(o.NotQueued, fmt.Sprintf("%d of the workload's %d messages never reached the queue", missing, in.Expected))
	}

	hist := newHist()
	var last time.Time
	for id, qt := range queued {
		switch n := copies[id]; {
		case n == 0:
			o.Lost = append(o.Lost, t.sender.name(id)+t.hopStopped(in, id)+p.explain(id, "lost"))
			continue
		case n > 1:
			o.Duplicated = append(o.Duplicated, fmt.Sprintf("%s (%d copies)%s", t.sender.name(id), n, p.explain(id, "duplicated")))
		}
		s.Delivered++
		d, ok := t.receiver.firstCopy[id]
		dt := d.at
		if !ok { // on disk but no event: fall back to the file's time
			dt = maildirTime(in.Maildir, id)
		}
		if dt.After(last) {
			last = dt
		}
		lat := dt.Sub(qt)
		hist.RecordValue(max(int64(lat/time.Microsecond), 1))
		if lat > 10*time.Second {
			s.DeliveredLateMessages++
		}
	}
	for id := range copies {
		if _, ok := queued[id]; !ok {
			o.Unexpected = append(o.Unexpected, id)
		}
	}
	sort.Strings(o.Lost)
	sort.Strings(o.Duplicated)
	sort.Strings(o.Unexpected)
	if s.Delivered > 0 {
		s.TotalTime = last.Sub(t.sender.first)
		s.Latency = percentiles(hist)
		if s.TotalTime > 0 {
			s.MessagesPerSecond = float64(s.Delivered) / s.TotalTime.Seconds()
		}
	}
	return o
}

// heldByFaults counts the delivered messages that came over a receiver
// connection held by a faulted query (heldConnections) and were queued
// before its check ended (Summary.HeldByFaults), and how many of them
// were in a session waiting on it: one per such connection, the message
// it was opened for (Summary.HeldInSession).
func (t *tally) heldByFaults(copies map[string]int) (n, inSession int) {
	held := heldConnections(t.dns.faulted, t.receiver.checks)
	opened := map[string]bool{} // receiver connections that held a message: each was opened for one
	for id, qt := range t.sender.queuedAt {
		conn := t.receiver.firstCopy[id].conn
		if end, ok := held[conn]; ok && copies[id] > 0 && qt.Before(end) {
			n++
			opened[conn] = true
		}
	}
	return n, len(opened)
}

// leaveUnmeasured clears the figures a real MTA's mail log gives no
// evidence for and lists them in s.Unmeasured. Which role was played by
// the Go model or a real MTA decides what could be counted, not the
// events alone: a Go sender that never connected opened 0 connections, a
// real one logs none either way.
func leaveUnmeasured(s *Summary, in Inputs, faulted []events.Event) {
	if in.SenderLogPartial {
		// Courier S logs deliveries, not the connections that carried
		// them: no ConnOpen, Sent or ConnClose (lab/mta/log.go).
		s.SenderConnections, s.SenderReused, s.SenderCloses = 0, 0, nil
		s.Unmeasured = append(s.Unmeasured, KeySenderConnections, KeySenderReused, KeySenderCloses)
	}
	if in.ReceiverLogNone && in.SenderLogPartial {
		s.Connections = 0
		s.Unmeasured = append(s.Unmeasured, KeyConnections)
	}
	if in.ReceiverLogPartial && delayedAny(faulted) {
		// Held messages are traced through the receiver's Check events
		// (which queries each connection's checks sent) and the
		// connection of each Delivered event; a real receiver's log has
		// neither. With no query delayed, none was held: 0 is measured.
		s.HeldByFaults, s.HeldInSession = 0, 0
		s.Unmeasured = append(s.Unmeasured, KeyHeldByFaults)
	}
}

// relayHop is the last hop of a relay topology, per message: from the
// receiver's 250 to the lab's sender (its first Sent event) to the
// message's arrival at the final receiver. Nil when no message has both
// (a real sender logs no Sent with a Message-ID).
func (t *tally) relayHop() *Latency {
	hist := newHist()
	for id, sent := range t.sender.sentAt {
		if d, ok := t.receiver.firstCopy[id]; ok {
			hist.RecordValue(max(int64(d.at.Sub(sent)/time.Microsecond), 1))
		}
	}
	if hist.TotalCount() == 0 {
		return nil
	}
	l := percentiles(hist)
	return &l
}

// hopStopped says, for a message lost in a relay topology, which hop
// stopped: the receiver never took it, or took it and never relayed it
// to the final receiver.
func (t *tally) hopStopped(in Inputs, id string) string {
	if !in.Relay {
		return ""
	}
	if at, ok := t.sender.sentAt[id]; ok {
		return fmt.Sprintf(" (the relay hop stopped: the receiver took it at %s and it never reached the lab's final receiver)", at.UTC().Format("15:04:05.000"))
	}
	if !in.SenderLogPartial {
		return " (the first hop stopped: the receiver never took it)"
	}
	return ""
}

func maildirTime(ms []maildir.Message, id string) time.Time {
	for _, m := range ms {
		if m.MessageID == id {
			return m.ModTime
		}
	}
	return time.Time{}
}
