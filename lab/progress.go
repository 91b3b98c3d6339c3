package lab

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/smtplab/smtplab/lab/events"
)

// Snapshot is the run's state as the progress display shows it.
type Snapshot struct {
	Delivered, Total int
	Queued           int // messages the sender has queued (injected) so far; -1 not known yet
	OpenConns        int // receiver sessions open now
	LineQueue        int // DNS packets queued or on the line now (both directions); -1 without a line
	Elapsed          time.Duration
	// ETA is the time left until every message is delivered, as estimate
	// guesses it; -1 until it can.
	ETA time.Duration
}

// String is the plain line: every figure with its label, and the ETA.
func (s Snapshot) String() string {
	return s.figures(false) + "  " + s.eta()
}

// short is the same for the line beside a terminal's bar, which must fit
// a terminal's width.
func (s Snapshot) short() string {
	return s.figures(true) + "  " + s.eta()
}

// figures are the counts with their labels, and the time elapsed.
func (s Snapshot) figures(short bool) string {
	open, line, elapsed := "open sessions", "DNS line queue", "elapsed "
	if short {
		open, line, elapsed = "sessions", "DNS queue", ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "delivered %d/%d  queued %s  %s %d", s.Delivered, s.Total, orDash(s.Queued), open, s.OpenConns)
	if s.LineQueue >= 0 {
		fmt.Fprintf(&b, "  %s %d", line, s.LineQueue)
	}
	fmt.Fprintf(&b, "  %s%.1f s", elapsed, s.Elapsed.Seconds())
	return b.String()
}

// eta is in whole seconds, rounded up: 0 only when nothing is left.
func (s Snapshot) eta() string {
	if s.ETA < 0 {
		return "ETA -"
	}
	return fmt.Sprintf("ETA %.0f s", math.Ceil(s.ETA.Seconds()))
}

func orDash(n int) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// estimate is the time left until all s.Total messages are delivered, or
// -1 when it cannot be told yet. While a paced injection's schedule runs
// (span: when its last message is due; 0 for burst and loop), the rest
// arrive as they are injected: the schedule's time left. Otherwise the
// rest arrive at the delivery rate so far (delivered over elapsed); with
// nothing delivered yet there is no rate.
func estimate(s Snapshot, span time.Duration) time.Duration {
	left := s.Total - s.Delivered
	switch {
	case left <= 0:
		return 0
	case s.Elapsed < span:
		return span - s.Elapsed
	case s.Delivered == 0:
		return -1
	}
	return time.Duration(float64(s.Elapsed) * float64(left) / float64(s.Delivered))
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
			progressbar.OptionSetWidth(20),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
		)
	}
	return v
}

func (v *progressView) show(s Snapshot) {
	if v == nil {
		return
	}
	if v.bar != nil {
		// Unthrottled (a show is every 200 ms): the second draw has both.
		v.bar.Describe(s.short())
		_ = v.bar.Set(s.Delivered)
		return
	}
	if time.Since(v.lastLine) >= v.every {
		fmt.Fprintln(v.w, s)
		v.lastLine = time.Now()
	}
}

// note prints a status line while the display runs (what the run waits
// for now): on a terminal the bar is cleared first, and drawn again below
// it at the next show.
func (v *progressView) note(format string, args ...any) {
	if v == nil {
		return
	}
	if v.bar != nil {
		_ = v.bar.Clear()
	}
	fmt.Fprintf(v.w, format+"\n", args...)
}

// done ends the display with the final state on a line of its own
// (no ETA: nothing is left to estimate, or the run was stopped).
func (v *progressView) done(s Snapshot, stopped bool) {
	if v == nil {
		return
	}
	if v.bar != nil {
		_ = v.bar.Exit()
		fmt.Fprintln(v.w)
	}
	if stopped {
		fmt.Fprintf(v.w, "stopped: %s\n", s.figures(false))
		return
	}
	fmt.Fprintln(v.w, s.figures(false))
}

// queueCounter is a sender that counts what it has queued (a Go
// sender's event counts); a real MTA's is known when its loop returns.
type queueCounter interface {
	Counts(ctx context.Context) (map[events.Kind]int, error)
}

// snapshot reads the receiver's state, the sender's queued count and the
// DNS line's queue depth; span is when the paced injection's last
// message is due (estimate).
func snapshot(ctx context.Context, r running, total int, span time.Duration, start time.Time) (Snapshot, error) {
	s := Snapshot{Total: total, Queued: -1, LineQueue: -1, Elapsed: time.Since(start)}
	var err error
	if s.Delivered, s.OpenConns, err = r.receiver.State(ctx); err != nil {
		return s, err
	}
	if q, ok := r.dns.LineDepth(ctx); ok {
		s.LineQueue = q
	}
	if c, ok := r.sender.(queueCounter); ok {
		if counts, err := c.Counts(ctx); err == nil {
			s.Queued = counts[events.Queued]
		}
	}
	s.ETA = estimate(s, span)
	return s, nil
}
