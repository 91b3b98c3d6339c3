// Package pagetest opens the lab's HTML pages in headless Chromium, as
// a reader would open them from disk, for tests: what the page reports
// as broken, the boxes of its charts, whether each chart shows ink, and
// the links it holds.
//
// Without a chromium binary the tests skip, unless
// SMTPLAB_REQUIRE_CHROMIUM=1 (CI sets it): then they fail.
// SMTPLAB_SCREENSHOT_DIR, when set, gets a copy of each screenshot Shot
// takes, to look at after the test.
package pagetest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/smtplab/smtplab/lab/labtest"
)

// Browser starts headless Chromium for the test and stops it when the
// test ends.
func Browser(t *testing.T) context.Context {
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
		// Chromium makes a folder for its singleton socket in TMPDIR and
		// leaves it when it is stopped: in the test's own folder, it goes
		// with the test.
		chromedp.Env("TMPDIR="+t.TempDir()),
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

// Errors collects what a page reports as broken: console.error
// calls, uncaught exceptions and error entries of the browser's log
// (such as a resource that failed to load).
type Errors struct {
	mu   sync.Mutex
	list []string
}

func (pe *Errors) listen(ctx context.Context) error {
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

func (pe *Errors) All() []string {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	return append([]string(nil), pe.list...)
}

// Visit opens the file in a new tab of the browser and returns the tab
// and the errors it reports.
func Visit(t *testing.T, browserCtx context.Context, path string) (context.Context, *Errors) {
	t.Helper()
	tab, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	pe := &Errors{}
	if err := pe.listen(tab); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate("file://"+path)); err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return tab, pe
}

type Box struct {
	ID     string  `json:"id"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
}

const chartBoxesJS = `Array.from(document.querySelectorAll("svg")).map(s => {
	const r = s.getBoundingClientRect();
	const f = s.closest("figure");
	return {id: f ? f.id : "", width: r.width, height: r.height};
})`

// Least shares of a chart's pixels that must be inked, and inked in a
// series' colour. An empty <svg> inks none; axes, ticks and labels alone
// ink 3-6% of a chart but nothing in colour, while the series of the
// testdata's charts put 0.9-17% in colour. A legend's thumbnails alone
// make about 0.03%.
const (
	MinChartInk    = 0.02
	MinChartColour = 0.002
)

// BlankCharts screenshots each chart's <svg> on its own and says which
// look empty: too little ink on the white background, or too little of
// it in colour (the axes and text are black and grey; every chart draws
// at least one series in colour).
func BlankCharts(t *testing.T, tab context.Context, ids []string) []string {
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
		inked, total := InkedPixels(img, color.White)
		coloured := ColouredPixels(img)
		ink, colour := float64(inked)/float64(total), float64(coloured)/float64(total)
		t.Logf("chart %s: %dx%d, %.2f%% inked, %.2f%% in colour", id, img.Bounds().Dx(), img.Bounds().Dy(), 100*ink, 100*colour)
		switch {
		case ink < MinChartInk:
			problems = append(problems, fmt.Sprintf("chart %s looks empty: %.2f%% of its pixels inked, want at least %.0f%%", id, 100*ink, 100*MinChartInk))
		case colour < MinChartColour:
			problems = append(problems, fmt.Sprintf("chart %s shows no series: %.2f%% of its pixels in colour, want at least %.1f%%", id, 100*colour, 100*MinChartColour))
		}
	}
	return problems
}

// InkedPixels counts the pixels that differ from the background by more
// than a faint tint.
func InkedPixels(img image.Image, bg color.Color) (inked, total int) {
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

// ColouredPixels counts the pixels of a clear hue, not black, white or
// grey (text and axes, antialiased, stay grey).
func ColouredPixels(img image.Image) int {
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

// Charts lists the page's inline charts: each <svg>'s box and the id of
// the <figure> around it.
func Charts(t *testing.T, tab context.Context) []Box {
	t.Helper()
	boxes, err := chromedp.Run(tab, chromedp.Evaluate[[]Box](chartBoxesJS))
	if err != nil {
		t.Fatal(err)
	}
	return boxes
}

// Links lists the href of every link on the page, as the browser
// resolved it (file:// URLs for a page opened from disk).
func Links(t *testing.T, tab context.Context) []string {
	t.Helper()
	links, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("a[href]")).map(a => a.href)`))
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// Shot takes a screenshot of the whole page as PNG, keeps a copy in
// SMTPLAB_SCREENSHOT_DIR when that is set, and returns it decoded.
func Shot(t *testing.T, tab context.Context, name string) image.Image {
	t.Helper()
	shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if dir := os.Getenv("SMTPLAB_SCREENSHOT_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	return img
}

// Check opens the page at path and fails t for each thing a reader would
// see as broken: not charts <svg> in it (charts < 0: any number), a
// chart with an empty box or no id, a chart with no ink or no series in
// colour (BlankCharts), a page nearly blank, an error it reports. It
// returns the tab, to look further.
func Check(t *testing.T, browserCtx context.Context, path, name string, charts int) context.Context {
	t.Helper()
	tab, pe := Visit(t, browserCtx, path)
	boxes := Charts(t, tab)
	if charts >= 0 && len(boxes) != charts {
		t.Errorf("%s: %d <svg> in the page, want %d", name, len(boxes), charts)
	}
	var ids []string
	for _, b := range boxes {
		if b.Width <= 0 || b.Height <= 0 || b.ID == "" {
			t.Errorf("%s: chart %q has a %gx%g box", name, b.ID, b.Width, b.Height)
		}
		ids = append(ids, b.ID)
	}
	// A box says nothing of what is in it: each chart's own screenshot
	// must show ink, some of it in a series' colour.
	for _, p := range BlankCharts(t, tab, ids) {
		t.Errorf("%s: %s", name, p)
	}
	img := Shot(t, tab, name)
	inked, total := InkedPixels(img, color.White)
	// Text, tables and charts cover well over 2% of a page; a blank or
	// unstyled-white page covers none.
	if share := float64(inked) / float64(total); share < 0.02 {
		t.Errorf("%s: the page is nearly blank: %d of %d pixels (%.2f%%) differ from the background", name, inked, total, 100*share)
	}
	for _, e := range pe.All() {
		t.Errorf("%s reported: %s", name, e)
	}
	return tab
}
