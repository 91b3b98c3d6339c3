package report

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/topology"
)

// msgEv is an event about the one message of a record test, <m> in
// queue q1.
func msgEv(role topology.Role, kind events.Kind, at time.Duration, f func(*events.Event)) events.Event {
	return ev(role, kind, at, func(e *events.Event) {
		e.MessageID, e.QueueID = "<m>", "q1"
		if f != nil {
			f(e)
		}
	})
}

func onDisk(n int, mtime time.Duration) []maildir.Message {
	var ms []maildir.Message
	for range n {
		ms = append(ms, maildir.Message{MessageID: "<m>", ModTime: t0.Add(mtime)})
	}
	return ms
}

// One message's record, from its events and the Maildir.
func TestBuildRecordsMessage(t *testing.T) {
	queued := msgEv("sender", events.Queued, time.Second, func(e *events.Event) { e.Rcpts = []string{"r@1.foo.example.com"} })
	attempt := func(at time.Duration, result string) events.Event {
		return msgEv("sender", events.Attempt, at, func(e *events.Event) { e.Conn, e.Result = "s1", result })
	}
	sent := msgEv("sender", events.Sent, 2*time.Second, func(e *events.Event) { e.Conn = "s2" })
	delivered := func(at time.Duration, conn string) events.Event {
		return msgEv("receiver", events.Delivered, at, func(e *events.Event) { e.Conn = conn })
	}
	failed := msgEv("sender", events.Failed, 2*time.Second, func(e *events.Event) { e.Error = "550 no such user" })

	type want struct {
		status             string
		copies, attempts   int
		delivered, latency time.Duration // delivered from t0; -1 for a zero time
		senderConn, rcvr   string
		err                string
	}
	cases := []struct {
		name string
		evs  []events.Event
		disk []maildir.Message
		want want
	}{
		{"delivered", []events.Event{queued, attempt(2*time.Second, "ok"), sent, delivered(3*time.Second, "r1")}, onDisk(1, 9*time.Second),
			want{"delivered", 1, 1, 3 * time.Second, 2 * time.Second, "s2", "r1", ""}},
		{"retried", []events.Event{queued, attempt(2*time.Second, "temporary"), attempt(5*time.Second, "ok"), sent, delivered(6*time.Second, "r2")}, onDisk(1, 9*time.Second),
			want{"delivered", 1, 2, 6 * time.Second, 5 * time.Second, "s2", "r2", ""}},
		{"lost", []events.Event{queued, attempt(2*time.Second, "ok"), sent}, nil,
			want{"lost", 0, 1, -1, 0, "s2", "", ""}},
		// The receiver says it delivered, the Maildir has no file: lost,
		// with no delivery time (the session it came in is kept).
		{"lost though the receiver said delivered", []events.Event{queued, sent, delivered(3*time.Second, "r1")}, nil,
			want{"lost", 0, 0, -1, 0, "s2", "r1", ""}},
		// The first copy's time, and its session.
		{"duplicated", []events.Event{queued, delivered(4*time.Second, "r2"), delivered(3*time.Second, "r1")}, onDisk(2, 9*time.Second),
			want{"duplicated", 2, 0, 3 * time.Second, 2 * time.Second, "", "r1", ""}},
		{"failed", []events.Event{queued, attempt(2*time.Second, "permanent"), failed}, nil,
			want{"failed", 0, 1, -1, 0, "", "", "550 no such user"}},
		// No Delivered event: the file's time.
		{"file time", []events.Event{queued, sent}, onDisk(1, 4*time.Second),
			want{"delivered", 1, 0, 4 * time.Second, 3 * time.Second, "s2", "", ""}},
		// A file time before the queue's: latency 0, not negative.
		{"file time before queued", []events.Event{queued, sent}, onDisk(1, 500*time.Millisecond),
			want{"delivered", 1, 0, 500 * time.Millisecond, 0, "s2", "", ""}},
		// Events come in any order: a delivery read before its injection.
		{"delivered before queued in the log", []events.Event{delivered(3*time.Second, "r1"), sent, queued}, onDisk(1, 9*time.Second),
			want{"delivered", 1, 0, 3 * time.Second, 2 * time.Second, "s2", "r1", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := BuildRecords(Inputs{Events: c.evs, Maildir: c.disk})
			if len(r.Messages) != 1 {
				t.Fatalf("%d messages, want 1: %+v", len(r.Messages), r.Messages)
			}
			m := r.Messages[0]
			var delivered time.Time
			if c.want.delivered >= 0 {
				delivered = t0.Add(c.want.delivered)
			}
			got := want{m.Status, m.Copies, m.Attempts, -1, m.Latency, m.SenderConn, m.ReceiverConn, m.Error}
			if !m.Delivered.IsZero() {
				got.delivered = m.Delivered.Sub(t0)
			}
			if got != c.want || !m.Delivered.Equal(delivered) {
				t.Errorf("got  %+v (delivered %v)\nwant %+v", got, m.Delivered, c.want)
			}
			if m.MessageID != "<m>" || m.QueueID != "q1" || !m.Queued.Equal(t0.Add(time.Second)) || !reflect.DeepEqual(m.Rcpts, []string{"r@1.foo.example.com"}) {
				t.Errorf("identity %q %q %v %q", m.MessageID, m.QueueID, m.Queued, m.Rcpts)
			}
		})
	}
}

