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
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/line"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/pace"
)

// Seed1999 is what the 1999 run reported (docs/SEED.md).
var Seed1999 = Summary{
	Injected: 200, Delivered: 196, HeldByFaults: 4,
	TotalTime:             65 * time.Second,
	Connections:           57,
	LookupsPerConnection:  4,
	MessagesPerSecond:     196.0 / 65,
	DeliveredLateMessages: 4,
}

// Summary is one run's headline figures.
type Summary struct {
	// Pace is how the injection kept the workload's schedule (lab/pace):
	// mode, intended and achieved rate, lag, whether it held. Absent from
	// results written before the pace was an input.
	Pace      *pace.Kept `json:"pace,omitempty"`
	Injected  int        `json:"injected"`
	Delivered int        `json:"delivered"` // distinct injected messages found in the Maildir
	// TotalTime runs from the first injection to the last delivery.
	TotalTime            time.Duration  `json:"total_time_ns"`
	Connections          int            `json:"connections"` // ESMTP sessions the receiver served
	Refused              int            `json:"refused"`     // connections turned away over a limit
	SenderConnections    int            `json:"sender_connections"`
	MessagesPerConn      float64        `json:"messages_per_connection"`
	DNSQueries           int            `json:"dns_queries"`
	DNSQueriesByType     map[string]int `json:"dns_queries_by_type"` // PTR, A, DNSBL, other
	LookupsPerConnection float64        `json:"lookups_per_connection"`
	IdentQueries         int            `json:"ident_queries"`
	MessagesPerSecond    float64        `json:"messages_per_second"`
	Latency              Latency        `json:"latency"` // injection to Maildir, per message
	// DeliveredLateMessages counts messages that took more than 10 s
	// (1999: the four held by one stalled DNS query).
	DeliveredLateMessages int `json:"delivered_late_messages"`
	Retries               int `json:"retries"`
	// LineFloor is the least time the DNS line allows for the lookups this
	// run made (lab/line Config.Floor); 0 without a line.
	LineFloor time.Duration `json:"line_floor_ns"`
	// Faults counts the faults applied, by type, from the DNS server's
	// fault events.
	Faults map[string]int `json:"faults,omitempty"`
	// HeldByFaults counts delivered messages that came over a connection
	// one of whose checks waited on a delayed query (dropped, stalled, slow
	// upstream), and were queued before that check ended (1999: 4, held by
	// one stalled DNS query). Not measured with a real receiver when a
	// fault delayed a query (Build).
	HeldByFaults int `json:"held_by_faults"`
	// DNSLineWait is the time answered queries waited in the line's queues
	// (both directions), and DNSOnLine their time on the line itself.
	DNSLineWait Latency `json:"dns_line_wait"`
	DNSOnLine   Latency `json:"dns_on_line"`
	// Checks is where the receiver's time went before the greeting: per
	// check (reverse, forward, dnsbl, ident), from its Check events.
	Checks map[string]CheckTime `json:"checks,omitempty"`
	// SenderReused counts messages the sender sent over a connection that
	// had already carried one (session reuse), whether that connection
	// closed or was still open when the run ended; SenderCloses why its
	// connections closed ("idle", "yield" to a waiting host, "broken",
	// "connect: ...", "shutdown"). These and SenderConnections are not
	// measured with a real sender (Build).
	SenderReused int            `json:"sender_reused"`
	SenderCloses map[string]int `json:"sender_closes,omitempty"` // "open" counts those still open when the run ended
	// DSNs counts the bounces the sender queued (null sender) and
	// DSNsFailed those that could not be delivered either.
	DSNs       int `json:"dsns"`
	DSNsFailed int `json:"dsns_failed"`
	// Phases is where the time went, per phase of a delivery: "ident",
	// "dns" (the receiver's lookups before the greeting), "dns_line" (the
	// part of those queries' time spent waiting for and crossing the line:
	// inside "dns"), "mail_rcpt" (MAIL and RCPT, command to reply),
	// "mailfrom" (BOFHCHECKDNS's lookup: inside "mail_rcpt"), "data" (DATA
	// to the reply after the message) and "disk" (write, fsync and rename
	// per Maildir copy: inside "data"). Phases nest as said; they do not
	// add up to the total time.
	Phases map[string]CheckTime `json:"phases,omitempty"`
	// Rejections counts the receiver's refused commands (a DNSBL listing
	// refused at RCPT, an unknown user, a relaying attempt), by reply code.
	Rejections map[string]int `json:"rejections,omitempty"`
	// Unmeasured lists, by JSON key, the figures this run had no evidence
	// for (see Build): their Go fields hold 0 or nil, result.json writes
	// them as null or leaves them out, and the reports say "not measured".
	Unmeasured []string `json:"unmeasured,omitempty"`
}

