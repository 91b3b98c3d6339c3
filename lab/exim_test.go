package lab_test

import (
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/mta"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
	"github.com/smtplab/smtplab/lab/topology"
)

// TestGoSenderEximReceiver runs the fast scenario from the Go sender to
// real Exim (Debian's exim4-daemon-light): all 200 delivered exactly
// once; every connection the sender opened is one Exim logged, each with
// one IDENT query, the client's name looked up and confirmed (a PTR, then
// an A: host_lookup) and both blacklists asked, once per connection as
// Courier R asks them (lab/mta/exim.go: in the connect ACL).
func TestGoSenderEximReceiver(t *testing.T) {
	res := realFast(t, scenario.ImplExim, scenario.ImplGo)
	s := res.Summary
	t.Logf("%d connections (the sender's %d), DNS %d %v, IDENT %d", s.Connections, s.SenderConnections, s.DNSQueries, s.DNSQueriesByType, s.IdentQueries)
	if s.Connections < 1 || s.Connections != s.SenderConnections {
		t.Fatalf("Exim logged %d connections, the sender opened %d", s.Connections, s.SenderConnections)
	}
	want := map[string]int{"PTR": s.Connections, "A": s.Connections, "DNSBL": 2 * s.Connections}
	for typ, n := range want {
		if s.DNSQueriesByType[typ] != n {
			t.Errorf("%s queries %d, want %d (%d connections, 200 recipients)", typ, s.DNSQueriesByType[typ], n, s.Connections)
		}
	}
	if s.DNSQueries != 4*s.Connections || s.IdentQueries != s.Connections {
		t.Errorf("%d connections: %d DNS queries (%v), %d IDENT; want a PTR, an A, two DNSBL and one IDENT each",
			s.Connections, s.DNSQueries, s.DNSQueriesByType, s.IdentQueries)
	}
	if s.Refused != 0 || len(s.Rejections) != 0 {
		t.Errorf("refused %d, rejections %v", s.Refused, s.Rejections)
	}
}

// TestEximSender runs the fast scenario from real Exim (injected with its
// own sendmail, one per message) to the Go receiver: every message
// delivered exactly once, each by a delivery process of its own over a
// session of its own (Exim passes a session on only to a message already
// waiting for that host, and none waits when none is deferred): 200
// connections, counted by the receiver, with the 1999 profile's four
// lookups each and nothing more, as Exim S asks the DNS nothing (the
// routes name the receiver's address). Its log has no deferral or
// failure; its connections are left unmeasured, as every real sender's.
func TestEximSender(t *testing.T) {
	res := realFast(t, scenario.ImplGo, scenario.ImplExim)
	s := res.Summary
	t.Logf("%d connections, DNS %d %v, IDENT %d", s.Connections, s.DNSQueries, s.DNSQueriesByType, s.IdentQueries)
	if s.Connections != 200 {
		t.Errorf("the receiver counted %d connections for 200 messages; want one each", s.Connections)
	}
	want := map[string]int{"PTR": s.Connections, "A": s.Connections, "DNSBL": 2 * s.Connections}
	for typ, n := range want {
		if s.DNSQueriesByType[typ] != n {
			t.Errorf("%s queries %d, want %d for %d connections", typ, s.DNSQueriesByType[typ], n, s.Connections)
		}
	}
	if s.DNSQueries != 4*s.Connections || s.IdentQueries != s.Connections {
		t.Errorf("%d connections: %d DNS queries (%v), %d IDENT; want 4 and 1 each", s.Connections, s.DNSQueries, s.DNSQueriesByType, s.IdentQueries)
	}
	for _, e := range runEvents(t, res) {
		if e.Role == topology.Sender && (e.Kind == events.Attempt || e.Kind == events.Failed) {
			t.Errorf("Exim S logged a deferral or failure: %+v", e)
		}
	}
	if s.Measured(report.KeySenderConnections) {
		t.Errorf("Exim S's connections measured (%d): a real sender's are not", s.SenderConnections)
	}
}

// Exim S refused for good: each of three messages to unknown users fails
// with the Go receiver's 550 5.1.1, read from Exim's log and tied to the
// message injected; Exim's bounce to the sender fails too (the receiver
// knows no such user) and is dropped at once (ignore_bounce_errors_after
// 0s), so its queue empties and the run ends on its own, saying what did
// not arrive, instead of waiting out its timeout for a frozen bounce.
func TestEximSenderFailure(t *testing.T) {
	eng := stacktest.Engine(t)
	stacktest.Debootstrap(t)
	sc := fastWith(t, scenario.ImplGo, scenario.ImplExim)
	sc.Name = "exim-unknown-users"
	sc.Workload.Rounds, sc.Workload.Recipients = 1, 3
	sc.Workload.To = "nobody-{n}@{n}.foo.example.com"
	sc.Timeout = duration.Duration(2 * time.Minute)
	res, err := runChecked(t, eng, sc, nil)
	if res == nil || !res.Complete {
		t.Fatalf("run: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), "not every message was delivered") {
		t.Errorf("run: %v; want it to say not every message was delivered", err)
	}
	queued := map[string]string{} // recipient -> Message-ID
	for _, e := range runEvents(t, res) {
		if e.Role == topology.Sender && e.Kind == events.Queued {
			queued[e.Rcpts[0]] = e.MessageID
		}
	}
	tied, bounces := 0, 0
	for _, e := range runEvents(t, res) {
		if e.Role != topology.Sender || e.Kind != events.Failed {
			continue
		}
		if e.Code != 550 || e.Enhanced != "5.1.1" {
			t.Errorf("failure %+v: want the receiver's 550 5.1.1", e)
		}
		switch {
		case e.From == "" && e.Rcpts[0] == sc.Workload.From:
			bounces++
		case e.From == sc.Workload.From && e.MessageID != "" && e.MessageID == queued[e.Rcpts[0]] &&
			strings.HasSuffix(e.MessageID, "@"+mta.InjectIDHost+">"):
			tied++
		default:
			t.Errorf("failure %+v not tied to its injection", e)
		}
	}
	if len(queued) != 3 || tied != 3 || bounces != 3 {
		t.Errorf("%d injected, %d failures tied to them, %d bounces failed; want 3 of each", len(queued), tied, bounces)
	}
	if res.Summary.Delivered != 0 {
		t.Errorf("%d delivered to unknown users", res.Summary.Delivered)
	}
}
