package htmlreport

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/smtplab/smtplab/lab/labtest"
)

// The browser tests open the page in headless Chromium, as a reader
// would open report.html from disk.
//
// Without a chromium binary they skip, unless SMTPLAB_REQUIRE_CHROMIUM=1
// (CI sets it): then they fail. SMTPLAB_SCREENSHOT_DIR, when set, gets a
// copy of each screenshot to look at after the test.

// browser starts headless Chromium for the test and stops it when the
// test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := labtest.Tool(t, "chromium", labtest.ChromiumEnv)
	// A guard against a hung browser, not a speed: a test's pages take
	// seconds on a quiet machine and minutes with both cores busy.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root in containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser() // closes the browser and waits for it
		cancelAlloc()
		cancel()
	})
	if err := chromedp.Do(bctx); err != nil { // start it now, so a failure is about the browser
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return bctx
}

// pageErrors collects what a page reports as broken: console.error
// calls, uncaught exceptions and error entries of the browser's log
// (such as a resource that failed to load).
type pageErrors struct {
	mu   sync.Mutex
	list []string
}

func (pe *pageErrors) listen(ctx context.Context) error {
	return chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				msg = "console.error:"
				for _, a := range ev.Args {
					msg += fmt.Sprintf(" %s%s", a.Value, a.Description)
				}
			}
		case *runtime.EventExceptionThrown:
			msg = "uncaught exception: " + ev.ExceptionDetails.Text
			if e := ev.ExceptionDetails.Exception; e != nil {
				msg += " " + e.Description
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				msg = fmt.Sprintf("log %s error: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
		if msg != "" {
			pe.mu.Lock()
			pe.list = append(pe.list, msg)
			pe.mu.Unlock()
		}
	})
}

func (pe *pageErrors) all() []string {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	return append([]string(nil), pe.list...)
}

// visit opens the file in a new tab of the browser and returns the tab
// and the errors it reports.
func visit(t *testing.T, browserCtx context.Context, path string) (context.Context, *pageErrors) {
	t.Helper()
	tab, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	pe := &pageErrors{}
	if err := pe.listen(tab); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate("file://"+path)); err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return tab, pe
}