// The JSON keys of the figures a run can leave unmeasured
// (Summary.Unmeasured).
const (
	KeySenderConnections = "sender_connections"
	KeySenderReused      = "sender_reused"
	KeySenderCloses      = "sender_closes"
	KeyHeldByFaults      = "held_by_faults"
)

// whyUnmeasured says, by JSON key, why Build leaves a figure unmeasured.
var whyUnmeasured = map[string]string{
	KeySenderConnections: realSenderWhy,
	KeySenderReused:      realSenderWhy,
	KeySenderCloses:      realSenderWhy,
	KeyHeldByFaults:      "a real receiver's mail log has no per-lookup checks to tie a delayed query to the messages it held",
}

const realSenderWhy = "a real sender's mail log, as lab/mta reads it, has no connections"

// Measured reports whether the figure with JSON key key was measured:
// false for those in Unmeasured.
func (s Summary) Measured(key string) bool { return !slices.Contains(s.Unmeasured, key) }

// NotMeasured says that the figure with JSON key key was not measured,
// and why: "not measured (a real sender's mail log, as lab/mta reads
// it, has no connections)".
func NotMeasured(key string) string {
	if why, ok := whyUnmeasured[key]; ok {
		return "not measured (" + why + ")"
	}
	return "not measured"
}

// IfMeasured is text, the figure with JSON key key as a report shows it,
// or NotMeasured(key) when the run did not measure it.
func (s Summary) IfMeasured(key, text string) string {
	if s.Measured(key) {
		return text
	}
	return NotMeasured(key)
}

// MarshalJSON writes the summary as encoding/json does, but each figure
// in Unmeasured as null: its Go field holds 0 (or nil), which would read
// as measured. Read back, a null leaves the field 0 and the key stays in
// Unmeasured. Keys keep their order.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // without this method
	b, err := json.Marshal(plain(s))
	if err != nil || len(s.Unmeasured) == 0 {
		return b, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // the object's {
		return nil, err
	}
	out := []byte{'{'}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		key, _ := k.(string)
		if !s.Measured(key) {
			v = json.RawMessage("null")
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		name, _ := json.Marshal(key)
		out = append(append(append(out, name...), ':'), v...)
	}
	return append(out, '}'), nil
}

// CheckTime is what one kind of check cost over the run.
type CheckTime struct {
	Count  int           `json:"count"`
	Failed int           `json:"failed"`
	Total  time.Duration `json:"total_ns"`
	Latency
}

// Latency is delivery latency percentiles, from an HDR histogram.
type Latency struct {
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

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
	Events     []events.Event    // all roles, any order
	Maildir    []maildir.Message // what is on disk in the receiver's Maildir
	NotQueued  []string          // injection errors
	Blacklists []string          // DNSBL zones, to tell their queries apart
	Line       *line.Config      // the DNS line, nil when there was none
	Expected   int               // messages the workload injects
	// RealSender and RealReceiver say that a real MTA played the role
	// (sender.impl, receiver.impl courier or postfix), not the Go model.
	// Its mail log (lab/mta) has fewer events than a Go role writes: the
	// figures made from the missing ones are left unmeasured
	// (Summary.Unmeasured) rather than counted as 0.
	RealSender, RealReceiver bool
}

