package report

import (
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
)

func TestSecs(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 s"},
		{400 * time.Nanosecond, "<0.001 ms"},
		{time.Microsecond, "0.001 ms"},
		{42 * time.Microsecond, "0.042 ms"},
		{300 * time.Microsecond, "0.3 ms"},
		{300*time.Microsecond + 200*time.Nanosecond, "0.3 ms"},
		{999*time.Microsecond + 600*time.Nanosecond, "1 ms"},
		{time.Millisecond, "1 ms"},
		{150 * time.Millisecond, "150 ms"},
		{999*time.Millisecond + 600*time.Microsecond, "1.00 s"},
		{8510 * time.Millisecond, "8.51 s"},
		{65 * time.Second, "65.00 s"},
		{-300 * time.Microsecond, "-0.3 ms"},
	} {
		if got := secs(c.d); got != c.want {
			t.Errorf("secs(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// TestPaceTextSaysInjection: the pace line says how messages entered the
// queue when the result says, and nothing for an older result.
func TestPaceTextSaysInjection(t *testing.T) {
	k := pace.Kept{Mode: pace.Rate, IntendedRate: 1000, AchievedRate: 999}
	for how, want := range map[string]string{
		"":         "rate: 1000 msg/s intended, 999 achieved",
		"sendmail": "rate: 1000 msg/s intended, 999 achieved, one sendmail process per message",
		"direct":   "rate: 1000 msg/s intended, 999 achieved, in the sender's process (no sendmail process)",
	} {
		k.Injection = how
		if got := PaceText(k); got != want {
			t.Errorf("injection %q: %q, want %q", how, got, want)
		}
	}
}
