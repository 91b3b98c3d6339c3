package report

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/topology"
)

// path builds one message's events for the outage tests: message <id>
// in queue q<id>, to r@x.
type path struct{ evs []events.Event }

func (p *path) add(role topology.Role, kind events.Kind, at time.Duration, id string, f func(*events.Event)) {
	p.evs = append(p.evs, ev(role, kind, at, func(e *events.Event) {
		e.MessageID, e.QueueID = "<"+id+">", "q"+id
		if kind == events.Queued {
			e.Rcpts = []string{"r@x"}
		}
		if f != nil {
			f(e)
		}
	}))
}

func (p *path) queued(id string, at time.Duration) { p.add("sender", events.Queued, at, id, nil) }

// try is one attempt over conn: ok (then Sent too) or temporary.
func (p *path) try(id string, at time.Duration, conn string, ok bool) {
	res := "temporary"
	if ok {
		res = "ok"
	}
	p.add("sender", events.Attempt, at, id, func(e *events.Event) { e.MessageID, e.Conn, e.Result = "", conn, res })
	if ok {
		p.add("sender", events.Sent, at, id, func(e *events.Event) { e.Conn = conn })
	}
}

func (p *path) delivered(id string, at time.Duration) {
	p.add("receiver", events.Delivered, at, id, func(e *events.Event) { e.Conn = "r" + id })
}

// outage is an Outage event of rule faults[0] (seq 1).
func (p *path) outage(role topology.Role, fault, reason, trigger string, at, d time.Duration) {
	p.evs = append(p.evs, ev(role, events.Outage, at, func(e *events.Event) {
		e.FaultName, e.Reason, e.Name, e.Result, e.Seq, e.Duration = fault, reason, "faults[0]", trigger, 1, d
	}))
}

func (p *path) link(fault, conn string, at, d time.Duration, bytes int) {
	p.evs = append(p.evs, ev("sender", events.LinkFault, at, func(e *events.Event) {
		e.FaultName, e.Conn, e.Host, e.Duration, e.Count = fault, conn, "receiver:25", d, bytes
	}))
}

func disk(ids ...string) []maildir.Message {
	var ms []maildir.Message
	for _, id := range ids {
		ms = append(ms, maildir.Message{MessageID: "<" + id + ">"})
	}
	return ms
}

// faultsOf is each touched message's faults, by Message-ID.
func faultsOf(r Records) map[string][]MessageFault {
	out := map[string][]MessageFault{}
	for _, m := range r.Touched() {
		out[m.MessageID] = m.Faults
	}
	return out
}

func faultsText(t *testing.T, r Records, o Outcome) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteFaults(&b, &Result{Records: r, Outcome: o}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The receiver killed at 3 s and restarted at 8 s: b was refused once and
// retried, c waited in the queue; all four arrive once. The outage is
// listed, b and c are touched, a (done before) and d (queued after) not.
func TestOutageReceiverKilledAndRestarted(t *testing.T) {
	var p path
	p.queued("a", 0)
	p.try("a", 500*time.Millisecond, "s1", true)
	p.delivered("a", 400*time.Millisecond)
	p.queued("b", time.Second)
	p.queued("c", 2*time.Second)
	p.outage("receiver", "kill", "begin", "after 1 delivered", 3*time.Second, 0)
	p.try("b", 3100*time.Millisecond, "s1", false)
	p.outage("receiver", "kill", "end", "after 1 delivered", 8*time.Second, 5*time.Second)
	p.delivered("b", 8900*time.Millisecond)
	p.try("b", 9*time.Second, "s2", true)
	p.delivered("c", 9400*time.Millisecond)
	p.try("c", 9500*time.Millisecond, "s2", true)
	p.queued("d", 20*time.Second)
	p.delivered("d", 20400*time.Millisecond)
	p.try("d", 20500*time.Millisecond, "s2", true)
	in := Inputs{Events: p.evs, Maildir: disk("a", "b", "c", "d"), Workload: []string{"<a>", "<b>", "<c>", "<d>"}}

	_, o := Build(in)
	if !o.OK() {
		t.Errorf("outcome not ok: %+v", o)
	}
	r := BuildRecords(in)
	want := []OutageRecord{{Rule: "faults[0]", Seq: 1, Fault: "kill", Role: "receiver", Trigger: "after 1 delivered",
		Began: t0.Add(3 * time.Second), Ended: t0.Add(8 * time.Second), Duration: 5 * time.Second}}
	if !reflect.DeepEqual(r.Outages, want) {
		t.Errorf("outages %+v\nwant     %+v", r.Outages, want)
	}
	wantTouched := map[string][]MessageFault{
		"<b>": {{Fault: "kill", Rule: "faults[0]", Role: "receiver", Waited: 5 * time.Second}},
		"<c>": {{Fault: "kill", Rule: "faults[0]", Role: "receiver", Waited: 5 * time.Second}},
	}
	if got := faultsOf(r); !reflect.DeepEqual(got, wantTouched) {
		t.Errorf("touched %+v\nwant    %+v", got, wantTouched)
	}
	if r.Link != nil {
		t.Errorf("link %+v, want none", r.Link)
	}
	text := faultsText(t, r, o)
	for _, w := range []string{
		"faults[0] kill receiver (after 1 delivered): began +3.00 s, out 5.00 s, back +8.00 s\n",
		"messages touched: 2 of 4\n",
		"<b> to r@x: 5.00 s in faults[0] (kill receiver); 2 attempts (retried); 1 copy\n",
		"<c> to r@x: 5.00 s in faults[0] (kill receiver); 1 attempt; 1 copy\n",
		"no exception: every injected message was delivered exactly once\n",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("text report:\n%s\nwant it to say %q", text, w)
		}
	}
}

