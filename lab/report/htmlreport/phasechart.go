package htmlreport

import (
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"

	"github.com/smtplab/smtplab/lab/report"
)

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
