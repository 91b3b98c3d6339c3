package htmlreport

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/plot/plotter"
)

// A line of 100,000 points is drawn from at most 4 points a bucket, and
// keeps its ends, its extremes and, for a cumulative count, its order.
func TestThinKeepsShape(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var cum, open plotter.XYs
	x, n, o := 0.0, 0.0, 0.0
	peak := 0.0
	for i := range 100_000 {
		x += rng.Float64()
		n++
		o = max(0, o+float64(rng.IntN(3)-1))
		if i == 54_321 {
			o = 500 // one spike
		}
		peak = max(peak, o)
		cum = append(cum, plotter.XY{X: x, Y: n})
		open = append(open, plotter.XY{X: x, Y: o})
	}
	for _, c := range []struct {
		name string
		in   plotter.XYs
	}{{"cumulative", cum}, {"open", open}} {
		out := thin(c.in, 1000)
		if len(out) > 4*1000 || len(out) < 1000 {
			t.Errorf("%s: %d points from %d, want 1000 to 4000", c.name, len(out), len(c.in))
		}
		if out[0] != c.in[0] || out[len(out)-1] != c.in[len(c.in)-1] {
			t.Errorf("%s: ends %v %v, want %v %v", c.name, out[0], out[len(out)-1], c.in[0], c.in[len(c.in)-1])
		}
		top := 0.0
		for i, p := range out {
			top = max(top, p.Y)
			if i > 0 && p.X < out[i-1].X {
				t.Fatalf("%s: point %d goes back in x", c.name, i)
			}
			if c.name == "cumulative" && i > 0 && p.Y < out[i-1].Y {
				t.Fatalf("%s: point %d goes down", c.name, i)
			}
		}
		if want := c.in[len(c.in)-1].Y; c.name == "cumulative" && top != want {
			t.Errorf("%s: top %v, want %v", c.name, top, want)
		}
		if c.name == "open" && top != peak {
			t.Errorf("%s: peak %v drawn as %v", c.name, peak, top)
		}
	}
	small := cum[:100]
	if got := thin(small, 1000); len(got) != len(small) {
		t.Errorf("a short line was thinned to %d points", len(got))
	}
}