// The receiver has a's first copy when it is killed, before the sender
// reads the 250: the sender tries again after the restart and a second
// copy arrives. Duplicated, and the kill explains it.
func TestOutageReceiverKilledDuplicates(t *testing.T) {
	var p path
	p.queued("a", 0)
	p.delivered("a", time.Second)
	p.outage("receiver", "kill", "begin", "after 1 delivered", 1100*time.Millisecond, 0)
	p.try("a", 1200*time.Millisecond, "s1", false)
	p.outage("receiver", "kill", "end", "after 1 delivered", 3*time.Second, 1900*time.Millisecond)
	p.delivered("a", 3900*time.Millisecond)
	p.try("a", 4*time.Second, "s2", true)
	in := Inputs{Events: p.evs, Maildir: disk("a", "a"), Expected: 1}

	s, o := Build(in)
	want := "<a> to r@x (2 copies) — within SMTP's at-least-once window (RFC 1047): the receiver was killed " +
		"(faults[0], kill, after 1 delivered) after it had the message and before the sender read the 250"
	if !reflect.DeepEqual(o.Duplicated, []string{want}) {
		t.Errorf("duplicated %q\nwant       %q", o.Duplicated, want)
	}
	if o.OK() || s.Delivered != 1 {
		t.Errorf("ok %v, delivered %d: a duplicate explained is still a duplicate", o.OK(), s.Delivered)
	}
	r := BuildRecords(in)
	m := r.Messages[0]
	wantF := []MessageFault{{Fault: "kill", Rule: "faults[0]", Role: "receiver", Waited: 1900 * time.Millisecond}}
	if m.Status != "duplicated" || m.Copies != 2 || m.Attempts != 2 || !reflect.DeepEqual(m.Faults, wantF) {
		t.Errorf("record %s, %d copies, %d attempts, faults %+v", m.Status, m.Copies, m.Attempts, m.Faults)
	}
	text := faultsText(t, r, o)
	if !strings.Contains(text, "    duplicated: "+want+"\n") || !strings.Contains(text, "2 attempts (retried); 2 copies (duplicated)") {
		t.Errorf("text report:\n%s", text)
	}
}

