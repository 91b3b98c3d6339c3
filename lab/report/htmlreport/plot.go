// The drawing the charts share: counts over time as step lines, round
// ticks, room for the legend, and SVG to inline.

package htmlreport

import (
	"bytes"
	"html/template"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// thinBuckets is how many slices of the x axis a line keeps points in:
// about one per pixel of the widest chart.
const thinBuckets = 1000

// thin decimates a line of many points for drawing (a 100,000-message
// run has a point per message in its step lines): the x axis is cut in
// buckets equal slices, and each keeps its first point, the lowest, the
// highest and its last, in order. What is drawn is the same to the pixel
// (every step's extremes stay, the count at each bucket's edges is
// exact) and a line has at most 4*buckets points, whatever the run's
// size. The summary's figures are computed from every record, never
// from what is drawn. A line with few points is returned as it is.
func thin(xys plotter.XYs, buckets int) plotter.XYs {
	if len(xys) <= 4*buckets {
		return xys
	}
	lo, hi := xys[0].X, xys[len(xys)-1].X
	width := (hi - lo) / float64(buckets)
	if width <= 0 {
		width = 1
	}
	out := make(plotter.XYs, 0, 4*buckets+4)
	for i := 0; i < len(xys); {
		b := math.Floor((xys[i].X - lo) / width)
		j := i
		minAt, maxAt := i, i
		for j < len(xys) && math.Floor((xys[j].X-lo)/width) == b {
			if xys[j].Y < xys[minAt].Y {
				minAt = j
			}
			if xys[j].Y > xys[maxAt].Y {
				maxAt = j
			}
			j++
		}
		keep := []int{i, minAt, maxAt, j - 1}
		slices.Sort(keep)
		for k, at := range keep {
			if k == 0 || at != keep[k-1] {
				out = append(out, xys[at])
			}
		}
		i = j
	}
	return out
}

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
	l, err := plotter.NewLine(thin(xys, thinBuckets))
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
