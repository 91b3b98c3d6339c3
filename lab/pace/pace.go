// Package pace is the workload's arrival schedule: when each message is
// due to be injected, and whether a run kept to it.
//
// Rules, stated before the code:
//   - The schedule is open loop, as load tools keep it (k6's
//     constant-arrival-rate executor, wrk2): message i is due at Due(i)
//     after the start whatever earlier injections cost. A slow injection
//     never pushes the next one back; several run at once when one is
//     slow.
//   - Rate: a fixed rate (PerSecond), optionally reached by a linear ramp
//     from 0 over Ramp. Burst: every message is queued before delivery
//     starts (the sender holds its queue until the last one is in), so
//     how fast the queue fills does not matter. Loop: one injection after
//     another as fast as the machine goes, the 1999 shell loop; it has no
//     schedule to keep, so its figures depend on the machine and every
//     output says so.
//   - Lag is actual start minus due time, per message; queue lag is when
//     the message was in the sender's queue (its sendmail returned) minus
//     due time. A rate run held its pace when no message started, nor
//     reached the queue, more than MaxLag late: a sendmail stalled by a
//     busy disk starts on time but hands the sender its message late, and
//     that changes what the sender does as much as a late start; a burst run
//     holds by construction (nothing is delivered until all are queued);
//     a loop run has no pace to hold (Held is nil).
package pace

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Modes of a Spec.
const (
	Rate  = "rate"
	Burst = "burst"
	Loop  = "loop"
)

// DefaultMaxLag is the lag bound when a scenario sets none: half the gap
// between two messages to one host at the fastest shipped pace (20 hosts
// at 10 a second: one every 2 s; at 1999's 3 a second, 6.7 s), so a
// message within it still finds its host's last delivery long done; and
// above what a 2-core machine with both cores busy adds to a timer, a
// fork and an fsync (up to about 0.7 s, measured in docs/PERFORMANCE.md).
const DefaultMaxLag = time.Second

// MinPerSecond and MaxSpan bound a schedule to what a run can be: at
// least one message an hour, a ramp and a lag bound of at most a day.
const (
	MinPerSecond = 1.0 / 3600
	MaxSpan      = 24 * time.Hour
)

// MaxConcurrent caps the injections in flight at once: a schedule the
// machine cannot keep lags (and says so) instead of forking without end.
const MaxConcurrent = 64

// Spec is a validated arrival schedule.
type Spec struct {
	Mode      string        `json:"mode"`
	PerSecond float64       `json:"per_second,omitempty"` // Rate only
	Ramp      time.Duration `json:"ramp_ns,omitempty"`    // Rate only: 0 to PerSecond over this
	MaxLag    time.Duration `json:"max_lag_ns,omitempty"` // Rate only; DefaultMaxLag when 0
}

// Validate says what is wrong with s, if anything.
func (s Spec) Validate() error {
	switch s.Mode {
	case Rate:
		if math.IsNaN(s.PerSecond) || math.IsInf(s.PerSecond, 0) || s.PerSecond <= 0 {
			return fmt.Errorf("rate must be a positive number of messages per second, got %v", s.PerSecond)
		}
		if s.PerSecond < MinPerSecond {
			return fmt.Errorf("rate %v messages per second is below the least the lab schedules (one an hour)", s.PerSecond)
		}
		if s.PerSecond > 100000 {
			return fmt.Errorf("rate %v messages per second is beyond any injector (at most 100000)", s.PerSecond)
		}
		if s.Ramp < 0 || s.Ramp > MaxSpan {
			return fmt.Errorf("ramp must be between 0 and %s, got %s", MaxSpan, s.Ramp)
		}
		if s.MaxLag < 0 || s.MaxLag > MaxSpan {
			return fmt.Errorf("max_lag must be between 0 and %s, got %s", MaxSpan, s.MaxLag)
		}
	case Burst, Loop:
		if s.PerSecond != 0 || s.Ramp != 0 || s.MaxLag != 0 {
			return fmt.Errorf("mode %s has no rate, interval, ramp or max_lag", s.Mode)
		}
	default:
		return fmt.Errorf("mode must be rate, burst or loop, got %q", s.Mode)
	}
	return nil
}

// Bound is the lag a rate run may reach and still have held its pace.
func (s Spec) Bound() time.Duration {
	if s.MaxLag > 0 {
		return s.MaxLag
	}
	return DefaultMaxLag
}

// Due is when message i (from 0) is due, after the schedule's start. With
// a ramp the rate rises linearly from 0, so by time t <= Ramp the schedule
// has released PerSecond*t²/(2*Ramp) messages, and PerSecond more every
// second after. Burst and loop have no due times: every message is due at
// once, in order.
func (s Spec) Due(i int) time.Duration {
	if s.Mode != Rate || i <= 0 {
		return 0
	}
	r, ramp := s.PerSecond, s.Ramp.Seconds()
	x := float64(i)
	var t float64
	if inRamp := r * ramp / 2; x <= inRamp {
		t = math.Sqrt(2 * ramp * x / r)
	} else {
		t = ramp + (x-inRamp)/r
	}
	if ns := t * float64(time.Second); ns < math.MaxInt64 {
		return time.Duration(ns)
	}
	return math.MaxInt64 // beyond any run's timeout: never reached
}

