package htmlreport

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

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

// step is one change of a count at a time.
type step struct {
	at    float64
	delta int
}

// steps turns changes into a count over [0, end], as points for a
// post-step line: the count holds from each point to the next.
func steps(changes []step, end float64) plotter.XYs {
	slices.SortStableFunc(changes, func(a, b step) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	xys := plotter.XYs{{X: 0, Y: 0}}
	n := 0
	for _, c := range changes {
		n += c.delta
		if last := &xys[len(xys)-1]; last.X == c.at {
			last.Y = float64(n) // several changes at one instant: one point
			continue
		}
		xys = append(xys, plotter.XY{X: c.at, Y: float64(n)})
	}
	if xys[len(xys)-1].X < end {
		xys = append(xys, plotter.XY{X: end, Y: float64(n)})
	}
	return xys
}

// interval adds one thing that was there from a to b.
func interval(changes []step, a, b float64) []step {
	return append(changes, step{a, +1}, step{b, -1})
}

func stepLine(xys plotter.XYs, c color.Color, dashed bool) (*plotter.Line, error) {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	l.StepStyle = plotter.PostStep
	l.Color = c
	l.Width = vg.Points(1.6)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	return l, nil
}

// series is one counted line of a chart.
type series struct {
	label   string
	changes []step
	col     color.Color
	dashed  bool
}

// addSeries draws each series that has data, with its legend entry.
func addSeries(p *plot.Plot, all []series, end float64) error {
	entries := 0
	for _, s := range all {
		if len(s.changes) == 0 {
			continue
		}
		l, err := stepLine(steps(s.changes, end), s.col, s.dashed)
		if err != nil {
			return err
		}
		p.Add(l)
		p.Legend.Add(s.label, l)
		entries++
	}
	makeRoom(p, entries)
	return nil
}

// makeRoom raises the top of the y axis so the legend, in the top left
// corner, sits above the curves rather than on them.
func makeRoom(p *plot.Plot, entries int) {
	if entries == 0 || p.Y.Max <= 0 {
		return
	}
	legend := float64(entries)*(legendFont+1) + 6 // points
	area := chartH.Points() - 70                  // less the x axis and margins
	p.Y.Max = niceCeil(p.Y.Max / (1 - min(legend/area, 0.6)))
}

// niceStep is the 1, 2 or 5 times a power of ten nearest above span/n:
// the step of about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

// niceCeil rounds v up to a whole number of ticks.
func niceCeil(v float64) float64 {
	step := niceStep(v, 20)
	return math.Ceil(v/step-1e-9) * step
}

// ticks labels about five round values and marks the halves between
// them, with no more decimals than the step needs ("0.5", "10", not
// "10.00").
var ticks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	step := niceStep(hi-lo, 5)
	prec := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	var ts []plot.Tick
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi+step*1e-9; i++ {
		v := i * step
		if v == 0 {
			v = 0 // not -0
		}
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
		if h := v + step/2; h <= hi {
			ts = append(ts, plot.Tick{Value: h})
		}
	}
	return ts
})

func newPlot(xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.X.Min, p.Y.Min = 0, 0
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks, ticks
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.ThumbnailWidth = vg.Points(18)
	p.Legend.TextStyle.Font.Size = legendFont
	p.Add(plotter.NewGrid())
	return p
}

// render draws p as SVG for inlining: no XML prolog, which HTML does
// not want inside a page.
func render(p *plot.Plot, w, h vg.Length) (template.HTML, error) {
	c := vgsvg.New(w, h)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", err
	}
	svg := b.Bytes()
	if i := bytes.Index(svg, []byte("<svg")); i >= 0 {
		svg = svg[i:]
	}
	return template.HTML(svg), nil
}

const secondsAxis = "seconds since the first injection"

