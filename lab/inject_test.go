package lab

import (
	"context"
	"fmt"
	"testing"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// queuedSender is a sender that has logged some messages as queued and
// holds others in its queue (a fake of the restarted Go sender).
type queuedSender struct {
	Handle
	evs   []events.Event
	queue []sender.Envelope
}

func (q queuedSender) Role() topology.Role { return topology.Sender }
func (q queuedSender) Events(context.Context) ([]events.Event, error) {
	return q.evs, nil
}
func (q queuedSender) Queue(context.Context) ([]sender.Envelope, error) { return q.queue, nil }

// TestNotQueued: what a restarted sender had queued (logged, or on disk
// and not yet logged) is not injected again; the rest is, in workload
// order, the later rounds to a recipient counting as the ones left.
func TestNotQueued(t *testing.T) {
	var all []sender.Message
	for r := 1; r <= 3; r++ {
		for n := 1; n <= 2; n++ {
			all = append(all, sender.Message{Round: r, N: n, From: "s@x", To: fmt.Sprintf("r%d@y", n)})
		}
	}
	s := queuedSender{
		evs: []events.Event{
			{Kind: events.Queued, MessageID: "<1>", From: "s@x", Rcpts: []string{"r1@y"}},
			{Kind: events.Queued, MessageID: "<2>", From: "s@x", Rcpts: []string{"r2@y"}},
			{Kind: events.Queued, MessageID: "<1>", From: "s@x", Rcpts: []string{"r1@y"}}, // logged again at the restart's scan
			{Kind: events.Queued, MessageID: "<dsn>", From: "", Rcpts: []string{"s@x"}},   // a bounce: not the workload's
		},
		queue: []sender.Envelope{
			{MessageID: "<3>", From: "s@x", Rcpts: []string{"r1@y"}}, // on disk, not yet logged
			{MessageID: "<2>", From: "s@x", Rcpts: []string{"r2@y"}}, // logged and still queued
		},
	}
	rest, err := notQueued(context.Background(), s, all)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range rest {
		got = append(got, fmt.Sprintf("%d/%s", m.Round, m.To))
	}
	if want := "[2/r2@y 3/r1@y 3/r2@y]"; fmt.Sprint(got) != want {
		t.Errorf("left to inject %v, want %s", got, want)
	}
}
