package lab_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
	"github.com/smtplab/smtplab/lab/topology"
)

// fastWith is scenarios/fast.yaml with the given MTAs in the roles.
func fastWith(t *testing.T, receiver, sender string) scenario.Scenario {
	t.Helper()
	sc := shipped(t, "fast.yaml")
	sc.Name = "fast-" + sender + "-" + receiver
	sc.Receiver.Impl, sc.Sender.Impl = receiver, sender
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	return sc
}

// realFast runs fastWith(receiver, sender), one of them a real MTA, and
// checks that every message arrived exactly once. What the tests check of
// it holds at any pace; a real sendmail waits on its MTA's own fsyncs
// (Courier's courierd shares the disk with its deliveries, and on a busy
// machine handed messages over up to 1.3 s late), so the bound says so.
func realFast(t *testing.T, receiver, sender string) *lab.Result {
	t.Helper()
	eng := stacktest.Engine(t)
	stacktest.Debootstrap(t)
	sc := fastWith(t, receiver, sender)
	sc.Workload.Pace.MaxLag = duration.Duration(5 * time.Second)
	res := mustRun(t, eng, sc)
	deliveredOnce(t, res.Dir, runEvents(t, res), 200)
	if s := res.Summary; s.Delivered != 200 || !res.Outcome.OK() {
		t.Errorf("delivered %d of %d: %+v", s.Delivered, s.Injected, res.Outcome)
	}
	return res
}

// deliveredOnce checks the Maildir copied out of the receiver against the
// injections: every one of want messages there exactly once, nothing else.
func deliveredOnce(t *testing.T, dir string, evs []events.Event, want int) {
	t.Helper()
	onDisk, err := maildir.Dir(filepath.Join(dir, "maildir")).List()
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]bool{}
	for _, e := range evs {
		if e.Role == topology.Sender && e.Kind == events.Queued {
			queued[e.MessageID] = true
		}
	}
	seen := map[string]int{}
	for _, m := range onDisk {
		seen[m.MessageID]++
		if !queued[m.MessageID] {
			t.Errorf("%s in the Maildir was never injected", m.MessageID)
		}
	}
	if len(queued) != want || len(onDisk) != want || len(seen) != want {
		t.Errorf("%d injected; the Maildir has %d files with %d distinct Message-IDs; want %d of each", len(queued), len(onDisk), len(seen), want)
	}
}

// TestRealCourier runs the fast scenario with real Courier on both sides
// (Debian's courier-mta, images built by debootstrap): all 200 messages
// delivered exactly once, each of R's connections read from its log with
// the lookups real Courier R makes (ten: PTR, A and AAAA of both ends,
// each blacklist in IPv4 and IPv6-mapped form) and one IDENT query.
func TestRealCourier(t *testing.T) {
	res := realFast(t, scenario.ImplCourier, scenario.ImplCourier)
	s := res.Summary
	if s.Connections < 1 || s.Connections > 200 {
		t.Fatalf("%d connections read from Courier R's log for 200 messages", s.Connections)
	}
	if s.DNSQueries != 10*s.Connections || s.DNSQueriesByType["DNSBL"] != 4*s.Connections || s.IdentQueries != s.Connections {
		t.Errorf("%d connections: %d DNS queries (%v), %d IDENT; want 10, 4 DNSBL and 1 IDENT each",
			s.Connections, s.DNSQueries, s.DNSQueriesByType, s.IdentQueries)
	}
	if s.Latency.P50 <= 0 || s.TotalTime <= 0 {
		t.Errorf("delivery times not taken from the Maildir: latency %+v, total %s", s.Latency, s.TotalTime)
	}
}