type box struct {
	ID     string  `json:"id"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
}

const chartBoxes = `Array.from(document.querySelectorAll("svg")).map(s => {
	const r = s.getBoundingClientRect();
	const f = s.closest("figure");
	return {id: f ? f.id : "", width: r.width, height: r.height};
})`

func TestPageInChromium(t *testing.T) {
	ctx := browser(t)
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
			tab, pe := visit(t, ctx, filepath.Join(r.Dir, "report.html"))

			boxes, err := chromedp.Run(tab, chromedp.Evaluate[[]box](chartBoxes))
			if err != nil {
				t.Fatal(err)
			}
			if len(boxes) != tc.charts {
				t.Errorf("%d <svg> in the page, want %d", len(boxes), tc.charts)
			}
			var ids []string
			for _, b := range boxes {
				if b.Width <= 0 || b.Height <= 0 || b.ID == "" {
					t.Errorf("chart %q has a %gx%g box", b.ID, b.Width, b.Height)
				}
				ids = append(ids, b.ID)
			}
			// A box says nothing of what is in it: each chart's own
			// screenshot must show ink, some of it in a series' colour.
			for _, p := range blankCharts(t, tab, ids) {
				t.Error(p)
			}

			shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100)) // 100: PNG
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), tc.name+".png")
			if err := os.WriteFile(path, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", path)
			if dir := os.Getenv("SMTPLAB_SCREENSHOT_DIR"); dir != "" {
				if err := os.WriteFile(filepath.Join(dir, tc.name+".png"), shot, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			img, err := png.Decode(bytes.NewReader(shot))
			if err != nil {
				t.Fatalf("screenshot is not a PNG: %v", err)
			}
			inked, total := inkedPixels(img, color.White)
			// Text, tables and charts cover well over 2% of a page;
			// a blank or unstyled-white page covers none.
			if share := float64(inked) / float64(total); share < 0.02 {
				t.Errorf("screenshot %s is nearly blank: %d of %d pixels (%.2f%%) differ from the background", path, inked, total, 100*share)
			}

			for _, e := range pe.all() {
				t.Errorf("page reported: %s", e)
			}
		})
	}
}

// TestBlankChartsAreCaught shows the per-chart check can fail: the
// same page with every chart's <svg> emptied (its size kept), or with
// the series drawn in colour taken out (axes, grid and text kept), has
// every chart reported.
func TestBlankChartsAreCaught(t *testing.T) {
	ctx := browser(t)
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
			tab, _ := visit(t, ctx, path)
			problems := strings.Join(blankCharts(t, tab, allCharts), "\n")
			for _, id := range allCharts {
				if !strings.Contains(problems, "chart "+id+" ") {
					t.Errorf("chart %s not reported blank; reported:\n%s", id, problems)
				}
			}
		})
	}
}

// Least shares of a chart's pixels that must be inked, and inked in a
// series' colour. An empty <svg> inks none; axes, ticks and labels alone
// ink 3-6% of a chart but nothing in colour, while the series of the
// testdata's charts put 0.9-17% in colour. A legend's thumbnails alone
// make about 0.03%.
const (
	minChartInk    = 0.02
	minChartColour = 0.002
)

// blankCharts screenshots each chart's <svg> on its own and says which
// look empty: too little ink on the white background, or too little of
// it in colour (the axes and text are black and grey; every chart draws
// at least one series in colour).
func blankCharts(t *testing.T, tab context.Context, ids []string) []string {
	t.Helper()
	var problems []string
	for _, id := range ids {
		shot, err := chromedp.Run(tab, chromedp.Screenshot(chromedp.CSS("#"+id+" svg")))
		if err != nil {
			t.Fatalf("screenshot chart %s: %v", id, err)
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatalf("chart %s screenshot is not a PNG: %v", id, err)
		}
		inked, total := inkedPixels(img, color.White)
		coloured := colouredPixels(img)
		ink, colour := float64(inked)/float64(total), float64(coloured)/float64(total)
		t.Logf("chart %s: %dx%d, %.2f%% inked, %.2f%% in colour", id, img.Bounds().Dx(), img.Bounds().Dy(), 100*ink, 100*colour)
		switch {
		case ink < minChartInk:
			problems = append(problems, fmt.Sprintf("chart %s looks empty: %.2f%% of its pixels inked, want at least %.0f%%", id, 100*ink, 100*minChartInk))
		case colour < minChartColour:
			problems = append(problems, fmt.Sprintf("chart %s shows no series: %.2f%% of its pixels in colour, want at least %.1f%%", id, 100*colour, 100*minChartColour))
		}
	}
	return problems
}

// TestBrokenPageIsCaught shows the checks above can fail: a page that
// logs an error, throws and loads a missing image is reported three
// times over.
func TestBrokenPageIsCaught(t *testing.T) {
	ctx := browser(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "broken.html")
	const broken = `<!DOCTYPE html><html><body><p>broken</p>
<img src="missing.png" alt="">
<script>console.error("canary"); throw new Error("boom");</script>
</body></html>`
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, pe := visit(t, ctx, path)
	// The image fails to load on its own time; wait for its entry, within
	// the test's deadline, rather than for a fixed while.
	wait, cancel := context.WithTimeout(tab, 2*time.Minute)
	defer cancel()
	for kinds := seen(pe.all()); !(kinds["console"] && kinds["exception"] && kinds["log"]); kinds = seen(pe.all()) {
		if err := chromedp.Do(wait, chromedp.Sleep(50*time.Millisecond)); err != nil {
			t.Fatalf("reported %q; want a console error, an exception and a log error: %v", pe.all(), err)
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

// inkedPixels counts the pixels that differ from the background by more
// than a faint tint.
func inkedPixels(img image.Image, bg color.Color) (inked, total int) {
	br, bgg, bb, _ := bg.RGBA()
	far := func(a, b uint32) bool { return max(a, b)-min(a, b) > 0x1000 } // about 6%
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if far(r, br) || far(g, bgg) || far(b, bb) {
				inked++
			}
		}
	}
	return inked, bounds.Dx() * bounds.Dy()
}

// colouredPixels counts the pixels of a clear hue, not black, white or
// grey (text and axes, antialiased, stay grey).
func colouredPixels(img image.Image) int {
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if max(r, g, b)-min(r, g, b) > 0x2000 { // about 12%
				n++
			}
		}
	}
	return n
}

func TestInkedPixels(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 10, 10))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	if n, total := inkedPixels(img, color.White); n != 0 || total != 100 {
		t.Errorf("white image: %d of %d inked, want 0 of 100", n, total)
	}
	img.Set(1, 1, color.Black)
	img.Set(2, 2, color.RGBA{R: 0xf8, G: 0xf8, B: 0xf8, A: 0xff}) // a faint tint is background
	img.Set(3, 3, color.RGBA{R: 0x1f, G: 0x6f, B: 0xb4, A: 0xff})
	if n, _ := inkedPixels(img, color.White); n != 2 {
		t.Errorf("%d inked pixels, want 2", n)
	}
}