// Build computes the summary and the outcome.
func Build(in Inputs) (Summary, Outcome) {
	var s Summary
	var o Outcome
	queued := map[string]time.Time{} // Message-ID -> injection time
	var first time.Time
	delivered := map[string]time.Time{} // Message-ID -> first Maildir time
	counts := map[string]int{}
	s.DNSQueriesByType = map[string]int{}
	var qsizes, asizes []int
	waitHist, lineHist := newHist(), newHist()
	checkHists := map[string]*hdrhistogram.Histogram{}
	checkTimes := map[string]CheckTime{}
	var faulted, checks, failed []events.Event
	connOf := map[string]string{}    // Message-ID -> receiver connection
	rcptsOf := map[string][]string{} // Message-ID -> its recipients, to name it
	answered := map[int]bool{}       // DNS queries with a Query event, by Seq
	phases := newPhases()
	sentOver := map[string]int{}   // sender connection -> transactions sent over it
	openConns := map[string]bool{} // sender connections opened and not closed
	for _, e := range in.Events {
		phases.add(e)
		switch {
		case e.Role == "sender" && e.Kind == events.Queued && e.From == "":
			s.DSNs++ // a bounce the sender made (null sender), not the workload
		case e.Role == "sender" && e.Kind == events.Queued:
			queued[e.MessageID] = e.Time
			rcptsOf[e.MessageID] = e.Rcpts
			if first.IsZero() || e.Time.Before(first) {
				first = e.Time
			}
		case e.Role == "sender" && e.Kind == events.ConnOpen:
			s.SenderConnections++
			openConns[e.Conn] = true
		case e.Role == "sender" && e.Kind == events.Sent:
			// Counted from what each connection sent, not from its close:
			// a session still open when the run ended carried mail too.
			if sentOver[e.Conn]++; sentOver[e.Conn] > 1 {
				s.SenderReused++
			}
		case e.Role == "sender" && e.Kind == events.ConnClose:
			delete(openConns, e.Conn) // a failed connect closes what never opened
			if s.SenderCloses == nil {
				s.SenderCloses = map[string]int{}
			}
			reason, _, _ := strings.Cut(e.Reason, ":") // "connect: dial tcp ...": the kind, not the text
			s.SenderCloses[reason]++
		case e.Role == "sender" && e.Kind == events.Attempt && e.Result == "temporary":
			s.Retries++
		case e.Role == "sender" && e.Kind == events.Failed:
			failed = append(failed, e)
		case e.Role == "receiver" && e.Kind == events.ConnOpen:
			s.Connections++
		case e.Role == "receiver" && e.Kind == events.Refused:
			s.Connections-- // accepted, then turned away before any greeting
			s.Refused++
		case e.Role == "receiver" && e.Kind == events.Rejected:
			if s.Rejections == nil {
				s.Rejections = map[string]int{}
			}
			s.Rejections[strconv.Itoa(e.Code)]++
		case e.Role == "receiver" && e.Kind == events.Delivered:
			if t, ok := delivered[e.MessageID]; !ok || e.Time.Before(t) {
				delivered[e.MessageID] = e.Time
				connOf[e.MessageID] = e.Conn
			}
		case e.Role == "dns" && e.Kind == events.Query:
			s.DNSQueries++
			s.DNSQueriesByType[queryClass(e, in.Blacklists)]++
			answered[e.Seq] = true
			if e.SizeOut > 0 {
				qsizes, asizes = append(qsizes, e.SizeIn), append(asizes, e.SizeOut)
				if e.OnLine > 0 {
					waitHist.RecordValue(max(int64(e.QueueWait/time.Microsecond), 1))
					lineHist.RecordValue(max(int64(e.OnLine/time.Microsecond), 1))
				}
			}
		case e.Role == "dns" && e.Kind == events.Fault:
			if s.Faults == nil {
				s.Faults = map[string]int{}
			}
			s.Faults[e.FaultName]++
			faulted = append(faulted, e) // logged on arrival: a query still held has no Query event yet
		case e.Role == "receiver" && e.Kind == events.Check:
			checks = append(checks, e)
			h := checkHists[e.Check]
			if h == nil {
				h = newHist()
				checkHists[e.Check] = h
			}
			h.RecordValue(max(int64(e.Duration/time.Microsecond), 1))
			ct := checkTimes[e.Check]
			ct.Count++
			ct.Total += e.Duration
			if e.Error != "" {
				ct.Failed++
			}
			checkTimes[e.Check] = ct

		case e.Role == "identd" && e.Kind == events.IdentQuery:
			s.IdentQueries++
		}
	}
	for _, m := range in.Maildir {
		counts[m.MessageID]++
	}
	// A query still held by a fault when the events were read has a Fault
	// event but no Query event yet: it was made all the same.
	inFlight := map[int]bool{}
	for _, f := range faulted {
		if !answered[f.Seq] && !inFlight[f.Seq] {
			inFlight[f.Seq] = true
			s.DNSQueries++
			s.DNSQueriesByType[queryClass(f, in.Blacklists)]++
		}
	}
	name := func(id string) string {
		if r := rcptsOf[id]; len(r) > 0 {
			return id + " to " + strings.Join(r, ", ")
		}
		return id
	}
	for _, e := range failed {
		_, ok := queued[e.MessageID]
		switch {
		case ok:
			o.Failed = append(o.Failed, fmt.Sprintf("%s: %s", name(e.MessageID), e.Error))
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
	if missing := in.Expected - len(queued); missing > 0 {
		o.NotQueued = append(o.NotQueued, fmt.Sprintf("%d of the workload's %d messages never reached the queue", missing, in.Expected))
	}

	hist := newHist()
	var last time.Time
	for id, qt := range queued {
		switch n := counts[id]; {
		case n == 0:
			o.Lost = append(o.Lost, name(id))
			continue
		case n > 1:
			o.Duplicated = append(o.Duplicated, fmt.Sprintf("%s (%d copies)", name(id), n))
		}
		s.Delivered++
		dt, ok := delivered[id]
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
	for id := range counts {
		if _, ok := queued[id]; !ok {
			o.Unexpected = append(o.Unexpected, id)
		}
	}
	sort.Strings(o.Lost)
	sort.Strings(o.Duplicated)
	sort.Strings(o.Unexpected)
	if s.Delivered > 0 {
		s.TotalTime = last.Sub(first)
		s.Latency = percentiles(hist)
		if s.TotalTime > 0 {
			s.MessagesPerSecond = float64(s.Delivered) / s.TotalTime.Seconds()
		}
	}
	if in.Line != nil {
		s.LineFloor = in.Line.Floor(qsizes, asizes)
	}
	if lineHist.TotalCount() > 0 {
		s.DNSLineWait, s.DNSOnLine = percentiles(waitHist), percentiles(lineHist)
	}
	for name, ct := range checkTimes {
		ct.Latency = percentiles(checkHists[name])
		if s.Checks == nil {
			s.Checks = map[string]CheckTime{}
		}
		s.Checks[name] = ct
	}
	s.Phases = phases.done()
	held := heldConnections(faulted, checks)
	for id, qt := range queued {
		if end, ok := held[connOf[id]]; ok && counts[id] > 0 && qt.Before(end) {
			s.HeldByFaults++
		}
	}
	if s.Connections > 0 {
		s.LookupsPerConnection = float64(s.DNSQueries) / float64(s.Connections)
	}
	if open := len(openConns); open > 0 {
		if s.SenderCloses == nil {
			s.SenderCloses = map[string]int{}
		}
		s.SenderCloses["open"] = open // idle, waiting for more when the run ended
	}
	if s.Connections > 0 {
		s.MessagesPerConn = float64(s.Delivered) / float64(s.Connections) // as 1999's 196/57
	}
	// Which role played by the Go model or a real MTA decides what could be
	// counted, not the events alone: a Go sender that never connected
	// opened 0 connections, a real one logs none either way.
	if in.RealSender {
		// Courier S logs deliveries, not the connections that carried
		// them: no ConnOpen, Sent or ConnClose (lab/mta/log.go).
		s.SenderConnections, s.SenderReused, s.SenderCloses = 0, 0, nil
		s.Unmeasured = append(s.Unmeasured, KeySenderConnections, KeySenderReused, KeySenderCloses)
	}
	if in.RealReceiver && delayedAny(faulted) {
		// Held messages are traced through the receiver's Check events
		// (which queries each connection's checks sent) and the
		// connection of each Delivered event; a real receiver's log has
		// neither. With no query delayed, none was held: 0 is measured.
		s.HeldByFaults = 0
		s.Unmeasured = append(s.Unmeasured, KeyHeldByFaults)
	}
	return s, o
}

// delayedAny reports whether a delaying fault hit any query.
func delayedAny(faulted []events.Event) bool {
	return slices.ContainsFunc(faulted, func(f events.Event) bool { return delaying[f.FaultName] })
}

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

// newHist holds durations in microseconds, up to a day, to 3 digits.
func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(24*time.Hour/time.Microsecond), 3)
}

func percentiles(h *hdrhistogram.Histogram) Latency {
	return Latency{
		P50: us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)),
		P99: us(h.ValueAtQuantile(99)), Max: us(h.Max()),
	}
}

