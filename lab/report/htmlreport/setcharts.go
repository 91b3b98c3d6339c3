// The charts of a set of runs (a --repeat folder) and of two sets side
// by side (lab compare): every figure's runs around a median, and each
// run's total time with 1999's beside it when the workload is 1999's.

package htmlreport

import (
	"fmt"
	"image/color"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/report/compare"
)

var (
	colSideA  = color.RGBA{R: 0x1f, G: 0x6f, B: 0xb4, A: 0xff}
	colSideB  = color.RGBA{R: 0xd9, G: 0x6c, B: 0x06, A: 0xff}
	col1999   = color.RGBA{R: 0x8e, G: 0x24, B: 0xaa, A: 0xff}
	colMedian = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
)

// side is one set of runs as a chart draws it.
type side struct {
	label string // "A", "B"; "" for the one set of a repeat page
	runs  []*report.Result
	col   color.Color
	glyph draw.GlyphDrawer
}

// spreadChart draws, for every figure, each run's value in percent of
// base's median of that figure (base is the first side: the set itself,
// or A in a comparison), one row a figure. A figure whose base median
// is 0 is drawn only where every value is 0 (at 100%); others have no
// percent to show and are named in the caption.
func spreadChart(id, title string, sides []side) (*chart, error) {
	stats, err := compare.Stats(sides[0].runs)
	if err != nil {
		return nil, err
	}
	median := map[string]float64{}
	var labels []string
	for _, s := range stats {
		median[s.Key] = s.Median
		labels = append(labels, s.Label)
	}
	row := func(i int) float64 { return float64(len(labels) - i) } // the first figure on top
	p := newPlot("each run's value, percent of "+possessive(sides[0].label)+"median", "")
	p.Y.Tick.Marker = plot.TickerFunc(func(_, _ float64) []plot.Tick {
		ts := make([]plot.Tick, len(labels))
		for i, l := range labels {
			ts[i] = plot.Tick{Value: row(i), Label: l}
		}
		return ts
	})
	p.Y.Label.Text = ""
	// An empty row on top holds the legend.
	p.Y.Min, p.Y.Max = 0.3, float64(len(labels))+1.7
	p.X.Min = math.Inf(1)
	var unplotted []string
	seen := map[string]bool{}
	lo, hi := 100.0, 100.0
	for si, sd := range sides {
		var xys plotter.XYs
		for _, r := range sd.runs {
			for _, f := range compare.Figures(r) {
				i := indexOf(stats, f.Key)
				if i < 0 {
					continue
				}
				m := median[f.Key]
				var pct float64
				switch {
				case m != 0:
					pct = 100 * f.Value / m
				case f.Value == 0:
					pct = 100
				default:
					if !seen[f.Key] {
						unplotted, seen[f.Key] = append(unplotted, f.Label), true
					}
					continue
				}
				lo, hi = min(lo, pct), max(hi, pct)
				// Sides sit a little apart in a row so their runs do
				// not hide each other.
				xys = append(xys, plotter.XY{X: pct, Y: row(i) + 0.18*float64(si) - 0.09*float64(len(sides)-1)})
			}
		}
		if len(xys) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = sd.col, sd.glyph, vg.Points(4.5)
		p.Add(sc)
		p.Legend.Add(fmt.Sprintf("%seach run (%d)", prefix(sd.label), len(sd.runs)), sc)
	}
	ref, err := plotter.NewLine(plotter.XYs{{X: 100, Y: p.Y.Min}, {X: 100, Y: p.Y.Max}})
	if err != nil {
		return nil, err
	}
	ref.Color, ref.Dashes = colMedian, []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(ref)
	p.Legend.Add(possessive(sides[0].label)+"median (100%)", ref)
	pad := max(5, (hi-lo)*0.08)
	p.X.Min, p.X.Max = math.Max(0, math.Floor(lo-pad)), math.Ceil(hi+pad)
	p.Legend.Top, p.Legend.Left = true, false
	h := vg.Length(len(labels)+1)*vg.Points(20) + vg.Inch
	svg, err := render(p, wideW, h)
	if err != nil {
		return nil, err
	}
	caption := "Each dot is one run's figure, in percent of " + possessive(sides[0].label) + "median of that figure: a tight row is a figure that repeats, a wide one is noise."
	if len(sides) > 1 {
		caption += " " + sides[1].label + "'s dots sit just below " + sides[0].label + "'s in each row."
	}
	if len(unplotted) > 0 {
		caption += fmt.Sprintf(" Not drawn, %smedian being 0 while a run's is not: %s.", possessive(sides[0].label), strings.Join(unplotted, ", "))
	}
	return &chart{ID: id, Title: title, Wide: true, SVG: svg, Caption: caption}, nil
}

