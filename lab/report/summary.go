package report

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
)

// Seed1999 is what the 1999 benchmark reported (docs/BENCHMARK-1999.md): the
// figures every run is shown beside, and result.json's seed_1999.
var Seed1999 = Summary{
	Injected: 200, Delivered: 196, HeldByFaults: 4, HeldInSession: 4,
	TotalTime:             65 * time.Second,
	Connections:           57,
	LookupsPerConnection:  4,
	MessagesPerSecond:     196.0 / 65,
	DeliveredLateMessages: 4,
}

// Summary is one run's headline figures.
type Summary struct {
	// Pace is how the injection kept the workload's schedule (lab/pace):
	// mode, intended and achieved rate, lag, whether it held. Nil for a
	// result.json with no "pace" key.
	Pace      *pace.Kept `json:"pace,omitempty"`
	Injected  int        `json:"injected"`
	Delivered int        `json:"delivered"` // distinct injected messages found in the Maildir
	// TotalTime runs from the first injection to the last delivery.
	TotalTime   time.Duration `json:"total_time_ns"`
	Connections int           `json:"connections"` // ESMTP sessions the receiver served
	// ConnectionsFrom is "sender" when Connections was counted at the
	// sender, the receiver keeping no log the lab reads (an image); empty
	// when the receiver's own log counted them.
	ConnectionsFrom      string         `json:"connections_from,omitempty"`
	Refused              int            `json:"refused"` // connections turned away over a limit
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
	// HeldInSession is how many of HeldByFaults opened the session whose
	// check waited (the first message over it); the others waited for a
	// session to their host while every one it could have was waiting too
	// (at most max_per_host to a host). Left out when 0 or not measured.
	HeldInSession int `json:"held_in_session,omitempty"`
	// Evidence is "relay" when what arrived was read at the lab's final
	// receiver, the receiver under test relaying every message to it
	// (receiver.evidence relay), "mbox" when read in the receiver's mbox
	// (its delivery times whole seconds); empty when read in the
	// receiver's own Maildir.
	Evidence string `json:"evidence,omitempty"`
	// RelayHop is the receiver under test's own time per message in a
	// relay topology: from its 250 to the lab's sender to the message's
	// arrival at the final receiver. Nil without a relay (or with a real
	// sender, which logs no Message-ID with its deliveries).
	RelayHop *Latency `json:"relay_hop,omitempty"`
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
	KeyConnections       = "connections"
)

// whyUnmeasured says, by JSON key, why Build leaves a figure unmeasured.
var whyUnmeasured = map[string]string{
	KeySenderConnections: realSenderWhy,
	KeySenderReused:      realSenderWhy,
	KeySenderCloses:      realSenderWhy,
	KeyHeldByFaults:      "a real receiver's mail log has no per-lookup checks to tie a delayed query to the messages it held",
	KeyConnections:       "the receiver keeps no log the lab reads, and a real sender's log has no connections",
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