func maildirTime(ms []maildir.Message, id string) time.Time {
	for _, m := range ms {
		if m.MessageID == id {
			return m.ModTime
		}
	}
	return time.Time{}
}

// queryClass sorts a DNS query: DNSBL when under a blacklist zone, else its
// type.
func queryClass(e events.Event, blacklists []string) string {
	if e.Name == "" && e.QType == "" {
		return "malformed"
	}
	for _, z := range blacklists {
		if strings.HasSuffix(e.Name, "."+strings.ToLower(z)) {
			return "DNSBL"
		}
	}
	return e.QType
}

// delaying faults are those that make a lookup wait; servfail answers at
// once.
var delaying = map[string]bool{"drop": true, "stall": true, "slow_upstream": true}

// heldConnections finds the receiver connections that waited on a faulted
// query (a delaying fault on a query one of its checks sent, matched by
// events.QueryKey: the resolver's address and port and the query's id),
// with the time the last such check ended: messages queued before then
// waited for it.
func heldConnections(faulted, checks []events.Event) map[string]time.Time {
	hit := map[string]bool{}
	for _, q := range faulted {
		if delaying[q.FaultName] {
			for _, k := range q.Via {
				hit[k] = true
			}
		}
	}
	held := map[string]time.Time{}
	for _, c := range checks {
		for _, k := range c.Via {
			if end := c.Time.Add(c.Duration); hit[k] && end.After(held[c.Conn]) {
				held[c.Conn] = end
			}
		}
	}
	return held
}