// The sender killed for good after 3 queued: the workload's last two
// never reach the queue, each named and explained, and the third,
// queued but never sent, is lost to the same kill.
func TestOutageSenderKilledNeverQueued(t *testing.T) {
	var p path
	p.queued("1", 0)
	p.try("1", 500*time.Millisecond, "s1", true)
	p.delivered("1", 400*time.Millisecond)
	p.queued("2", time.Second)
	p.try("2", 1500*time.Millisecond, "s1", true)
	p.delivered("2", 1400*time.Millisecond)
	p.queued("3", 2*time.Second)
	p.outage("sender", "kill", "begin", "after 3 queued", 2500*time.Millisecond, 0)
	p.evs = append(p.evs, ev("receiver", events.ConnClose, 10*time.Second, func(e *events.Event) { e.Conn = "r1" }))
	workload := []string{"<1>", "<2>", "<3>", "<4>", "<5>"}
	in := Inputs{Events: p.evs, Maildir: disk("1", "2"), Workload: workload, Expected: 5}

	_, o := Build(in)
	kill := "the sender was killed and not restarted (faults[0], kill, after 3 queued)"
	wantNQ := []string{
		"<4> (message 4 of the workload's 5) never reached the queue — " + kill + " before it was queued",
		"<5> (message 5 of the workload's 5) never reached the queue — " + kill + " before it was queued",
	}
	if !reflect.DeepEqual(o.NotQueued, wantNQ) {
		t.Errorf("not queued %q\nwant       %q", o.NotQueued, wantNQ)
	}
	if want := []string{"<3> to r@x — " + kill + " while it was in flight"}; !reflect.DeepEqual(o.Lost, want) {
		t.Errorf("lost %q\nwant %q", o.Lost, want)
	}
	r := BuildRecords(in)
	if len(r.Outages) != 1 || !r.Outages[0].Ended.IsZero() || r.Outages[0].Duration != 7500*time.Millisecond {
		t.Errorf("outages %+v, want one never ended, out 7.5 s to the run's end", r.Outages)
	}
	text := faultsText(t, r, o)
	for _, w := range []string{"began +2.50 s, out 7.50 s, never back (to the run's end)", "    not queued: " + wantNQ[1] + "\n", "messages touched: 1 of 3\n"} {
		if !strings.Contains(text, w) {
			t.Errorf("text report:\n%s\nwant it to say %q", text, w)
		}
	}
}

// Two segments lost on s1 fall in b's transaction, a reset of s1 in c's
// first try; a loss on s2 after its last try touches nobody. a, before
// them on the same connection, is not touched.
func TestLinkFaultsTouchTheirTransaction(t *testing.T) {
	var p path
	for i, id := range []string{"a", "b", "c"} {
		p.queued(id, time.Duration(i)*100*time.Millisecond)
	}
	p.try("a", time.Second, "s1", true)
	p.link("loss", "s1", 1500*time.Millisecond, 200*time.Millisecond, 0)
	p.link("loss", "s1", 1700*time.Millisecond, 300*time.Millisecond, 0)
	p.try("b", 2*time.Second, "s1", true)
	p.link("reset", "s1", 2500*time.Millisecond, 0, 1234)
	p.try("c", 2600*time.Millisecond, "s1", false)
	p.try("c", 4*time.Second, "s2", true)
	p.link("loss", "s2", 5*time.Second, 400*time.Millisecond, 0)
	for _, id := range []string{"a", "b", "c"} {
		p.delivered(id, 0)
	}
	in := Inputs{Events: p.evs, Maildir: disk("a", "b", "c")}

	r := BuildRecords(in)
	want := map[string][]MessageFault{
		"<b>": {{Fault: "loss", Conn: "s1", Count: 2, Waited: 500 * time.Millisecond}},
		"<c>": {{Fault: "reset", Conn: "s1", Count: 1}},
	}
	if got := faultsOf(r); !reflect.DeepEqual(got, want) {
		t.Errorf("touched %+v\nwant    %+v", got, want)
	}
	wantLink := &LinkRecord{Losses: 3, LossWait: 900 * time.Millisecond, Resets: 1, ResetBytes: 1234, Conns: []string{"s1", "s2"}}
	if !reflect.DeepEqual(r.Link, wantLink) || len(r.Outages) != 0 {
		t.Errorf("link %+v, outages %+v", r.Link, r.Outages)
	}
	if _, o := Build(in); !o.OK() {
		t.Errorf("outcome %+v, want ok", o)
	}
	text := faultsText(t, r, Outcome{})
	for _, w := range []string{
		"the link: 3 losses (900 ms waited), 1 reset (1234 bytes carried) on s1, s2\n",
		"<b> to r@x: 2 link losses on s1 (500 ms); 1 attempt; 1 copy\n",
		"<c> to r@x: 1 link reset on s1; 2 attempts (retried); 1 copy\n",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("text report:\n%s\nwant it to say %q", text, w)
		}
	}
	b, err := json.Marshal(r)
	if err != nil || !bytes.Contains(b, []byte(`"link_faults":{"losses":3,"loss_wait_ns":900000000,"resets":1,"reset_bytes":1234,"conns":["s1","s2"]}`)) ||
		!bytes.Contains(b, []byte(`"faults":[{"fault":"reset","conn":"s1","count":1,"waited_ns":0}]`)) {
		t.Errorf("JSON %s (%v)", b, err)
	}
}