// Span is when the last of n messages is due.
func (s Spec) Span(n int) time.Duration { return s.Due(n - 1) }

// MachineDependent says the schedule is the machine's speed, not an
// input: its figures cannot be compared across machines or loads.
func (s Spec) MachineDependent() bool { return s.Mode == Loop }

// Start is one message's injection: its place in the workload (from 0),
// when it was due and when it began, both after the schedule's start.
type Start struct {
	Index int           `json:"index"`
	Due   time.Duration `json:"due_ns"`
	Began time.Duration `json:"began_ns"`
	// Queued is when its sendmail returned with the message queued (0:
	// it did not).
	Queued time.Duration `json:"queued_ns,omitempty"`
}

// Lag is how late the message started (never negative).
func (s Start) Lag() time.Duration { return max(0, s.Began-s.Due) }

// QueueLag is how late the message reached the queue (0 if it did not).
func (s Start) QueueLag() time.Duration {
	if s.Queued == 0 {
		return 0
	}
	return max(0, s.Queued-s.Due)
}

// Kept is how a run kept its schedule.
type Kept struct {
	Mode             string  `json:"mode"`
	MachineDependent bool    `json:"machine_dependent"`
	IntendedRate     float64 `json:"intended_per_second,omitempty"` // rate runs: the rate after the ramp
	// AchievedRate is messages per second between the first and the last
	// start (0 with fewer than two).
	AchievedRate float64       `json:"achieved_per_second"`
	LagP50       time.Duration `json:"lag_p50_ns"`
	LagP99       time.Duration `json:"lag_p99_ns"`
	LagMax       time.Duration `json:"lag_max_ns"`
	// QueueLagMax is the latest a message reached the queue after its
	// due time (rate runs).
	QueueLagMax time.Duration `json:"queue_lag_max_ns,omitempty"`
	MaxLag      time.Duration `json:"max_lag_ns,omitempty"` // the bound (rate runs)
	// Held is nil for a loop run (no schedule) or one NotJudged, else
	// whether every message started within MaxLag of its time.
	Held *bool `json:"held"`
	// NotJudged says why a schedule was not judged: a fault hit the
	// sender, where the injection loop runs ("" when it was judged).
	NotJudged string `json:"not_judged,omitempty"`
	// Injection is how each message entered the sender's queue:
	// "sendmail" (a process per message) or "direct" (in the sender's
	// process); the run sets it from its scenario.
	Injection string `json:"injection,omitempty"`
	// Senders is how many sending hosts shared the schedule, each
	// injecting its share into its own queue (0 or 1: one).
	Senders int `json:"senders,omitempty"`
}

// ErrNotHeld is wrapped by errors about a run that did not keep its pace.
var ErrNotHeld = errors.New("the run did not hold its pace")

// Judge sums up starts (any order) against s.
func Judge(s Spec, starts []Start) Kept {
	k := Kept{Mode: s.Mode, MachineDependent: s.MachineDependent()}
	if s.Mode == Rate {
		k.IntendedRate = s.PerSecond
		k.MaxLag = s.Bound()
	}
	if len(starts) > 0 {
		lags := make([]time.Duration, len(starts))
		first, last := starts[0].Began, starts[0].Began
		for i, st := range starts {
			lags[i] = st.Lag()
			k.QueueLagMax = max(k.QueueLagMax, st.QueueLag())
			first, last = min(first, st.Began), max(last, st.Began)
		}
		slices.Sort(lags)
		k.LagP50 = lags[rank(len(lags), 0.50)]
		k.LagP99 = lags[rank(len(lags), 0.99)]
		k.LagMax = lags[len(lags)-1]
		if len(starts) > 1 && last > first {
			k.AchievedRate = float64(len(starts)-1) / (last - first).Seconds()
		}
	}
	switch s.Mode {
	case Rate:
		held := k.LagMax <= k.MaxLag && k.QueueLagMax <= k.MaxLag
		k.Held = &held
	case Burst:
		held := true
		k.Held = &held
	}
	if s.Mode != Rate {
		// Burst and loop have no due times: a start's "lag" is only its
		// place in the line, not lateness.
		k.LagP50, k.LagP99, k.LagMax, k.QueueLagMax = 0, 0, 0, 0
	}
	return k
}

// rank is the index of quantile q in n sorted values (nearest rank).
func rank(n int, q float64) int {
	i := int(math.Ceil(q*float64(n))) - 1
	return min(max(i, 0), n-1)
}

// NotHeld says, in one line, why k did not hold its pace ("" when it did,
// or has none to hold).
func (k Kept) NotHeld() string {
	if k.Held == nil || *k.Held {
		return ""
	}
	late := fmt.Sprintf("an injection started %s late", k.LagMax.Round(time.Millisecond))
	if k.QueueLagMax > k.MaxLag && k.LagMax <= k.MaxLag {
		late = fmt.Sprintf("a message reached the sender's queue %s after its time", k.QueueLagMax.Round(time.Millisecond))
	}
	return fmt.Sprintf("pace not held: %s, over the bound of %s (intended %.4g msg/s, achieved %.4g msg/s)",
		late, k.MaxLag, k.IntendedRate, k.AchievedRate)
}