// deliveriesChart: how many messages were queued and delivered by each
// moment.
func deliveriesChart(r *report.Result, tl timeline) (*chart, error) {
	var queued, delivered []step
	nDelivered := 0
	for _, m := range r.Messages {
		queued = append(queued, step{tl.x(m.Queued), 1})
		if !m.Delivered.IsZero() {
			delivered = append(delivered, step{tl.x(m.Delivered), 1})
			nDelivered++
		}
	}
	if len(queued) == 0 {
		return nil, nil
	}
	end := tl.x(tl.end)
	p := newPlot(secondsAxis, "messages")
	qLine, err := stepLine(steps(queued, end), colInjected, true)
	if err != nil {
		return nil, err
	}
	dLine, err := stepLine(steps(delivered, end), colDelivered, false)
	if err != nil {
		return nil, err
	}
	p.Add(qLine, dLine)
	p.Legend.Add("injected (queued by sendmail)", qLine)
	p.Legend.Add("delivered (first copy in the Maildir)", dLine)
	makeRoom(p, 2)
	svg, err := render(p, wideW, chartH)
	if err != nil {
		return nil, err
	}
	return &chart{
		ID: "chart-deliveries", Title: "Deliveries over time", Wide: true, SVG: svg,
		Caption: fmt.Sprintf("Cumulative count of the %d injected messages and of the %d that reached the Maildir. "+
			"The horizontal gap between the two curves is the delivery latency; a flat delivered curve is the receiver or the sender waiting.",
			len(queued), nDelivered),
	}, nil
}

// connectionsChart: connections open at each moment, per side.
func connectionsChart(r *report.Result, tl timeline) (*chart, error) {
	end := tl.x(tl.end)
	byRole := map[string][]step{}
	stillOpen := map[string]int{}
	for _, c := range r.Connections {
		if c.Opened.IsZero() {
			continue
		}
		if c.Closed.IsZero() { // open to the end: it never closes on the chart
			stillOpen[c.Role]++
			byRole[c.Role] = append(byRole[c.Role], step{tl.x(c.Opened), +1})
			continue
		}
		byRole[c.Role] = interval(byRole[c.Role], tl.x(c.Opened), tl.x(c.Closed))
	}
	if len(byRole) == 0 {
		return nil, nil
	}
	p := newPlot(secondsAxis, "connections open")
	if err := addSeries(p, []series{
		{"sender (Courier S) connections", byRole["sender"], colSender, true},
		{"receiver (Courier R) sessions", byRole["receiver"], colReceiver, false},
	}, end); err != nil {
		return nil, err
	}
	svg, err := render(p, wideW, chartH)
	if err != nil {
		return nil, err
	}
	caption := "Connections open at each moment, as each side logged them (opened to closed)."
	if n := stillOpen["sender"] + stillOpen["receiver"]; n > 0 {
		caption += fmt.Sprintf(" %d sender and %d receiver connections were still open when the run ended; they are drawn open to the end.",
			stillOpen["sender"], stillOpen["receiver"])
	}
	return &chart{ID: "chart-connections", Title: "Open connections", Wide: true, SVG: svg, Caption: caption}, nil
}