// prefix is "A: " for side A, "" for the one set of a repeat page.
func prefix(label string) string {
	if label == "" {
		return ""
	}
	return label + ": "
}

// possessive is "A's " for side A, "the " for the one set.
func possessive(label string) string {
	if label == "" {
		return "the "
	}
	return label + "'s "
}

func indexOf(stats []compare.Stat, key string) int {
	for i, s := range stats {
		if s.Key == key {
			return i
		}
	}
	return -1
}

// totalTimeChart draws each run's total time in run order, a line a
// side at its median, and 1999's 65 s as a reference when every side
// ran the 1999 workload (scenario.Workload.Not1999).
func totalTimeChart(id string, sides []side) (*chart, error) {
	p := newPlot("run, in the order they ran", "total time, seconds")
	p.X.Min = 0.5
	most := 0
	is1999 := true
	for _, sd := range sides {
		most = max(most, len(sd.runs))
		var xys plotter.XYs
		var secs []float64
		for i, r := range sd.runs {
			xys = append(xys, plotter.XY{X: float64(i + 1), Y: r.Summary.TotalTime.Seconds()})
			secs = append(secs, r.Summary.TotalTime.Seconds())
			is1999 = is1999 && r.Scenario.Workload.Not1999() == ""
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = sd.col, sd.glyph, vg.Points(4)
		p.Add(sc)
		p.Legend.Add(prefix(sd.label)+"each run", sc)
		med := compare.Median(secs)
		ml, err := plotter.NewLine(plotter.XYs{{X: 0.5, Y: med}, {X: float64(len(sd.runs)) + 0.5, Y: med}})
		if err != nil {
			return nil, err
		}
		ml.Color, ml.Width, ml.Dashes = sd.col, vg.Points(1.2), []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(ml)
		p.Legend.Add(fmt.Sprintf("%smedian %s", prefix(sd.label), compare.Format(med, "s")), ml)
	}
	p.X.Max = float64(most) + 0.5
	entries := 2 * len(sides)
	caption := "Each run's time from the first injection to the last delivery, with the median as a dashed line."
	if ref, ok := compare.Figure1999("total_time_s"); ok && is1999 {
		l, err := plotter.NewLine(plotter.XYs{{X: 0.5, Y: ref}, {X: p.X.Max, Y: ref}})
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = col1999, vg.Points(1.6)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("1999: %.0f s (200 messages over a 28.8k modem)", ref), l)
		p.Y.Max = max(p.Y.Max, ref)
		entries++
		caption += " The solid purple line is 1999's total time for the same workload."
	} else {
		caption += " No 1999 line: the workload is not 1999's."
	}
	p.X.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		var ts []plot.Tick
		for i := 1; i <= most; i++ {
			ts = append(ts, plot.Tick{Value: float64(i), Label: fmt.Sprint(i)})
		}
		return ts
	})
	p.Y.Max = niceCeil(p.Y.Max * 1.05)
	makeRoom(p, entries)
	svg, err := render(p, narrowW, chartH)
	if err != nil {
		return nil, err
	}
	return &chart{ID: id, Title: "Total time, run by run", SVG: svg, Caption: caption}, nil
}
