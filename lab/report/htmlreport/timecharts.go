// The charts over the run's time: deliveries, open connections and DNS
// queries in flight.

package htmlreport

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/topology"
)

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
	entries := 2
	caption := fmt.Sprintf("Cumulative count of the %d injected messages and of the %d that reached the Maildir. "+
		"The horizontal gap between the two curves is the delivery latency; a flat delivered curve is the receiver or the sender waiting.",
		len(queued), nDelivered)
	if why := r.Scenario.Workload.Not1999(); why == "" {
		ref, err := mark1999(p)
		if err != nil {
			return nil, err
		}
		p.Legend.Add("1999: "+ref, &plotter.Line{LineStyle: draw.LineStyle{Color: col1999, Width: vg.Points(1.2), Dashes: dash1999}})
		entries++
		caption += " The purple mark is where 1999's run of the same workload ended: " + ref + "."
	} else {
		caption += " No 1999 mark: " + why + "."
	}
	makeRoom(p, entries)
	svg, err := render(p, wideW, chartH)
	if err != nil {
		return nil, err
	}
	return &chart{ID: "chart-deliveries", Title: "Deliveries over time", Wide: true, SVG: svg, Caption: caption}, nil
}

var dash1999 = []vg.Length{vg.Points(2), vg.Points(2)}

// mark1999 draws where 1999's run ended (report.Seed1999: 196 messages
// delivered 65 s after the first injection) as a ring with dotted
// lines to both axes, widening the axes to hold it; it returns what the
// mark stands for, for the legend and the caption.
func mark1999(p *plot.Plot) (string, error) {
	s := report.Seed1999
	x, y := s.TotalTime.Seconds(), float64(s.Delivered)
	lines, err := plotter.NewLine(plotter.XYs{{X: 0, Y: y}, {X: x, Y: y}, {X: x, Y: 0}})
	if err != nil {
		return "", err
	}
	lines.Color, lines.Width, lines.Dashes = col1999, vg.Points(1.2), dash1999
	ring, err := plotter.NewScatter(plotter.XYs{{X: x, Y: y}})
	if err != nil {
		return "", err
	}
	ring.GlyphStyle = draw.GlyphStyle{Color: col1999, Radius: vg.Points(5), Shape: draw.RingGlyph{}}
	p.Add(lines, ring)
	p.X.Max, p.Y.Max = max(p.X.Max, x*1.02), max(p.Y.Max, y)
	return fmt.Sprintf("%d of %d delivered at %s", s.Delivered, s.Injected, secs(s.TotalTime)), nil
}

// connectionsChart: connections open at each moment, per side.
func connectionsChart(r *report.Result, tl timeline) (*chart, error) {
	end := tl.x(tl.end)
	byRole := map[topology.Role][]step{}
	stillOpen := map[topology.Role]int{}
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
		{"sender (Courier S) connections", byRole[topology.Sender], colSender, true},
		{"receiver (Courier R) sessions", byRole[topology.Receiver], colReceiver, false},
	}, end); err != nil {
		return nil, err
	}
	svg, err := render(p, wideW, chartH)
	if err != nil {
		return nil, err
	}
	caption := "Connections open at each moment, as each side logged them (opened to closed)."
	if n := stillOpen[topology.Sender] + stillOpen[topology.Receiver]; n > 0 {
		caption += fmt.Sprintf(" %d sender and %d receiver connections were still open when the run ended; they are drawn open to the end.",
			stillOpen[topology.Sender], stillOpen[topology.Receiver])
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
		if f.Role != topology.DNS || f.Seq == 0 || answered[f.Seq] {
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