// dnsChart: DNS queries in flight at the stub, and with a line, where
// they were.
func dnsChart(r *report.Result, tl timeline) (*chart, error) {
	end := tl.x(tl.end)
	var inFlight, waiting, onLine, faulted []step
	answered := map[int]bool{}
	for _, q := range r.Queries {
		answered[q.Seq] = true
		a := tl.x(q.Arrived)
		inFlight = interval(inFlight, a, a+q.Duration.Seconds())
		if q.Fault != "" {
			faulted = interval(faulted, a, a+q.Duration.Seconds())
		}
		if q.OnLine > 0 || q.QueueWait > 0 {
			w := a + q.QueueWait.Seconds()
			waiting = interval(waiting, a, w)
			onLine = interval(onLine, w, w+q.OnLine.Seconds())
		}
	}
	held := 0 // queries a fault still held when the events were read
	for _, f := range r.Faults {
		if f.Role != "dns" || f.Seq == 0 || answered[f.Seq] {
			continue
		}
		answered[f.Seq] = true
		held++
		from := tl.x(f.Time)
		if until := tl.x(f.Time.Add(f.Duration)); f.Duration > 0 && until < end {
			inFlight = interval(inFlight, from, until)
			faulted = interval(faulted, from, until)
			continue
		}
		inFlight = append(inFlight, step{from, +1}) // held past the end
		faulted = append(faulted, step{from, +1})
	}
	if len(inFlight) == 0 {
		return nil, nil
	}
	p := newPlot(secondsAxis, "DNS queries")
	all := []series{{"in flight at the stub (arrived, not yet answered)", inFlight, colInFlight, false}}
	line := r.Scenario.DNS.Line.Enabled
	if line {
		all = append(all,
			series{"waiting for the line (queue time, placed first)", waiting, colWaiting, true},
			series{"crossing the line (placed after the wait)", onLine, colOnLine, true})
	}
	all = append(all, series{"hit by a fault", faulted, colFaulted, false})
	if err := addSeries(p, all, end); err != nil {
		return nil, err
	}
	svg, err := render(p, wideW, chartH)
	if err != nil {
		return nil, err
	}
	caption := fmt.Sprintf("Queries the DNS stub had received and not yet answered, at each moment (%d queries). ", len(r.Queries)+held)
	if line {
		l := r.Scenario.DNS.Line
		caption += fmt.Sprintf("The stub sat behind a simulated %d bit/s line (%s latency). "+
			"It records each query's total wait for the line and total time on it, both directions summed, not when they happened; "+
			"the chart places the wait at the query's arrival and the crossing right after it, so those two curves are approximate. "+
			"The in-flight curve is exact.", l.BitsPerSecond, l.Latency)
	} else {
		caption += "This run had no DNS line, so there is no wait for one to show."
	}
	if held > 0 {
		caption += fmt.Sprintf(" %s held by a fault still unanswered when the run ended: in flight until its hold ends or the run does.", plural(held, "query", "queries"))
	}
	return &chart{ID: "chart-dns", Title: "DNS queries in flight", Wide: true, SVG: svg, Caption: caption}, nil
}

// latencyCharts: the delivery latency of every delivered message, as a
// histogram and as a cumulative distribution.
func latencyCharts(r *report.Result) ([]*chart, error) {
	var lat []float64
	for _, m := range r.Messages {
		if !m.Delivered.IsZero() {
			lat = append(lat, m.Latency.Seconds())
		}
	}
	if len(lat) == 0 {
		return nil, nil
	}
	slices.Sort(lat)

	hp := newPlot("delivery latency, seconds", "messages")
	hp.Legend.Top, hp.Legend.Left = true, false
	bins := min(40, max(5, len(lat)/5))
	vals := make(plotter.Values, len(lat))
	copy(vals, lat)
	h, err := plotter.NewHist(vals, bins)
	if err != nil {
		return nil, err
	}
	h.FillColor = colBars
	h.LineStyle.Color = color.White
	hp.Add(h)
	hp.Y.Max = niceCeil(hp.Y.Max * 1.05)
	hsvg, err := render(hp, narrowW, chartH)
	if err != nil {
		return nil, err
	}

	cp := newPlot("delivery latency, seconds", "share of delivered messages")
	cp.Y.Max = 1
	xys := make(plotter.XYs, 0, len(lat)+1)
	xys = append(xys, plotter.XY{X: 0, Y: 0})
	for i, v := range lat {
		xys = append(xys, plotter.XY{X: v, Y: float64(i+1) / float64(len(lat))})
	}
	l, err := stepLine(xys, colDelivered, false)
	if err != nil {
		return nil, err
	}
	cp.Add(l)
	csvg, err := render(cp, narrowW, chartH)
	if err != nil {
		return nil, err
	}
	s := r.Summary.Latency
	return []*chart{
		{ID: "chart-latency-histogram", Title: "Delivery latency", SVG: hsvg,
			Caption: fmt.Sprintf("Injection to first copy in the Maildir, %d delivered messages in %d bins.", len(lat), bins)},
		{ID: "chart-latency-cdf", Title: "Delivery latency, cumulative", SVG: csvg,
			Caption: fmt.Sprintf("Share of delivered messages at or under each latency: p50 %s, p90 %s, p99 %s, max %s.",
				secs(s.P50), secs(s.P90), secs(s.P99), secs(s.Max))},
	}, nil
}

