package mta

import (
	"bytes"
	"context"
	"fmt"

	"github.com/smtplab/smtplab/lab/maildir"
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

// WithMbox is h for a receiver whose evidence is the mbox at path in its
// container (receiver.evidence mbox): State counts its messages, Keep
// splits it into the run's maildir/ folder.
func (h *Handle) WithMbox(path string) *Handle {
	h.mbox = path
	return h
}

// keepMbox copies the receiver's mbox out and writes each of its
// messages into local as a Maildir file, with the time its separator line
// gives (whole seconds): the report reads it as any Maildir.
func (h *Handle) keepMbox(ctx context.Context, local string) error {
	code, out, err := h.c.Exec(ctx, "cat", h.mbox)
	if err != nil || code != 0 {
		return fmt.Errorf("read %s's mbox %s (exit %d): %v", h.role, h.mbox, code, err)
	}
	if _, err := maildir.Dir(local).FromMbox(bytes.NewReader(out)); err != nil {
		return fmt.Errorf("read %s's mbox %s: %w", h.role, h.mbox, err)
	}
	return nil
}
