package sender

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/line"
)

// fastLink is a link too fast to wait on but for its retransmissions.
func fastLink(c line.LinkConfig) line.LinkConfig {
	c.Enabled = true
	c.BitsPerSecond = 1 << 30
	c.Latency = duration.Duration(time.Nanosecond)
	c.Retransmit = duration.Duration(time.Millisecond)
	return c
}

// TestLinkLoss: over a link that loses every segment, a message still
// arrives intact, and each loss is a link_fault event of the connection.
func TestLinkLoss(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	cfg.Link = fastLink(line.LinkConfig{Loss: 1, Segment: 64})
	cfg.Seed = 7
	q := openQueue(t, cfg.QueueDir)
	body := strings.Repeat("a line of the body, to cross in pieces\r\n", 20)
	text := "Message-ID: <lossy@link.test>\r\nFrom: from@src.test\r\nTo: u@h.test\r\nSubject: test\r\n\r\n" + body
	if _, err := q.Put(Envelope{From: "from@src.test", Rcpts: []string{"u@h.test"}, MessageID: "<lossy@link.test>"}, []byte(text)); err != nil {
		t.Fatal(err)
	}
	_, log := startSender(t, cfg)
	labtest.Until(t, "the message sent", func() bool { return countEvents(log, events.Sent, "") == 1 })
	checkOnce(t, f, []string{"<lossy@link.test> u@h.test"})
	if got := get(f, func(f *fake) string { return string(f.deliveries[0].Body) }); !strings.HasSuffix(got, body) {
		t.Errorf("the receiver got %q, want the body intact", got)
	}
	opens := eventsOf(log, events.ConnOpen)
	faults := eventsOf(log, events.LinkFault)
	if len(opens) == 0 || len(faults) < len(text)/64 {
		t.Fatalf("%d connections, %d link faults; want every segment of %d bytes lost", len(opens), len(faults), len(text))
	}
	for _, e := range faults {
		if e.FaultName != "loss" || e.Duration != time.Millisecond || e.Conn != opens[0].Conn || e.Host != "h.test" {
			t.Errorf("link fault %+v, want a loss of 1ms on %s to h.test", e, opens[0].Conn)
			break
		}
	}
}

// TestLinkReset: a link that resets every connection in the middle of
// DATA makes each attempt a temporary failure: the message stays queued
// and is tried again, and each reset is a link_fault event.
func TestLinkReset(t *testing.T) {
	f := newFake(t)
	cfg := testConfig(t, f.addr)
	cfg.Link = fastLink(line.LinkConfig{ResetAfterBytes: 1000, Segment: 100})
	q := openQueue(t, cfg.QueueDir)
	text := fmt.Sprintf("Message-ID: <big@link.test>\r\nFrom: from@src.test\r\nTo: u@h.test\r\n\r\n%s", strings.Repeat("x", 3000))
	if _, err := q.Put(Envelope{From: "from@src.test", Rcpts: []string{"u@h.test"}, MessageID: "<big@link.test>"}, []byte(text)); err != nil {
		t.Fatal(err)
	}
	_, log := startSender(t, cfg)
	labtest.Until(t, "two attempts", func() bool { return countEvents(log, events.Attempt, "temporary") >= 2 })
	resets := 0
	for _, e := range eventsOf(log, events.LinkFault) {
		if e.FaultName != "reset" || e.Count <= 0 || e.Count > 1000 || !strings.HasPrefix(e.Conn, "s") {
			t.Errorf("link fault %+v, want a reset within 1000 bytes", e)
		}
		resets++
	}
	if resets < 2 {
		t.Errorf("%d resets for %d temporary attempts", resets, countEvents(log, events.Attempt, "temporary"))
	}
	if n := countEvents(log, events.Sent, "") + countEvents(log, events.Failed, ""); n != 0 {
		t.Errorf("%d messages sent or failed, want the one retried", n)
	}
	if ids := queueIDs(t, q); len(ids) != 1 {
		t.Errorf("queue %v, want the message still in it", ids)
	}
	if n := get(f, func(f *fake) int { return len(f.deliveries) }); n != 0 {
		t.Errorf("the receiver took %d deliveries", n)
	}
}

// TestLinkConfig: the link's defaults are filled in only when it is on,
// and a bad value is refused naming the link's field.
func TestLinkConfig(t *testing.T) {
	off := Config{}
	off.setDefaults()
	if off.Link != (line.LinkConfig{}) {
		t.Errorf("a link that is off got defaults %+v", off.Link)
	}
	on := Config{Link: line.LinkConfig{Enabled: true, Loss: 0.01}}
	on.setDefaults()
	if l := on.Link; l.BitsPerSecond != line.DefaultBitsPerSecond || l.Segment != line.DefaultSegment || l.Retransmit.D() != line.DefaultRetransmit || l.Loss != 0.01 {
		t.Errorf("link defaults %+v", l)
	}
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.Link = line.LinkConfig{Enabled: true, Loss: 1.5}
	if _, err := New(cfg, events.NewLog("sender")); err == nil || !strings.Contains(err.Error(), "link: loss") {
		t.Errorf("loss 1.5: %v, want an error naming the link's loss", err)
	}
}