// TestGoSenderPostfixReceiver runs the fast scenario from the Go sender to
// real Postfix: all 200 delivered exactly once; every connection the
// sender opened is one Postfix logged, with PTR and A each
// (reject_unknown_client_hostname) and one query per blacklist
// (reject_rbl_client), and no IDENT query: Postfix makes none.
//
// The workload is a burst with one session per host: Postfix's own
// fsyncs (queue file, Maildir) share the disk with the sender's queue, and
// at fast.yaml's 10 a second on a busy machine they held sendmail back by
// seconds (the run rightly said its pace was not held); a burst is queued
// whole before anything is delivered. With at most one connection per
// host no host waits for a second one, so the sender opens exactly 20,
// all open at once, each served by its own smtpd process. That matters
// for the blacklists: smtpd keeps a DNSBL answer for its process's life
// (the RBL cache in Postfix's src/smtpd/smtpd_check.c), so sessions
// served one after another by one process would ask once between them.
func TestGoSenderPostfixReceiver(t *testing.T) {
	eng := stacktest.Engine(t)
	stacktest.Debootstrap(t)
	sc := fastWith(t, scenario.ImplPostfix, scenario.ImplGo)
	sc.Workload.Pace = scenario.Pace{Mode: "burst"}
	sc.Sender.MaxPerHost = 1
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, eng, sc)
	deliveredOnce(t, res.Dir, runEvents(t, res), 200)
	s := res.Summary
	if s.Delivered != 200 || !res.Outcome.OK() {
		t.Errorf("delivered %d of %d: %+v", s.Delivered, s.Injected, res.Outcome)
	}
	if s.Connections != 20 || s.Connections != s.SenderConnections {
		t.Errorf("Postfix logged %d connections, the sender opened %d; want 20, one per host", s.Connections, s.SenderConnections)
	}
	want := map[string]int{"PTR": s.Connections, "A": s.Connections, "DNSBL": 2 * s.Connections}
	for typ, n := range want {
		if s.DNSQueriesByType[typ] != n {
			t.Errorf("%s queries %d, want %d for %d connections", typ, s.DNSQueriesByType[typ], n, s.Connections)
		}
	}
	if s.IdentQueries != 0 {
		t.Errorf("%d IDENT queries: Postfix makes none", s.IdentQueries)
	}
}

// A run whose timeout cuts a real sender's injection loop short still
// knows what was injected (the loop writes each message's Queued event as
// its sendmail takes it): every message in the Maildir is matched to its
// injection, and the ones never injected are counted as such, not as
// deliveries from nowhere.
func TestRealSenderTimeoutKeepsInjections(t *testing.T) {
	eng := stacktest.Engine(t)
	stacktest.Debootstrap(t)
	sc := fastWith(t, scenario.ImplGo, scenario.ImplCourier)
	sc.Name = "courier-cut-short"
	sc.Timeout = duration.Duration(time.Second) // fast.yaml's pace injects 200 messages over 20 s
	res, err := runChecked(t, eng, sc, nil)
	if err == nil || res == nil || !res.Complete {
		t.Fatalf("run: %v (a run cut short by its timeout must say so, with a complete result)", err)
	}
	queued := 0
	for _, e := range runEvents(t, res) {
		if e.Role == topology.Sender && e.Kind == events.Queued {
			queued++
		}
	}
	if queued == 0 || queued >= 200 {
		t.Fatalf("%d messages recorded as injected; want some, not all, for a loop cut short", queued)
	}
	if len(res.Outcome.Unexpected) != 0 {
		t.Errorf("%d messages in the Maildir matched no injection: %v", len(res.Outcome.Unexpected), res.Outcome.Unexpected)
	}
	want := fmt.Sprintf("%d of the workload's 200 messages never reached the queue", 200-queued)
	if !strings.Contains(strings.Join(res.Outcome.NotQueued, "\n"), want) {
		t.Errorf("not queued %q, want it to say %q", res.Outcome.NotQueued, want)
	}
}

// TestPostfixSender runs the fast scenario from real Postfix (Debian's
// postfix as S, injected with its own sendmail, one per message) to the Go
// receiver: every message delivered exactly once, the receiver's own
// count of sessions and lookups (four per connection with the 1999
// profile), and Postfix S's connections left unmeasured: its log names
// deliveries, not the sessions that carried them.
func TestPostfixSender(t *testing.T) {
	res := realFast(t, scenario.ImplGo, scenario.ImplPostfix)
	s := res.Summary
	if s.Connections < 1 || s.DNSQueries != 4*s.Connections || s.IdentQueries != s.Connections {
		t.Errorf("%d connections: %d DNS queries, %d IDENT; want 4 and 1 each", s.Connections, s.DNSQueries, s.IdentQueries)
	}
	if s.Measured(report.KeySenderConnections) {
		t.Errorf("Postfix S's connections measured (%d): its log has none", s.SenderConnections)
	}
}