// phaseLabels say in a few words what each phase is; a phase inside
// another (report.PhaseInside) is labelled "of which".
var phaseLabels = map[string]string{
	"dns":       "receiver's DNS checks",
	"dns_line":  "  of which on the DNS line",
	"ident":     "IDENT lookup",
	"mail_rcpt": "MAIL and RCPT",
	"mailfrom":  "  of which MAIL FROM lookup",
	"data":      "DATA",
	"disk":      "  of which Maildir write",
}

// phases lists Summary.Phases in report.PhaseOrder, then any others by name.
func phases(s report.Summary) []string {
	var names []string
	for _, n := range report.PhaseOrder {
		if _, ok := s.Phases[n]; ok {
			names = append(names, n)
		}
	}
	var rest []string
	for n := range s.Phases {
		if !slices.Contains(report.PhaseOrder, n) {
			rest = append(rest, n)
		}
	}
	slices.Sort(rest)
	return append(names, rest...)
}

func phaseLabel(name string) string {
	if l, ok := phaseLabels[name]; ok {
		return l
	}
	return name
}

// phasesChart: total time per phase, summed over every connection.
func phasesChart(r *report.Result) (*chart, error) {
	names := phases(r.Summary)
	if len(names) == 0 {
		return nil, nil
	}
	// Horizontal bars are drawn bottom up; reverse so the first phase is
	// on top.
	vals := make(plotter.Values, len(names))
	labels := make([]string, len(names))
	for i, n := range names {
		j := len(names) - 1 - i
		vals[j] = r.Summary.Phases[n].Total.Seconds()
		labels[j] = phaseLabel(n) + "\u00a0\u00a0" // a gap before the bar; SVG keeps no-break spaces
	}
	p := plot.New()
	p.X.Label.Text = "seconds, summed over all connections"
	p.X.Tick.Marker = ticks
	p.Add(plotter.NewGrid())
	bars, err := plotter.NewBarChart(vals, vg.Points(16))
	if err != nil {
		return nil, err
	}
	bars.Horizontal = true
	bars.Color = colBars
	bars.LineStyle.Width = 0
	p.Add(bars)
	// Each bar's total at its end, so a short bar still says how short.
	xys := make(plotter.XYs, len(vals))
	texts := make([]string, len(vals))
	for i, v := range vals {
		xys[i] = plotter.XY{X: v, Y: float64(i)}
		texts[i] = secs(time.Duration(v * float64(time.Second)))
	}
	values, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return nil, err
	}
	for i := range values.TextStyle {
		values.TextStyle[i].YAlign = text.YCenter
		values.TextStyle[i].Font.Size = legendFont
	}
	values.Offset = vg.Point{X: vg.Points(4)}
	p.Add(values)
	p.NominalY(labels...)
	p.X.Min = 0
	p.X.Max = niceCeil(slices.Max(vals) * 1.12) // room for the totals
	h := max(chartH/2, vg.Points(40+24*float64(len(names))))
	svg, err := render(p, wideW, h)
	if err != nil {
		return nil, err
	}
	return &chart{
		ID: "chart-phases", Title: "Where the time went, per phase", Wide: true, SVG: svg,
		Caption: "Total time in each phase of a delivery, added up over every connection and message. " +
			"Connections overlap, so totals can exceed the run's length; the DNS line's time is part of the DNS checks' time, not added to it. " +
			"The table below gives counts and percentiles.",
	}, nil
}

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
