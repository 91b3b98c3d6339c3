package lab

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Snapshot is the run's state as the progress display shows it.
type Snapshot struct {
	Delivered, Total int
	OpenConns        int // receiver sessions open now
	LineQueue        int // DNS packets queued or on the line now (both directions); -1 without a line
	Elapsed          time.Duration
}

func (s Snapshot) String() string {
	line := "no line"
	if s.LineQueue >= 0 {
		line = fmt.Sprintf("DNS line queue %d", s.LineQueue)
	}
	return fmt.Sprintf("delivered %d/%d  open connections %d  %s  elapsed %.1f s",
		s.Delivered, s.Total, s.OpenConns, line, s.Elapsed.Seconds())
}

// progressView draws Snapshots: a bar redrawn in place on a terminal
// (schollz/progressbar), plain lines every few seconds otherwise, so CI
// logs stay readable.
type progressView struct {
	w        io.Writer
	bar      *progressbar.ProgressBar
	every    time.Duration
	lastLine time.Time
}

func newProgressView(opt Options, total int) *progressView {
	if opt.Progress == nil {
		return nil
	}
	v := &progressView{w: opt.Progress, every: 5 * time.Second}
	if opt.Terminal {
		v.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(opt.Progress),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	return v
}

func (v *progressView) show(s Snapshot) {
	if v == nil {
		return
	}
	if v.bar != nil {
		v.bar.Describe(fmt.Sprintf("open %d  line queue %s  %.1f s", s.OpenConns, lineQueue(s.LineQueue), s.Elapsed.Seconds()))
		_ = v.bar.Set(s.Delivered)
		return
	}
	if time.Since(v.lastLine) >= v.every {
		fmt.Fprintln(v.w, s)
		v.lastLine = time.Now()
	}
}

// done ends the display with the final state on a line of its own.
func (v *progressView) done(s Snapshot, stopped bool) {
	if v == nil {
		return
	}
	if v.bar != nil {
		_ = v.bar.Exit()
		fmt.Fprintln(v.w)
	}
	if stopped {
		fmt.Fprintf(v.w, "stopped: %s\n", s)
		return
	}
	fmt.Fprintln(v.w, s)
}

func lineQueue(n int) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// snapshot reads the receiver's state and the DNS line's queue depth.
func snapshot(ctx context.Context, r running, total int, start time.Time) (Snapshot, error) {
	s := Snapshot{Total: total, LineQueue: -1, Elapsed: time.Since(start)}
	var err error
	if s.Delivered, s.OpenConns, err = r.receiver.State(ctx); err != nil {
		return s, err
	}
	if q, ok := r.dns.LineDepth(ctx); ok {
		s.LineQueue = q
	}
	return s, nil
}
