package htmlreport

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot/plotter"

	"github.com/smtplab/smtplab/lab/report"
)

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
