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
