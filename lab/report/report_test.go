package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/line"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/topology"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func ev(role topology.Role, kind events.Kind, at time.Duration, f func(*events.Event)) events.Event {
	e := events.Event{Role: role, Kind: kind, Time: t0.Add(at)}
	if kind == events.Queued {
		e.From = "sender@example.com" // the workload's; a DSN has none
	}
	if f != nil {
		f(&e)
	}
	return e
}

func TestBuild(t *testing.T) {
	id := func(s string) func(*events.Event) { return func(e *events.Event) { e.MessageID = s } }
	conn := func(s string) func(*events.Event) { return func(e *events.Event) { e.Conn = s } }
	evs := []events.Event{
		ev("sender", events.Queued, 0, id("<a>")),
		ev("sender", events.Queued, time.Second, id("<b>")),
		ev("sender", events.Queued, 2*time.Second, id("<c>")),
		ev("sender", events.ConnOpen, time.Second, conn("s1")),
		ev("sender", events.ConnOpen, time.Second, conn("s3")), // still open at the end
		ev("sender", events.Sent, 2*time.Second, conn("s1")),
		ev("sender", events.Sent, 2*time.Second, conn("s3")),
		ev("sender", events.Sent, 3*time.Second, conn("s1")),
		ev("sender", events.Sent, 3*time.Second, conn("s3")),
		ev("sender", events.Sent, 4*time.Second, conn("s3")),
		ev("sender", events.ConnClose, 20*time.Second, func(e *events.Event) { e.Conn, e.Count, e.Reason = "s1", 2, "idle" }),
		ev("sender", events.ConnClose, 20*time.Second, func(e *events.Event) { e.Conn, e.Count, e.Reason = "s2", 0, "connect: dial tcp: refused" }),
		ev("receiver", events.ConnOpen, time.Second, nil),
		ev("dns", events.Query, time.Second, func(e *events.Event) { e.Name, e.QType = "4.0.18.172.in-addr.arpa", "PTR" }),
		ev("dns", events.Query, time.Second, func(e *events.Event) { e.Name, e.QType = "sender.lab", "A" }),
		ev("dns", events.Query, time.Second, func(e *events.Event) { e.Name, e.QType = "4.0.18.172.bl1.example.net", "A" }),
		ev("dns", events.Query, time.Second, func(e *events.Event) { e.Name, e.QType = "4.0.18.172.bl2.example.net", "A" }),
		ev("identd", events.IdentQuery, time.Second, nil),
		ev("receiver", events.Delivered, 3*time.Second, id("<a>")),
		ev("receiver", events.Delivered, 15*time.Second, id("<b>")),
	}
	disk := []maildir.Message{{MessageID: "<a>"}, {MessageID: "<b>"}, {MessageID: "<b>"}, {MessageID: "<x>"}}
	s, o := Build(Inputs{Events: evs, Maildir: disk, NotQueued: []string{"message 4: refused"},
		Blacklists: []string{"bl1.example.net", "bl2.example.net"}, Expected: 5})

	if s.Injected != 3 || s.Delivered != 2 {
		t.Errorf("injected %d delivered %d, want 3 and 2", s.Injected, s.Delivered)
	}
	if len(o.NotQueued) != 2 || o.NotQueued[1] != "2 of the workload's 5 messages never reached the queue" {
		t.Errorf("not queued %q", o.NotQueued)
	}
	if s.TotalTime != 15*time.Second {
		t.Errorf("total time %s, want 15s (first injection to last delivery)", s.TotalTime)
	}
	if s.DNSQueries != 4 || s.DNSQueriesByType["DNSBL"] != 2 || s.DNSQueriesByType["PTR"] != 1 || s.DNSQueriesByType["A"] != 1 {
		t.Errorf("dns %d by type %v", s.DNSQueries, s.DNSQueriesByType)
	}
	if s.LookupsPerConnection != 4 || s.IdentQueries != 1 || s.Connections != 1 {
		t.Errorf("per connection %.1f, ident %d, conns %d", s.LookupsPerConnection, s.IdentQueries, s.Connections)
	}
	// s1 carried 2 and closed, s3 carried 3 and was open at the end: 1 + 2
	// messages went over a session that had already carried one.
	if s.SenderReused != 3 || s.SenderCloses["idle"] != 1 || s.SenderCloses["connect"] != 1 || s.SenderCloses["open"] != 1 {
		t.Errorf("reused %d, closes %v", s.SenderReused, s.SenderCloses)
	}
	if s.DeliveredLateMessages != 1 {
		t.Errorf("late %d, want 1 (<b> took 14 s)", s.DeliveredLateMessages)
	}
	// HDR histogram values are exact to 3 significant digits.
	if d := s.Latency.Max - 14*time.Second; d < -20*time.Millisecond || d > 20*time.Millisecond {
		t.Errorf("max latency %s, want about 14s", s.Latency.Max)
	}
	if o.OK() || len(o.Lost) != 1 || o.Lost[0] != "<c>" || len(o.Duplicated) != 1 || len(o.Unexpected) != 1 || len(o.NotQueued) != 2 {
		t.Errorf("outcome %+v", o)
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, "t", s, o, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lost: <c>", "duplicated: <b> (2 copies)", "unexpected: <x>", "not queued: message 4", "196 / 200", "65.00 s"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestAllDeliveredIsOK(t *testing.T) {
	evs := []events.Event{
		ev("sender", events.Queued, 0, func(e *events.Event) { e.MessageID = "<a>" }),
		ev("receiver", events.Delivered, time.Second, func(e *events.Event) { e.MessageID = "<a>" }),
	}
	_, o := Build(Inputs{Events: evs, Maildir: []maildir.Message{{MessageID: "<a>"}}})
	if !o.OK() {
		t.Errorf("outcome %+v", o)
	}
	_, o = Build(Inputs{Events: evs}) // the event alone is no delivery: the Maildir is the evidence
	if o.OK() || len(o.Lost) != 1 {
		t.Errorf("delivered without a file: %+v", o)
	}
}

// A message is held by a fault when the connection that carried it had a
// check under way for the very query the fault hit.
func TestHeldByFaultsAndFloor(t *testing.T) {
	id := func(s, conn string) func(*events.Event) {
		return func(e *events.Event) { e.MessageID, e.Conn = s, conn }
	}
	bl := "4.0.18.172.bl1.example.net"
	evs := []events.Event{
		ev("sender", events.Queued, 0, id("<a>", "")),
		ev("sender", events.Queued, 0, id("<b>", "")),
		ev("sender", events.Queued, 0, id("<c>", "")),
		// r1's DNSBL check sent queries k1 and k2; r2's sent k3, for the
		// same name at the same time. The fault hit k2.
		ev("receiver", events.Check, time.Second, func(e *events.Event) {
			e.Conn, e.Name, e.Via, e.Check, e.Duration = "r1", bl, []string{"k1", "k2"}, "dnsbl", 6*time.Second
		}),
		ev("receiver", events.Check, time.Second, func(e *events.Event) {
			e.Conn, e.Name, e.Via, e.Check, e.Duration, e.Error = "r2", bl, []string{"k3"}, "dnsbl", 500*time.Millisecond, "TIMEOUT"
		}),
		ev("dns", events.Fault, 2*time.Second, func(e *events.Event) { e.Name, e.FaultName, e.Via = bl, "stall", []string{"k2"} }),
		ev("dns", events.Query, 2*time.Second, func(e *events.Event) {
			e.Name, e.QType, e.SizeIn, e.SizeOut, e.Via, e.FaultName = bl, "A", 100, 100, []string{"k2"}, "stall"
		}),
		ev("dns", events.Query, 3*time.Second, func(e *events.Event) {
			e.Name, e.QType, e.SizeIn, e.SizeOut, e.Via = bl, "A", 100, 100, []string{"k3"}
			e.QueueWait, e.OnLine = 2*time.Second, 180*time.Millisecond
		}),
		ev("receiver", events.Delivered, 8*time.Second, id("<a>", "r1")),
		ev("receiver", events.Delivered, 9*time.Second, id("<b>", "r1")),
		ev("receiver", events.Delivered, time.Second, id("<c>", "r2")),
		// <d> came later over the same session: it waited for nothing.
		ev("sender", events.Queued, 8*time.Second, id("<d>", "")),
		ev("receiver", events.Delivered, 9*time.Second, id("<d>", "r1")),
		// A bounce (null sender) is not the workload's.
		ev("sender", events.Queued, 9*time.Second, func(e *events.Event) { e.MessageID, e.From = "<dsn>", "" }),
		ev("sender", events.Failed, 10*time.Second, func(e *events.Event) { e.MessageID, e.Error = "<dsn>", "550" }),
	}
	disk := []maildir.Message{{MessageID: "<a>"}, {MessageID: "<b>"}, {MessageID: "<c>"}, {MessageID: "<d>"}}
	cfg := line.Config{BitsPerSecond: 28800, FramingBytes: 36, Latency: 50 * time.Millisecond}
	s, _ := Build(Inputs{Events: evs, Maildir: disk, Line: &cfg})
	near := func(got, want time.Duration) bool { return got > want-want/100 && got < want+want/100 }
	if s.Injected != 4 || s.DSNs != 1 || s.DSNsFailed != 1 {
		t.Errorf("injected %d, DSNs %d (failed %d); want 4, 1, 1", s.Injected, s.DSNs, s.DSNsFailed)
	}
	if s.HeldByFaults != 2 {
		t.Errorf("held %d, want 2 (<a> and <b> over r1)", s.HeldByFaults)
	}
	// r1 was opened for one of them; the other waited for it.
	if want := "2 (1 in sessions waiting on it, 1 waiting for a session to their host)"; s.HeldInSession != 1 || HeldText(s) != want {
		t.Errorf("held in session %d, %q; want 1, %q", s.HeldInSession, HeldText(s), want)
	}
	if ct := s.Checks["dnsbl"]; ct.Count != 2 || ct.Failed != 1 || ct.Total != 6500*time.Millisecond || !near(ct.Max, 6*time.Second) {
		t.Errorf("check times %+v", s.Checks)
	}
	if s.Faults["stall"] != 1 {
		t.Errorf("faults %v", s.Faults)
	}
	if want := cfg.Floor([]int{100, 100}, []int{100, 100}); s.LineFloor != want || want == 0 {
		t.Errorf("floor %s, want %s", s.LineFloor, want)
	}
	if !near(s.DNSLineWait.P99, 2*time.Second) || !near(s.DNSOnLine.P50, 180*time.Millisecond) {
		t.Errorf("line wait %+v, on line %+v", s.DNSLineWait, s.DNSOnLine)
	}
	if s2, _ := Build(Inputs{Events: evs, Maildir: disk}); s2.LineFloor != 0 {
		t.Errorf("floor without a line: %s", s2.LineFloor)
	}
}

// A receiver that keeps no log the lab reads (an image): its ESMTP
// connections are the Go sender's count of those it opened, said so; with
// a real sender too, they are not measured.
func TestConnectionsWithoutAReceiverLog(t *testing.T) {
	conn := func(c string) func(*events.Event) { return func(e *events.Event) { e.Conn, e.Host = c, "h.example" } }
	evs := []events.Event{
		ev("sender", events.Queued, 0, func(e *events.Event) { e.MessageID = "<a>" }),
		ev("sender", events.ConnOpen, 0, conn("s1")),
		ev("sender", events.ConnOpen, 0, conn("s2")),
		ev("dns", events.Query, 0, func(e *events.Event) { e.Name, e.QType = "x.example", "A" }),
	}
	disk := []maildir.Message{{MessageID: "<a>"}}
	s, _ := Build(Inputs{Events: evs, Maildir: disk, ReceiverLogPartial: true, ReceiverLogNone: true})
	if s.Connections != 2 || s.ConnectionsFrom != "sender" || s.LookupsPerConnection != 0.5 || !s.Measured(KeyConnections) {
		t.Errorf("connections %d from %q, lookups per connection %v, unmeasured %v", s.Connections, s.ConnectionsFrom, s.LookupsPerConnection, s.Unmeasured)
	}
	var b strings.Builder
	if err := WriteText(&b, "x", s, Outcome{}, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "2 (counted at the sender: the receiver keeps no log the lab reads)") {
		t.Errorf("text lacks where the connections were counted:\n%s", b.String())
	}
	s, _ = Build(Inputs{Events: evs, Maildir: disk, ReceiverLogPartial: true, ReceiverLogNone: true, SenderLogPartial: true})
	if s.Connections != 0 || s.Measured(KeyConnections) {
		t.Errorf("with a real sender: connections %d, unmeasured %v", s.Connections, s.Unmeasured)
	}
}

// The relay topology: what reached the lab's final receiver is what was
// delivered; its own sessions are not the receiver's; the relay hop runs
// from the receiver's 250 (the sender's Sent) to the final receiver's
// Delivered; a lost message says which hop stopped.
func TestRelayEvidence(t *testing.T) {
	id := func(m string) func(*events.Event) {
		return func(e *events.Event) { e.MessageID, e.Rcpts = m, []string{"u@h.example"} }
	}
	sent := func(m, c string) func(*events.Event) {
		return func(e *events.Event) { e.MessageID, e.Conn, e.QueueID = m, c, m }
	}
	evs := []events.Event{
		ev("sender", events.Queued, 0, id("<a>")),
		ev("sender", events.Queued, 0, id("<b>")),
		ev("sender", events.Queued, 0, id("<c>")),
		ev("sender", events.ConnOpen, 0, func(e *events.Event) { e.Conn, e.Host = "s1", "h.example" }),
		ev("sender", events.Sent, time.Second, sent("<a>", "s1")),
		ev("sender", events.Sent, time.Second, sent("<b>", "s1")),
		ev("final", events.ConnOpen, 2*time.Second, func(e *events.Event) { e.Conn = "f1" }),
		ev("final", events.Delivered, 4*time.Second, func(e *events.Event) { e.MessageID, e.Conn = "<a>", "f1" }),
	}
	disk := []maildir.Message{{MessageID: "<a>"}}
	s, o := Build(Inputs{Events: evs, Maildir: disk, ReceiverLogPartial: true, ReceiverLogNone: true, Relay: true})
	if s.Delivered != 1 || s.Evidence != "relay" || s.Connections != 1 || s.ConnectionsFrom != "sender" {
		t.Errorf("delivered %d, evidence %q, connections %d from %q", s.Delivered, s.Evidence, s.Connections, s.ConnectionsFrom)
	}
	if s.RelayHop == nil || s.RelayHop.P50 < 2990*time.Millisecond || s.RelayHop.P50 > 3010*time.Millisecond {
		t.Errorf("relay hop %+v, want 3 s (Sent at 1 s, at the final receiver at 4 s)", s.RelayHop)
	}
	if s.Latency.P50 < 3990*time.Millisecond || s.Latency.P50 > 4010*time.Millisecond {
		t.Errorf("latency %+v, want 4 s, queued to the final receiver", s.Latency)
	}
	lost := strings.Join(o.Lost, "\n")
	if !strings.Contains(lost, "<b> to u@h.example (the relay hop stopped: the receiver took it at") ||
		!strings.Contains(lost, "<c> to u@h.example (the first hop stopped: the receiver never took it)") {
		t.Errorf("lost:\n%s", lost)
	}
	var b strings.Builder
	if err := WriteText(&b, "x", s, o, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "relay hop p50 / p90 / p99 (receiver's 250 to the lab's final receiver)  3.00 s") {
		t.Errorf("text lacks the relay hop:\n%s", b.String())
	}
	// Without the relay, the final receiver's deliveries are nobody's.
	if s, _ := Build(Inputs{Events: evs, Maildir: disk}); s.Evidence != "" || s.RelayHop != nil {
		t.Errorf("without a relay: evidence %q, hop %v", s.Evidence, s.RelayHop)
	}
}

// For another workload the 1999 column is left out, with the reason; for
// 1999's it is there.
func TestNo1999ColumnForAnotherWorkload(t *testing.T) {
	s := Summary{Delivered: 1000, Injected: 1000}
	var with, without bytes.Buffer
	if err := WriteText(&with, "x", s, Outcome{}, ""); err != nil {
		t.Fatal(err)
	}
	why := "this workload is not 1999's: workload.rounds 50 (1999: 10)"
	if err := WriteText(&without, "x", s, Outcome{}, why); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(with.String(), "196 / 200") || !strings.Contains(with.String(), "1999") {
		t.Errorf("1999's workload without its column:\n%s", with.String())
	}
	if strings.Contains(without.String(), "196 / 200") || strings.Contains(without.String(), "65.00 s") {
		t.Errorf("another workload beside 1999's figures:\n%s", without.String())
	}
	if !strings.Contains(without.String(), "(no 1999 column: "+why+")") || !strings.Contains(without.String(), "1000 / 1000") {
		t.Errorf("no reason for the missing column, or no figures:\n%s", without.String())
	}
}
