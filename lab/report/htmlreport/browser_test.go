package htmlreport

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
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
	path, err := exec.LookPath("chromium")
	if err != nil {
		msg := "no chromium binary on PATH; on Debian or Ubuntu install it with: apt-get install -y chromium"
		if os.Getenv("SMTPLAB_REQUIRE_CHROMIUM") == "1" {
			t.Fatal(msg + " (SMTPLAB_REQUIRE_CHROMIUM=1 makes this a failure)")
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
			for _, b := range boxes {
				if b.Width <= 0 || b.Height <= 0 || b.ID == "" {
					t.Errorf("chart %q has a %gx%g box", b.ID, b.Width, b.Height)
				}
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
	wait, cancel := context.WithTimeout(tab, 20*time.Second)
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
