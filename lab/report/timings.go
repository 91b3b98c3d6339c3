package report

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/topology"
)

// timings adds up named durations, as a CheckTime each: the receiver's
// checks (Summary.Checks) and the phases of a delivery (Summary.Phases).
type timings struct {
	times map[string]CheckTime
	hists map[string]*hdrhistogram.Histogram
}

func newTimings() *timings {
	return &timings{map[string]CheckTime{}, map[string]*hdrhistogram.Histogram{}}
}

// add counts one d under name; failed counts it as failed too.
func (p *timings) add(name string, d time.Duration, failed bool) {
	h := p.hists[name]
	if h == nil {
		h = newHist()
		p.hists[name] = h
	}
	h.RecordValue(max(int64(d/time.Microsecond), 1))
	ct := p.times[name]
	ct.Count++
	ct.Total += d
	if failed {
		ct.Failed++
	}
	p.times[name] = ct
}

// done returns the times with their percentiles; nil when none was
// added.
func (p *timings) done() map[string]CheckTime {
	if len(p.times) == 0 {
		return nil
	}
	for name, ct := range p.times {
		ct.Latency = percentiles(p.hists[name])
		p.times[name] = ct
	}
	return p.times
}

// phaseOf says which phase an event's Duration belongs to ("" for none).
func phaseOf(e events.Event) (string, time.Duration) {
	switch {
	case e.Role == topology.Receiver && e.Kind == events.Check && e.Check == "ident":
		return "ident", e.Duration
	case e.Role == topology.Receiver && e.Kind == events.Check && e.Check == "mailfrom":
		return "mailfrom", e.Duration // during MAIL, so also inside "mail_rcpt"
	case e.Role == topology.Receiver && e.Kind == events.Check:
		return "dns", e.Duration
	case e.Role == topology.DNS && e.Kind == events.Query && e.OnLine > 0:
		return "dns_line", e.QueueWait + e.OnLine
	case e.Role == topology.Receiver && e.Kind == events.Command && e.Name == "DATA":
		return "data", e.Duration
	case e.Role == topology.Receiver && e.Kind == events.Command && (e.Name == "MAIL" || e.Name == "RCPT"):
		return "mail_rcpt", e.Duration
	case e.Role == topology.Receiver && e.Kind == events.Delivered && e.Duration > 0:
		return "disk", e.Duration
	}
	return "", 0
}

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

// newHist holds durations in microseconds, up to a day, to 3 digits.
func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(24*time.Hour/time.Microsecond), 3)
}

func percentiles(h *hdrhistogram.Histogram) Latency {
	return Latency{
		P50: us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)),
		P99: us(h.ValueAtQuantile(99)), Max: us(h.Max()),
	}
}