// A bounce (null sender) is not the workload's: no record. Messages are
// in injection order; a message without recipients has [], not null.
func TestBuildRecordsMessagesOrder(t *testing.T) {
	q := func(id string, at time.Duration, from string) events.Event {
		return ev("sender", events.Queued, at, func(e *events.Event) { e.MessageID, e.QueueID, e.From = id, "q"+id, from })
	}
	r := BuildRecords(Inputs{Events: []events.Event{
		q("<b>", 2*time.Second, "s@x.example"), q("<dsn>", 0, ""), q("<a>", time.Second, "s@x.example"), q("<c>", time.Second, "s@x.example"),
	}})
	var ids []string
	for _, m := range r.Messages {
		ids = append(ids, m.MessageID)
	}
	if want := []string{"<a>", "<c>", "<b>"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("messages %q, want %q", ids, want)
	}
	for _, m := range r.Messages {
		if m.Rcpts == nil {
			t.Errorf("%s: nil recipients", m.MessageID)
		}
	}
}

func TestBuildRecordsConnections(t *testing.T) {
	check := func(conn, name string, at, took time.Duration, via ...string) events.Event {
		return ev("receiver", events.Check, at, func(e *events.Event) {
			e.Conn, e.Check, e.Name, e.QType, e.Result, e.Duration, e.Via = conn, name, "n."+name, "A", "NOERROR", took, via
		})
	}
	evs := []events.Event{
		ev("sender", events.ConnOpen, 2*time.Second, func(e *events.Event) { e.Conn, e.Host = "s1", "receiver:25" }),
		ev("receiver", events.ConnOpen, 1*time.Second, func(e *events.Event) { e.Conn, e.Host = "r1", "172.18.0.4:40000" }),
		check("r1", "reverse", 1*time.Second, 100*time.Millisecond, "k1"),
		check("r1", "dnsbl", 1*time.Second, 6*time.Second, "k2", "k3"), // k3 was stalled
		check("r1", "ident", 1*time.Second, 50*time.Millisecond),
		ev("dns", events.Fault, 1*time.Second, func(e *events.Event) {
			e.FaultName, e.Name, e.Seq, e.Duration, e.Via = "stall", "n.dnsbl", 3, 5*time.Second, []string{"k3"}
		}),
		ev("identd", events.Fault, 1*time.Second, func(e *events.Event) { e.FaultName, e.Reason = "no_reply", "scripted" }),
		ev("receiver", events.Greeting, 7*time.Second, func(e *events.Event) { e.Conn = "r1" }),
		ev("receiver", events.Delivered, 8*time.Second, func(e *events.Event) { e.Conn, e.MessageID = "r1", "<a>" }),
		ev("receiver", events.Delivered, 8*time.Second, func(e *events.Event) { e.Conn, e.MessageID = "r1", "<b>" }),
		ev("receiver", events.ConnClose, 9*time.Second, func(e *events.Event) { e.Conn, e.Reason = "r1", "quit" }),
		ev("sender", events.ConnClose, 9*time.Second, func(e *events.Event) { e.Conn, e.Reason, e.Count = "s1", "idle", 2 }),
		// Still open when the events were read.
		ev("sender", events.ConnOpen, 3*time.Second, func(e *events.Event) { e.Conn, e.Host = "s2", "receiver:25" }),
	}
	r := BuildRecords(Inputs{Events: evs})
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	want := []ConnectionRecord{
		{Role: "receiver", Conn: "r1", Host: "172.18.0.4:40000", Opened: at(time.Second), Closed: at(9 * time.Second), Messages: 2, Reason: "quit",
			Greeting: at(7 * time.Second), Checks: []CheckRecord{
				{Check: "reverse", Name: "n.reverse", QType: "A", Start: at(time.Second), Duration: 100 * time.Millisecond, Result: "NOERROR"},
				{Check: "dnsbl", Name: "n.dnsbl", QType: "A", Start: at(time.Second), Duration: 6 * time.Second, Result: "NOERROR", Faulted: true},
				{Check: "ident", Name: "n.ident", QType: "A", Start: at(time.Second), Duration: 50 * time.Millisecond, Result: "NOERROR"},
			}},
		{Role: "sender", Conn: "s1", Host: "receiver:25", Opened: at(2 * time.Second), Closed: at(9 * time.Second), Messages: 2, Reason: "idle"},
		{Role: "sender", Conn: "s2", Host: "receiver:25", Opened: at(3 * time.Second)},
	}
	if !reflect.DeepEqual(r.Connections, want) {
		t.Errorf("connections\n got %+v\nwant %+v", r.Connections, want)
	}
	wantFaults := []FaultRecord{
		{Time: at(time.Second), Role: "dns", Fault: "stall", Name: "n.dnsbl", Seq: 3, Duration: 5 * time.Second},
		{Time: at(time.Second), Role: "identd", Fault: "no_reply", Reason: "scripted"},
	}
	if !reflect.DeepEqual(r.Faults, wantFaults) {
		t.Errorf("faults\n got %+v\nwant %+v", r.Faults, wantFaults)
	}
}

