package pace

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string // "" for valid
	}{
		{Spec{Mode: Rate, PerSecond: 3}, ""},
		{Spec{Mode: Rate, PerSecond: 3, Ramp: 10 * time.Second, MaxLag: time.Second}, ""},
		{Spec{Mode: Burst}, ""},
		{Spec{Mode: Loop}, ""},
		{Spec{Mode: Rate}, "rate must be a positive number"},
		{Spec{Mode: Rate, PerSecond: -1}, "rate must be a positive number"},
		{Spec{Mode: Rate, PerSecond: 1e9}, "beyond any injector"},
		{Spec{Mode: Rate, PerSecond: 0.0001}, "below the least the lab schedules"},
		{Spec{Mode: Rate, PerSecond: 3, Ramp: -time.Second}, "ramp must be between 0 and 24h"},
		{Spec{Mode: Rate, PerSecond: 3, Ramp: 25 * time.Hour}, "ramp must be between 0 and 24h"},
		{Spec{Mode: Rate, PerSecond: 3, MaxLag: -time.Second}, "max_lag must be between 0 and 24h"},
		{Spec{Mode: Burst, PerSecond: 3}, "mode burst has no rate"},
		{Spec{Mode: Loop, MaxLag: time.Second}, "mode loop has no rate"},
		{Spec{Mode: "fast"}, `mode must be rate, burst or loop, got "fast"`},
		{Spec{}, `mode must be rate, burst or loop, got ""`},
	} {
		err := c.spec.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: Validate = %v, want %q", c.spec, err, c.want)
		}
	}
}

// Due times of a fixed rate are i/rate; with a ramp, the count released
// by t grows as rate*t²/(2*ramp), then by rate per second.
func TestDue(t *testing.T) {
	s := Spec{Mode: Rate, PerSecond: 4}
	for i, want := range []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond} {
		if got := s.Due(i); got != want {
			t.Errorf("rate 4: Due(%d) = %s, want %s", i, got, want)
		}
	}
	if got := s.Span(201); got != 50*time.Second {
		t.Errorf("rate 4: Span(201) = %s, want 50s", got)
	}
	// 10/s reached over 2 s: 10 messages in the ramp (at sqrt(0.4*i) s),
	// then one every 100 ms from t = 2 s.
	r := Spec{Mode: Rate, PerSecond: 10, Ramp: 2 * time.Second}
	for _, c := range []struct {
		i    int
		want time.Duration
	}{{0, 0}, {1, 632455532}, {10, 2 * time.Second}, {11, 2100 * time.Millisecond}, {30, 4 * time.Second}} {
		if got := r.Due(c.i); (got - c.want).Abs() > time.Microsecond {
			t.Errorf("ramp: Due(%d) = %s, want %s", c.i, got, c.want)
		}
	}
	for i := 1; i < 50; i++ {
		if r.Due(i) <= r.Due(i-1) {
			t.Fatalf("ramp: Due(%d) = %s is not after Due(%d) = %s", i, r.Due(i), i-1, r.Due(i-1))
		}
	}
	for _, m := range []string{Burst, Loop} {
		if got := (Spec{Mode: m}).Due(5); got != 0 {
			t.Errorf("%s: Due(5) = %s, want 0", m, got)
		}
	}
}

func TestJudge(t *testing.T) {
	ms := time.Millisecond
	spec := Spec{Mode: Rate, PerSecond: 10, MaxLag: 50 * ms}
	var starts []Start
	for i := 0; i < 100; i++ {
		starts = append(starts, Start{Index: i, Due: spec.Due(i), Began: spec.Due(i) + 2*ms, Queued: spec.Due(i) + 20*ms})
	}
	k := Judge(spec, starts)
	if k.Held == nil || !*k.Held || k.LagMax != 2*ms || k.LagP50 != 2*ms || k.NotHeld() != "" {
		t.Errorf("on time: %+v, NotHeld %q", k, k.NotHeld())
	}
	if k.AchievedRate < 9.99 || k.AchievedRate > 10.01 || k.IntendedRate != 10 || k.MaxLag != 50*ms {
		t.Errorf("on time: rates %v/%v, bound %s", k.IntendedRate, k.AchievedRate, k.MaxLag)
	}

	late := append([]Start(nil), starts...)
	late[73].Began += 300 * ms // one slow start past the bound
	k = Judge(spec, late)
	if k.Held == nil || *k.Held || k.LagMax != 302*ms || k.LagP99 != 2*ms {
		t.Errorf("one late: %+v", k)
	}
	if msg := k.NotHeld(); !strings.Contains(msg, "pace not held") || !strings.Contains(msg, "302ms late") {
		t.Errorf("one late: NotHeld %q", msg)
	}

	// Started on time, but its sendmail took 400 ms (a stalled disk): it
	// reached the queue late, and the sender saw it late.
	slow := append([]Start(nil), starts...)
	slow[40].Queued += 400 * ms
	k = Judge(spec, slow)
	if k.Held == nil || *k.Held || k.LagMax != 2*ms || k.QueueLagMax != 420*ms {
		t.Errorf("one slow sendmail: %+v", k)
	}
	if msg := k.NotHeld(); !strings.Contains(msg, "reached the sender's queue 420ms after its time") {
		t.Errorf("one slow sendmail: NotHeld %q", msg)
	}
	// A sendmail that failed has no queue time: its start alone counts.
	failed := append([]Start(nil), starts...)
	failed[7].Queued = 0
	if k = Judge(spec, failed); k.Held == nil || !*k.Held {
		t.Errorf("a failed sendmail judged late: %+v", k)
	}

	// Started early (never happens, but the clock is the clock): no lag.
	if l := (Start{Due: time.Second, Began: 0}).Lag(); l != 0 {
		t.Errorf("early start lag %s", l)
	}

	// The default bound.
	if b := (Spec{Mode: Rate, PerSecond: 1}).Bound(); b != DefaultMaxLag {
		t.Errorf("default bound %s", b)
	}

	// Burst holds by construction; loop has nothing to hold.
	if k := Judge(Spec{Mode: Burst}, starts); k.Held == nil || !*k.Held || k.LagMax != 0 {
		t.Errorf("burst: %+v", k)
	}
	if k := Judge(Spec{Mode: Loop}, starts); k.Held != nil || !k.MachineDependent || k.NotHeld() != "" || k.AchievedRate == 0 {
		t.Errorf("loop: %+v", k)
	}
	if k := Judge(spec, nil); k.Held == nil || !*k.Held || k.AchievedRate != 0 {
		t.Errorf("no starts: %+v", k)
	}
}