// A message lost after the only outage had ended: no fault explains it.
// Without any fault on the mail path the entry stays as it was.
func TestLostWithNoFault(t *testing.T) {
	var p path
	p.outage("receiver", "pause", "begin", "at 0s", 0, 0)
	p.outage("receiver", "pause", "end", "at 0s", 2*time.Second, 2*time.Second)
	p.queued("a", 3*time.Second)
	p.try("a", 3500*time.Millisecond, "s1", true)
	in := Inputs{Events: p.evs}

	_, o := Build(in)
	if want := []string{"<a> to r@x — no fault explains it"}; !reflect.DeepEqual(o.Lost, want) {
		t.Errorf("lost %q, want %q", o.Lost, want)
	}
	if r := BuildRecords(in); len(r.Touched()) != 0 || len(r.Outages) != 1 {
		t.Errorf("touched %+v, outages %+v", r.Touched(), r.Outages)
	}
	in.Events = in.Events[2:]
	if _, o := Build(in); !reflect.DeepEqual(o.Lost, []string{"<a> to r@x"}) {
		t.Errorf("without faults: lost %q", o.Lost)
	}
	if r := BuildRecords(in); r.Outages != nil || r.Link != nil || faultsText(t, r, o) != "" {
		t.Errorf("without faults: outages %+v, link %+v", r.Outages, r.Link)
	}
}

// A skipped rule is listed, touches nothing and explains nothing.
func TestOutageSkipped(t *testing.T) {
	var p path
	p.outage("receiver", "kill", "skipped", "after 1 delivered", 0, 0)
	p.queued("a", time.Second)
	in := Inputs{Events: p.evs}
	_, o := Build(in)
	r := BuildRecords(in)
	if !reflect.DeepEqual(o.Lost, []string{"<a> to r@x"}) || len(r.Outages) != 1 || !r.Outages[0].Skipped || len(r.Touched()) != 0 {
		t.Errorf("lost %q, outages %+v", o.Lost, r.Outages)
	}
	if text := faultsText(t, r, o); !strings.Contains(text, "faults[0] kill receiver (after 1 delivered): skipped (its seeded draw said no)\n") {
		t.Errorf("text report:\n%s", text)
	}
}

// A result with outages, link faults and touched messages fits the
// schema (the drift test checks the names; this the values).
func TestOutageRecordsFitTheSchema(t *testing.T) {
	b, err := os.ReadFile("testdata/fast-result.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var p path
	p.queued("a", 0)
	p.outage("receiver", "kill", "begin", "after 1 delivered", time.Second, 0)
	p.link("loss", "s1", time.Second, time.Millisecond, 0)
	p.try("a", 2*time.Second, "s1", true)
	r.Records = BuildRecords(Inputs{Events: p.evs})
	if len(r.Outages) != 1 || r.Link == nil || len(r.Touched()) != 1 {
		t.Fatalf("records %+v", r.Records)
	}
	doc, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(doc); err != nil {
		t.Error(err)
	}
	bad := bytes.Replace(doc, []byte(`"waited_ns":`), []byte(`"waited_ns":-`), 1)
	if err := Validate(bad); err == nil || !strings.Contains(err.Error(), "/messages/0/faults/0/waited_ns") {
		t.Errorf("a negative wait: Validate = %v", err)
	}
}
