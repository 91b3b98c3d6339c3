package role

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/topology"
)

// The sender's /metrics follows its queue from its events (a message
// leaves it when every recipient was sent, or it failed) and times each
// send from queued; every role's carries the Go runtime's and the
// process's figures.
func TestSenderQueueMetrics(t *testing.T) {
	log := events.NewLog(topology.Sender)
	h := eventMetrics(topology.Sender, log)
	t0 := time.Now()
	log.Add(events.Event{Time: t0, Kind: events.Queued, QueueID: "a", Rcpts: []string{"x@a", "y@b"}})
	log.Add(events.Event{Time: t0, Kind: events.Queued, QueueID: "b", Rcpts: []string{"x@a"}})
	log.Add(events.Event{Time: t0, Kind: events.Queued, QueueID: "c", Rcpts: []string{"x@a"}})
	log.Add(events.Event{Time: t0.Add(2 * time.Second), Kind: events.Sent, QueueID: "a", Rcpts: []string{"x@a"}})
	log.Add(events.Event{Time: t0.Add(3 * time.Second), Kind: events.Sent, QueueID: "b", Rcpts: []string{"x@a"}})
	log.Add(events.Event{Time: t0.Add(4 * time.Second), Kind: events.Failed, QueueID: "c"})
	body := scrape(t, h)
	for _, want := range []string{
		"smtplab_sender_queue_messages 1\n", // a: one recipient left
		"smtplab_sender_delivery_seconds_count 2\n",
		"smtplab_sender_delivery_seconds_sum 5\n",
		`smtplab_events_total{kind="queued",role="sender"} 3`,
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	log.Add(events.Event{Time: t0.Add(5 * time.Second), Kind: events.Sent, QueueID: "a", Rcpts: []string{"y@b"}})
	if body := scrape(t, h); !strings.Contains(body, "smtplab_sender_queue_messages 0\n") {
		t.Errorf("the queue is not empty after every recipient was sent")
	}
	if body := scrape(t, eventMetrics(topology.Identd, events.NewLog(topology.Identd))); strings.Contains(body, "smtplab_sender_") || !strings.Contains(body, "go_goroutines ") {
		t.Errorf("identd's /metrics: sender figures, or no runtime figures")
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// The receiver's /metrics counts each event kind, command and check under
// its own labels: every pair of label values is a child of its own, so
// two commands or two results of one check never share a count.
func TestReceiverMetricsByLabel(t *testing.T) {
	log := events.NewLog(topology.Receiver)
	h := eventMetrics(topology.Receiver, log)
	for _, e := range []events.Event{
		{Kind: events.Command, Name: "MAIL", Code: 250, Duration: time.Millisecond},
		{Kind: events.Command, Name: "MAIL", Code: 250, Duration: time.Millisecond},
		{Kind: events.Command, Name: "RCPT", Code: 250, Duration: time.Millisecond},
		{Kind: events.Command, Name: "RCPT", Code: 550, Duration: time.Millisecond},
		{Kind: events.Check, Check: "dnsbl", Duration: time.Second},
		{Kind: events.Check, Check: "dnsbl", Error: "timeout", Duration: time.Second},
		{Kind: events.Check, Check: "ident", Duration: time.Second},
	} {
		log.Add(e)
	}
	body := scrape(t, h)
	for _, want := range []string{
		`smtplab_command_seconds_count{code="2xx",command="MAIL"} 2`,
		`smtplab_command_seconds_count{code="2xx",command="RCPT"} 1`,
		`smtplab_command_seconds_count{code="5xx",command="RCPT"} 1`,
		`smtplab_check_seconds_count{check="dnsbl",result="ok"} 1`,
		`smtplab_check_seconds_count{check="dnsbl",result="error"} 1`,
		`smtplab_check_seconds_count{check="ident",result="ok"} 1`,
		`smtplab_events_total{kind="command",role="receiver"} 4`,
		`smtplab_events_total{kind="check",role="receiver"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
}
