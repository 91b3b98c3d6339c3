package report

import (
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
)

// A sender's permanent failure counts as the message's when it is tied to
// an injected one, as a failed bounce when it has the null sender, and
// otherwise (a real sender's log naming no Message-ID) as a failure of
// its own, never as a bounce.
func TestFailedKinds(t *testing.T) {
	t0 := time.Date(1999, 6, 1, 12, 0, 0, 0, time.UTC)
	evs := []events.Event{
		{Time: t0, Role: "sender", Kind: events.Queued, MessageID: "<a@x>", QueueID: "q1", From: "s@example.com", Rcpts: []string{"r1@h.example.com"}},
		{Time: t0, Role: "sender", Kind: events.Queued, MessageID: "<b@x>", QueueID: "q2", From: "s@example.com", Rcpts: []string{"r2@h.example.com"}},
		{Time: t0.Add(time.Second), Role: "sender", Kind: events.Failed, MessageID: "<a@x>", QueueID: "q1", Error: "550 no such user"},
		{Time: t0.Add(time.Second), Role: "sender", Kind: events.Failed, MessageID: "<dsn@x>", QueueID: "q3", Error: "550 no postmaster"},
		{Time: t0.Add(time.Second), Role: "sender", Kind: events.Failed, QueueID: "0000000000123B35", From: "s@example.com",
			Rcpts: []string{"r2@h.example.com"}, Error: "550 5.1.1 User unknown."},
	}
	s, o := Build(Inputs{Events: evs, Expected: 2})
	if s.DSNsFailed != 1 {
		t.Errorf("DSNs failed %d, want 1 (the null sender's)", s.DSNsFailed)
	}
	if len(o.Failed) != 2 || !strings.Contains(o.Failed[0], "<a@x>") ||
		!strings.Contains(o.Failed[1], "0000000000123B35") || !strings.Contains(o.Failed[1], "not tied to one message") {
		t.Errorf("failed %q", o.Failed)
	}
}

// The receiver's refused commands are counted by reply code.
func TestRejectionsByCode(t *testing.T) {
	t0 := time.Date(1999, 6, 1, 12, 0, 0, 0, time.UTC)
	evs := []events.Event{
		{Time: t0, Role: "receiver", Kind: events.Rejected, Conn: "r1", Code: 550, Error: "listed"},
		{Time: t0, Role: "receiver", Kind: events.Rejected, Conn: "r2", Code: 550, Error: "listed"},
		{Time: t0, Role: "receiver", Kind: events.Rejected, Conn: "r2", Code: 503, Error: "bad sequence"},
		{Time: t0, Role: "sender", Kind: events.Rejected, Code: 421}, // not the receiver's
	}
	s, _ := Build(Inputs{Events: evs})
	if len(s.Rejections) != 2 || s.Rejections["550"] != 2 || s.Rejections["503"] != 1 {
		t.Errorf("rejections %v, want 550: 2, 503: 1", s.Rejections)
	}
	rows := Rows(s, Seed1999)
	found := false
	for _, r := range rows {
		found = found || (strings.HasPrefix(r.Name, "commands the receiver refused") && r.Now == "503 1, 550 2")
	}
	if !found {
		t.Errorf("no row of refused commands in %v", rows)
	}
}
