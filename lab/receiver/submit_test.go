package receiver

import (
	"fmt"
	"testing"
	"time"
)

// appendQueueID writes what fmt's %016X.%016X.%08X would.
func TestQueueIDForm(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, seq := range []uint64{0, 1, 0xabc, 1<<64 - 1} {
		queueSeq.Store(seq)
		got := string(appendQueueID(nil, now))
		want := fmt.Sprintf("%016X.%016X.%08X", seq+1, now.Unix(), pid)
		if got != want {
			t.Errorf("after %d: %q, want %q", seq, got, want)
		}
	}
	for _, v := range []uint64{0, 0xf, 0x10, 0x123456789} {
		if got, want := string(appendHex(nil, v, 8)), fmt.Sprintf("%08X", v); got != want {
			t.Errorf("appendHex(%#x, 8) = %q, want %q", v, got, want)
		}
	}
}

// The Received: header's date, kept from one message to the next, is
// what formatting each message's own time gives: within a second, across
// one, and across a change of zone.
func TestDateCacheIsFormat(t *testing.T) {
	var c dateCache
	base := time.Date(2026, 12, 7, 3, 59, 59, 900_000_000, time.UTC)
	for _, now := range []time.Time{
		base, base.Add(50 * time.Millisecond), base.Add(100 * time.Millisecond), base.Add(time.Second),
		base.In(time.FixedZone("x", -5*3600)), base.Add(time.Second).In(time.FixedZone("y", 3600)),
		base.Add(-time.Hour),
	} {
		if got, want := string(c.of(now)), now.Format(time.RFC1123Z); got != want {
			t.Errorf("%v: %q, want %q", now, got, want)
		}
	}
}

// heloWord replaces spaces, control characters and 8-bit bytes, and
// leaves a plain name as it is.
func TestHeloWord(t *testing.T) {
	for in, want := range map[string]string{
		"mail.example.com": "mail.example.com", "": "", "a b\tc\x00d\x7fé": "a_b_c_d___",
	} {
		if got := heloWord(in); got != want {
			t.Errorf("heloWord(%q) = %q, want %q", in, got, want)
		}
	}
}
