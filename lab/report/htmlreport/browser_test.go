package htmlreport

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/smtplab/smtplab/lab/report/htmlreport/pagetest"
)

// The browser tests open the pages in headless Chromium (pagetest).

func TestPageInChromium(t *testing.T) {
	ctx := pagetest.Browser(t)
	for _, tc := range []struct {
		name     string
		file     string
		complete bool
		charts   int
	}{
		{"courier-1999", courierResult, true, len(allCharts)},
		{"fast", fastResult, true, len(allCharts)},
		{"incomplete", fastResult, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := load(t, tc.file)
			if !tc.complete {
				r.Complete, r.Error = false, "start receiver: container exited (code 1)"
			}
			r.Dir = t.TempDir()
			if err := WriteFile(r); err != nil {
				t.Fatal(err)
			}
			pagetest.Check(t, ctx, filepath.Join(r.Dir, "report.html"), tc.name, tc.charts)
		})
	}
}

// TestBlankChartsAreCaught shows the per-chart check can fail: the
// same page with every chart's <svg> emptied (its size kept), or with
// the series drawn in colour taken out (axes, grid and text kept), has
// every chart reported.
func TestBlankChartsAreCaught(t *testing.T) {
	ctx := pagetest.Browser(t)
	r := load(t, courierResult)
	r.Dir = t.TempDir()
	if err := WriteFile(r); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(r.Dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	svgContent := regexp.MustCompile(`(?s)(<svg[^>]*>).*?</svg>`)
	svgPath := regexp.MustCompile(`<path [^>]*/>`)
	colourStyle := regexp.MustCompile(`(fill|stroke):#([0-9A-Fa-f]{6})`)
	for _, tc := range []struct {
		name   string
		change func(string) string
	}{
		{"empty svg", func(p string) string { return svgContent.ReplaceAllString(p, "$1</svg>") }},
		{"axes only", func(p string) string {
			return svgPath.ReplaceAllStringFunc(p, func(path string) string {
				for _, m := range colourStyle.FindAllStringSubmatch(path, -1) {
					if c := strings.ToUpper(m[2]); c != "000000" && c != "FFFFFF" && c != "808080" {
						return "" // a series, or its legend thumbnail
					}
				}
				return path
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := tc.change(string(page))
			if changed == string(page) {
				t.Fatal("the change left the page as it was")
			}
			path := filepath.Join(r.Dir, strings.ReplaceAll(tc.name, " ", "-")+".html")
			if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
				t.Fatal(err)
			}
			tab, _ := pagetest.Visit(t, ctx, path)
			problems := strings.Join(pagetest.BlankCharts(t, tab, allCharts), "\n")
			for _, id := range allCharts {
				if !strings.Contains(problems, "chart "+id+" ") {
					t.Errorf("chart %s not reported blank; reported:\n%s", id, problems)
				}
			}
		})
	}
}

// TestBrokenPageIsCaught shows the checks above can fail: a page that
// logs an error, throws and loads a missing image is reported three
// times over.
func TestBrokenPageIsCaught(t *testing.T) {
	ctx := pagetest.Browser(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "broken.html")
	const broken = `<!DOCTYPE html><html><body><p>broken</p>
<img src="missing.png" alt="">
<script>console.error("canary"); throw new Error("boom");</script>
</body></html>`
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, pe := pagetest.Visit(t, ctx, path)
	// The image fails to load on its own time; wait for its entry, within
	// the test's deadline, rather than for a fixed while.
	wait, cancel := context.WithTimeout(tab, 2*time.Minute)
	defer cancel()
	for kinds := seen(pe.All()); !(kinds["console"] && kinds["exception"] && kinds["log"]); kinds = seen(pe.All()) {
		if err := chromedp.Do(wait, chromedp.Sleep(50*time.Millisecond)); err != nil {
			t.Fatalf("reported %q; want a console error, an exception and a log error: %v", pe.All(), err)
		}
	}
}

// seen says which kinds of error were reported.
func seen(errs []string) map[string]bool {
	kinds := map[string]bool{}
	for _, e := range errs {
		switch {
		case strings.HasPrefix(e, "console.error: ") && strings.Contains(e, "canary"):
			kinds["console"] = true
		case strings.HasPrefix(e, "uncaught exception") && strings.Contains(e, "boom"):
			kinds["exception"] = true
		case strings.HasPrefix(e, "log "):
			kinds["log"] = true
		}
	}
	return kinds
}
