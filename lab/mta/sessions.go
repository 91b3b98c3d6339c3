package mta

import (
	"context"
	"fmt"
)

// Sessions are the receiver's open SMTP sessions, read in its container
// (/proc/net/tcp and tcp6), without its Maildir: a receiver that relays
// (receiver.evidence relay) has none the lab reads.
func (h *Handle) Sessions(ctx context.Context) (int, error) {
	code, out, err := h.c.Exec(ctx, "sh", "-c", "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null")
	if err != nil || code != 0 {
		return 0, fmt.Errorf("read %s's sessions (exit %d): %v", h.role, code, err)
	}
	return smtpSessions(string(out), h.port), nil
}