// phaseTimes adds up Summary.Phases.
type phaseTimes struct {
	times map[string]CheckTime
	hists map[string]*hdrhistogram.Histogram
}

func newPhases() *phaseTimes {
	return &phaseTimes{map[string]CheckTime{}, map[string]*hdrhistogram.Histogram{}}
}

// phaseOf says which phase an event's Duration belongs to ("" for none).
func phaseOf(e events.Event) (string, time.Duration) {
	switch {
	case e.Role == "receiver" && e.Kind == events.Check && e.Check == "ident":
		return "ident", e.Duration
	case e.Role == "receiver" && e.Kind == events.Check && e.Check == "mailfrom":
		return "mailfrom", e.Duration // during MAIL, so also inside "mail_rcpt"
	case e.Role == "receiver" && e.Kind == events.Check:
		return "dns", e.Duration
	case e.Role == "dns" && e.Kind == events.Query && e.OnLine > 0:
		return "dns_line", e.QueueWait + e.OnLine
	case e.Role == "receiver" && e.Kind == events.Command && e.Name == "DATA":
		return "data", e.Duration
	case e.Role == "receiver" && e.Kind == events.Command && (e.Name == "MAIL" || e.Name == "RCPT"):
		return "mail_rcpt", e.Duration
	case e.Role == "receiver" && e.Kind == events.Delivered && e.Duration > 0:
		return "disk", e.Duration
	}
	return "", 0
}

func (p *phaseTimes) add(e events.Event) {
	name, d := phaseOf(e)
	if name == "" {
		return
	}
	h := p.hists[name]
	if h == nil {
		h = newHist()
		p.hists[name] = h
	}
	h.RecordValue(max(int64(d/time.Microsecond), 1))
	ct := p.times[name]
	ct.Count++
	ct.Total += d
	if e.Error != "" {
		ct.Failed++
	}
	p.times[name] = ct
}

func (p *phaseTimes) done() map[string]CheckTime {
	if len(p.times) == 0 {
		return nil
	}
	for name, ct := range p.times {
		ct.Latency = percentiles(p.hists[name])
		p.times[name] = ct
	}
	return p.times
}
