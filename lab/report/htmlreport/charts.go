package htmlreport

import (
	"fmt"
	"html/template"
	"image/color"
	"time"

	"gonum.org/v1/plot/vg"

	"github.com/smtplab/smtplab/lab/report"
)

// chart is one figure of the page: an inlined SVG with a title and a
// caption that says what is drawn and how.
type chart struct {
	ID      string // anchor, and the figure's id for tests
	Title   string
	Caption string
	SVG     template.HTML // made by vgsvg, which escapes its own text
	Wide    bool          // full width; two narrow ones share a row
}

// Colours: one per series, kept the same from chart to chart so "sender"
// and "injected" look alike wherever they appear.
var (
	colInjected  = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff}
	colDelivered = color.RGBA{R: 0x1f, G: 0x6f, B: 0xb4, A: 0xff}
	colSender    = color.RGBA{R: 0xd9, G: 0x6c, B: 0x06, A: 0xff}
	colReceiver  = color.RGBA{R: 0x1f, G: 0x6f, B: 0xb4, A: 0xff}
	colInFlight  = color.RGBA{R: 0x1f, G: 0x6f, B: 0xb4, A: 0xff}
	colWaiting   = color.RGBA{R: 0xd9, G: 0x6c, B: 0x06, A: 0xff}
	colOnLine    = color.RGBA{R: 0x2c, G: 0x9c, B: 0x4a, A: 0xff}
	colFaulted   = color.RGBA{R: 0xc0, G: 0x1c, B: 0x28, A: 0xff}
	colBars      = color.RGBA{R: 0x1f, G: 0x6f, B: 0xb4, A: 0xff}
)

const (
	// Sizes near those the page shows them at, so the text is neither
	// blown up nor shrunk much.
	wideW, narrowW = 11.5 * vg.Inch, 5.6 * vg.Inch
	chartH         = 3.4 * vg.Inch
	legendFont     = 10 // points
)

// timeline places the run's records on one x axis: seconds since the
// first injection, up to the last thing any record saw.
type timeline struct {
	zero, end time.Time
}

func newTimeline(r *report.Result) timeline {
	var tl timeline
	see := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if tl.zero.IsZero() || t.Before(tl.zero) {
			tl.zero = t
		}
	}
	for _, m := range r.Messages {
		see(m.Queued)
	}
	if tl.zero.IsZero() { // nothing injected: start at the first thing seen
		for _, c := range r.Connections {
			see(c.Opened)
		}
		for _, q := range r.Queries {
			see(q.Arrived)
		}
	}
	if tl.zero.IsZero() {
		tl.zero = r.Started
	}
	last := func(t time.Time) {
		if t.After(tl.end) {
			tl.end = t
		}
	}
	last(tl.zero)
	for _, m := range r.Messages {
		last(m.Queued)
		last(m.Delivered)
	}
	for _, c := range r.Connections {
		last(c.Opened)
		last(c.Closed)
		last(c.Greeting)
		for _, ck := range c.Checks {
			last(ck.Start.Add(ck.Duration))
		}
	}
	for _, q := range r.Queries {
		last(q.Arrived.Add(q.Duration))
	}
	return tl
}

// x is t in seconds since the first injection.
func (tl timeline) x(t time.Time) float64 { return t.Sub(tl.zero).Seconds() }

// charts makes every chart the result has data for, in page order.
func charts(r *report.Result) ([]*chart, error) {
	tl := newTimeline(r)
	var out []*chart
	add := func(c *chart, err error) error {
		if err != nil {
			return err
		}
		if c != nil {
			out = append(out, c)
		}
		return nil
	}
	if err := add(phasesChart(r)); err != nil {
		return nil, fmt.Errorf("phases chart: %w", err)
	}
	if err := add(deliveriesChart(r, tl)); err != nil {
		return nil, fmt.Errorf("deliveries chart: %w", err)
	}
	if err := add(connectionsChart(r, tl)); err != nil {
		return nil, fmt.Errorf("connections chart: %w", err)
	}
	if err := add(dnsChart(r, tl)); err != nil {
		return nil, fmt.Errorf("DNS chart: %w", err)
	}
	lc, err := latencyCharts(r)
	if err != nil {
		return nil, fmt.Errorf("latency charts: %w", err)
	}
	return append(out, lc...), nil
}