func TestBuildRecordsQueries(t *testing.T) {
	q := func(seq int, name, qtype string, f func(*events.Event)) events.Event {
		return ev("dns", events.Query, time.Duration(seq)*time.Second, func(e *events.Event) {
			e.Seq, e.Name, e.QType, e.Result = seq, name, qtype, "NOERROR"
			if f != nil {
				f(e)
			}
		})
	}
	evs := []events.Event{
		q(3, "4.0.18.172.bl1.example.net", "A", func(e *events.Event) { e.Result, e.FaultName = "DROPPED", "drop" }),
		q(1, "4.0.18.172.in-addr.arpa", "PTR", func(e *events.Event) {
			e.Duration, e.QueueWait, e.OnLine, e.Upstream, e.SizeIn, e.SizeOut = time.Second, 300*time.Millisecond, 180*time.Millisecond, 5*time.Millisecond, 40, 90
		}),
		q(2, "sender.lab", "A", nil),
		q(4, "bl1.example.net", "TXT", nil), // the zone itself, not a name under it: its type
	}
	r := BuildRecords(Inputs{Events: evs, Blacklists: []string{"BL1.example.net"}})
	type row struct {
		seq                  int
		class, result, fault string
	}
	var got []row
	for _, qr := range r.Queries {
		got = append(got, row{qr.Seq, qr.Class, qr.Result, qr.Fault})
	}
	want := []row{{1, "PTR", "NOERROR", ""}, {2, "A", "NOERROR", ""}, {3, "DNSBL", "DROPPED", "drop"}, {4, "TXT", "NOERROR", ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("queries %+v, want %+v", got, want)
	}
	ptr := r.Queries[0]
	if !ptr.Arrived.Equal(t0.Add(time.Second)) || ptr.Duration != time.Second || ptr.QueueWait != 300*time.Millisecond ||
		ptr.OnLine != 180*time.Millisecond || ptr.Upstream != 5*time.Millisecond || ptr.SizeIn != 40 || ptr.SizeOut != 90 || ptr.Name != "4.0.18.172.in-addr.arpa" {
		t.Errorf("PTR query %+v", ptr)
	}
}

// Every list is [] in the JSON, never null, even for no events.
func TestBuildRecordsEmpty(t *testing.T) {
	r := BuildRecords(Inputs{})
	if r.Messages == nil || r.Connections == nil || r.Queries == nil || r.Faults == nil {
		t.Fatalf("a nil list: %+v", r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"messages":[],"connections":[],"queries":[],"faults":[]}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}

// Each phase adds up its own events and only those.
func TestBuildPhases(t *testing.T) {
	rcv := func(kind events.Kind, f func(*events.Event)) events.Event { return ev("receiver", kind, 0, f) }
	check := func(name string, d time.Duration, err string) events.Event {
		return rcv(events.Check, func(e *events.Event) { e.Check, e.Duration, e.Error = name, d, err })
	}
	cmd := func(name string, d time.Duration, err string) events.Event {
		return rcv(events.Command, func(e *events.Event) { e.Name, e.Duration, e.Error = name, d, err })
	}
	evs := []events.Event{
		check("ident", 100*time.Millisecond, ""),
		check("ident", 30*time.Second, "timeout"),
		check("reverse", 200*time.Millisecond, ""),
		check("forward", 300*time.Millisecond, ""),
		check("dnsbl", 400*time.Millisecond, "SERVFAIL"),
		check("local_reverse", 10*time.Millisecond, ""),
		check("mailfrom", 50*time.Millisecond, ""),
		ev("dns", events.Query, 0, func(e *events.Event) {
			e.QueueWait, e.OnLine, e.Duration = time.Second, 180*time.Millisecond, 2*time.Second
		}),
		ev("dns", events.Query, 0, func(e *events.Event) { e.QueueWait, e.OnLine = 0, 20*time.Millisecond }),
		ev("dns", events.Query, 0, func(e *events.Event) { e.Duration = time.Second }), // no line: not in dns_line
		cmd("MAIL", 60*time.Millisecond, ""),
		cmd("RCPT", 20*time.Millisecond, "550 no such user"),
		cmd("RCPT", 20*time.Millisecond, ""),
		cmd("DATA", 2*time.Second, ""),
		rcv(events.Delivered, func(e *events.Event) { e.Duration = 40 * time.Millisecond }),
		rcv(events.Delivered, func(e *events.Event) { e.Duration = 60 * time.Millisecond }),
		rcv(events.Delivered, nil), // no disk time measured: not in disk
		// Not the receiver's: no phase.
		ev("sender", events.Command, 0, func(e *events.Event) { e.Name, e.Duration = "MAIL", time.Hour }),
		ev("sender", events.Check, 0, func(e *events.Event) { e.Check, e.Duration = "ident", time.Hour }),
	}
	s, _ := Build(Inputs{Events: evs})
	type tally struct {
		count, failed int
		total         time.Duration
	}
	want := map[string]tally{
		"ident":     {2, 1, 30100 * time.Millisecond},
		"dns":       {4, 1, 910 * time.Millisecond},
		"dns_line":  {2, 0, 1200 * time.Millisecond},
		"mailfrom":  {1, 0, 50 * time.Millisecond},
		"mail_rcpt": {3, 1, 100 * time.Millisecond},
		"data":      {1, 0, 2 * time.Second},
		"disk":      {2, 0, 100 * time.Millisecond},
	}
	got := map[string]tally{}
	for name, p := range s.Phases {
		got[name] = tally{p.Count, p.Failed, p.Total}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("phases\n got %+v\nwant %+v", got, want)
	}
	// The percentiles come from the same events (HDR: 3 digits).
	if p := s.Phases["ident"]; p.Max < 29970*time.Millisecond || p.Max > 30030*time.Millisecond || p.P50 > 101*time.Millisecond {
		t.Errorf("ident percentiles %+v", p.Latency)
	}
	if s2, _ := Build(Inputs{}); s2.Phases != nil {
		t.Errorf("phases of no events: %v, want none", s2.Phases)
	}
}

func TestQueryClassMalformed(t *testing.T) {
	if c := queryClass(events.Event{}, []string{"bl.example"}); c != "malformed" {
		t.Errorf("class of a query with no name or type: %q", c)
	}
}
