package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/schollz/progressbar/v3"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/stack"
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

// snapshot reads the receiver's event counts and the DNS line's queue
// depth (the dns role's /metrics, smtplab_dns_line_queue_depth).
func snapshot(ctx context.Context, r running, total int, start time.Time) (Snapshot, error) {
	s := Snapshot{Total: total, LineQueue: -1, Elapsed: time.Since(start)}
	if r.receiver.MTA != "" {
		// A real receiver has no control port: its Maildir and its
		// sessions are read in its container.
		n, open, err := receiverState(ctx, r.receiver, r.maildir)
		if err != nil {
			return s, err
		}
		s.Delivered, s.OpenConns = n, open
		if q, ok := lineDepth(ctx, r.dns); ok {
			s.LineQueue = q
		}
		return s, nil
	}
	rs, err := status(ctx, r.receiver)
	if err != nil {
		return s, err
	}
	s.Delivered = rs[events.Delivered]
	s.OpenConns = max(rs[events.ConnOpen]-rs[events.ConnClose], 0)
	if q, ok := lineDepth(ctx, r.dns); ok {
		s.LineQueue = q
	}
	return s, nil
}

func lineDepth(ctx context.Context, dns *stack.Container) (int, bool) {
	b, err := dns.Get(ctx, "/metrics")
	if err != nil {
		return 0, false
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return 0, false
	}
	f, ok := fams["smtplab_dns_line_queue_depth"]
	if !ok {
		return 0, false
	}
	n := 0.0
	for _, m := range f.GetMetric() {
		n += m.GetGauge().GetValue()
	}
	return int(n), true
}
