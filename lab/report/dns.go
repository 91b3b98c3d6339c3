package report

import (
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/line"
)

// dnsTally is what the DNS stub's events say: the queries it answered,
// their sizes and time on the line, and the faults it applied.
type dnsTally struct {
	blacklists     []string       // DNSBL zones, to tell their queries apart
	queries        int            // Query events
	byType         map[string]int // Query events by queryClass
	answered       map[int]bool   // queries with a Query event, by Seq
	qsizes, asizes []int          // wire sizes of the answered queries
	wait, onLine   *hdrhistogram.Histogram
	records        []QueryRecord  // in event order
	faults         map[string]int // by type; nil when none
	// faulted are its Fault events, logged on arrival: a query still
	// held has no Query event yet.
	faulted []events.Event
}

func newDNSTally(blacklists []string) dnsTally {
	return dnsTally{blacklists: blacklists, byType: map[string]int{}, answered: map[int]bool{},
		wait: newHist(), onLine: newHist(), records: []QueryRecord{}}
}

func (t *dnsTally) add(e events.Event) {
	switch e.Kind {
	case events.Query:
		class := queryClass(e, t.blacklists)
		t.queries++
		t.byType[class]++
		t.answered[e.Seq] = true
		if e.SizeOut > 0 {
			t.qsizes, t.asizes = append(t.qsizes, e.SizeIn), append(t.asizes, e.SizeOut)
			if e.OnLine > 0 {
				t.wait.RecordValue(max(int64(e.QueueWait/time.Microsecond), 1))
				t.onLine.RecordValue(max(int64(e.OnLine/time.Microsecond), 1))
			}
		}
		t.records = append(t.records, QueryRecord{Seq: e.Seq, Arrived: e.Time, Name: e.Name, QType: e.QType,
			Class: class, Result: e.Result, Duration: e.Duration, QueueWait: e.QueueWait,
			OnLine: e.OnLine, Upstream: e.Upstream, SizeIn: e.SizeIn, SizeOut: e.SizeOut, Fault: e.FaultName, Key: first(e.Via)})
	case events.Fault:
		if t.faults == nil {
			t.faults = map[string]int{}
		}
		t.faults[e.FaultName]++
		t.faulted = append(t.faulted, e)
	}
}

// summarize puts the DNS figures in s; ln is the DNS line, nil when there
// was none.
func (t *dnsTally) summarize(s *Summary, ln *line.Config) {
	s.DNSQueries, s.DNSQueriesByType = t.queries, t.byType
	// A query still held by a fault when the events were read has a Fault
	// event but no Query event yet: it was made all the same.
	inFlight := map[int]bool{}
	for _, f := range t.faulted {
		if !t.answered[f.Seq] && !inFlight[f.Seq] {
			inFlight[f.Seq] = true
			s.DNSQueries++
			s.DNSQueriesByType[queryClass(f, t.blacklists)]++
		}
	}
	s.Faults = t.faults
	if ln != nil {
		s.LineFloor = ln.Floor(t.qsizes, t.asizes)
	}
	if t.onLine.TotalCount() > 0 {
		s.DNSLineWait, s.DNSOnLine = percentiles(t.wait), percentiles(t.onLine)
	}
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

// delayedAny reports whether a delaying fault hit any query.
func delayedAny(faulted []events.Event) bool {
	return slices.ContainsFunc(faulted, func(f events.Event) bool { return delaying[f.FaultName] })
}

// first is the first of keys, or "".
func first(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}
