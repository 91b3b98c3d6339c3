package mta

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// Container is what a run needs of a real MTA's container: a command run
// in it, and a folder copied out of it (a real copy of the files). The
// lab's container package provides it; this package does not import it.
type Container interface {
	Exec(ctx context.Context, cmd ...string) (code int, output []byte, err error)
	CopyDir(ctx context.Context, src, dst string) error
}

// Handle drives a real MTA playing a role of a run. It has no control
// port: it reads the MTA in its container (its Maildir, its queue, its
// mail log, its sockets), and runs the lab's inject there for a sender.
type Handle struct {
	role    topology.Role
	mta     string // Courier, Postfix, or an image the user brings (scenario.ImplImage)
	c       Container
	maildir string // a receiver's Maildir, in its container
	port    int    // a receiver's SMTP port (25)
	// How a sender is injected into: its sendmail (sendmailPath unless
	// set) or, when submission is set, its SMTP submission port.
	sendmail   string
	submission int
	mbox       string // a receiver's mbox, in its container, when its evidence is one
}

// NewHandle is the handle of mta (Courier, Postfix or scenario.ImplImage)
// playing role in c; maildir is a receiver's Maildir in the container.
func NewHandle(role topology.Role, mta string, c Container, maildir string) *Handle {
	return &Handle{role: role, mta: mta, c: c, maildir: maildir, port: 25}
}

// WithSMTPPort is h for a receiver listening on port.
func (h *Handle) WithSMTPPort(port int) *Handle {
	h.port = port
	return h
}

// WithInjection is h for a sender the lab injects into through sendmail
// (a path in its container) or, when submission is not 0, through its
// SMTP submission port, from inside the container.
func (h *Handle) WithInjection(sendmail string, submission int) *Handle {
	h.sendmail, h.submission = sendmail, submission
	return h
}

// image is whether h reads a server the lab knows nothing of: no queue to
// look at, no mail log; its Maildir is its evidence.
func (h *Handle) image() bool { return h.mta == scenario.ImplImage }

// LogNone is whether the role keeps no log the lab reads (an image).
func (h *Handle) LogNone() bool { return h.image() }

// Role is the role the MTA plays.
func (h *Handle) Role() topology.Role { return h.role }

// FullLog is false: a mail log has fewer events than a Go role writes
// (the report leaves unmeasured what it cannot tell).
func (h *Handle) FullLog() bool { return false }

// Settle is how many polls (200 ms apart) a real MTA must have stayed
// idle, with messages not all arrived, before its state is final: a real
// receiver answers 250 before its local delivery, and Courier's submit
// hands a message to its queue a moment after sendmail returns.
func (h *Handle) Settle() int { return 10 }

// Idle says whether the MTA's queue holds no message: Courier keeps each
// as files under /var/lib/courier/msgs until it is delivered or bounced;
// Postfix under its spool's incoming, active and deferred queues (and
// maildrop, before pickup); Exim its -H and -D files under its spool's
// input until the message is done with.
func (h *Handle) Idle(ctx context.Context) (bool, error) {
	if h.image() {
		// Its queue is its own business: the run waits for the Maildir to
		// stop changing instead (Settle).
		return true, nil
	}
	dirs := "/var/lib/courier/msgs"
	switch h.mta {
	case scenario.ImplPostfix:
		dirs = "/var/spool/postfix/maildrop /var/spool/postfix/incoming /var/spool/postfix/active /var/spool/postfix/deferred"
	case scenario.ImplExim:
		dirs = eximSpoolInput
	}
	code, out, err := h.c.Exec(ctx, "sh", "-c", "find "+dirs+" -type f 2>/dev/null | wc -l")
	if err != nil || code != 0 {
		return false, fmt.Errorf("list %s's queue (exit %d): %v: %s", h.role, code, err, out)
	}
	return strings.TrimSpace(string(out)) == "0", nil
}

// State is what a real receiver holds now, read in its container with one
// exec: the messages in its Maildir (new/ and cur/) and its open SMTP
// sessions (established TCP connections on port 25, from /proc/net/tcp
// and tcp6).
func (h *Handle) State(ctx context.Context) (delivered, open int, err error) {
	dir := shellQuote(h.maildir)
	script := fmt.Sprintf("find %s/new %s/cur -type f | wc -l; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null", dir, dir)
	if h.mbox != "" {
		// Its separator lines; none while it does not exist yet.
		script = fmt.Sprintf("n=$(grep -c '^From ' %s 2>/dev/null); echo ${n:-0}; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null", shellQuote(h.mbox))
	}
	code, out, err := h.c.Exec(ctx, "sh", "-c", script)
	if err != nil || code != 0 {
		return 0, 0, fmt.Errorf("read %s's Maildir (exit %d): %v: %s", h.role, code, err, out)
	}
	first, rest, _ := strings.Cut(string(out), "\n")
	delivered, err = strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, 0, fmt.Errorf("read %s's Maildir: %q", h.role, first)
	}
	return delivered, smtpSessions(rest, h.port), nil
}

// smtpSessions counts the established (state 01) connections whose local
// port is port (25: 0019) in /proc/net/tcp or tcp6 text.
func smtpSessions(procNetTCP string, port int) int {
	n := 0
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(procNetTCP, "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], suffix) && f[3] == "01" {
			n++
		}
	}
	return n
}

// Events are the MTA's mail log read as the lab's events (ParseLog). A
// sender's failures, which name no Message-ID in Courier's log, are tied
// to their injection where the envelope allows (TieInjected).
func (h *Handle) Events(ctx context.Context) ([]events.Event, error) {
	if h.image() {
		return nil, nil
	}
	log, err := h.mailLog(ctx)
	if err != nil {
		return nil, err
	}
	evs, err := ParseLog(bytes.NewReader(log), h.role, time.Now())
	if err != nil {
		return nil, err
	}
	if h.role == topology.Sender {
		queued, _ := h.Injected(ctx) // all of them, also when the loop was cut short
		TieInjected(evs, queued)
	}
	return evs, nil
}

func (h *Handle) mailLog(ctx context.Context) ([]byte, error) {
	code, out, err := h.c.Exec(ctx, "cat", LogPath)
	if err != nil || code != 0 {
		return nil, fmt.Errorf("read %s's mail log (exit %d): %v", h.role, code, err)
	}
	return out, nil
}

// eximSpoolInput is Debian's Exim spool's input folder (SPOOL_DIRECTORY
// /var/spool/exim4, split_spool_directory off).
const eximSpoolInput = "/var/spool/exim4/input"

// sendmailPath is the path of a real MTA's sendmail in its image.
const sendmailPath = "/usr/sbin/sendmail"

// InjectIDHost names the Message-IDs the lab gives the messages a real
// sender's sendmail takes.
const InjectIDHost = "inject.smtplab"

// injectedPath is where the lab's inject, in a real sender's container,
// writes a Queued event per message as its sendmail takes it.
const injectedPath = "/var/tmp/smtplab-injected.jsonl"

// Inject runs the workload's loop in the sender's container with its own
// sendmail: the lab's inject (sender.InjectExternal) reads the workload
// from topology.WorkloadPath, gives each message a Message-ID under
// InjectIDHost, and records each one's start and Queued event, also to
// injectedPath as it goes.
func (h *Handle) Inject(ctx context.Context, _ sender.Injection) sender.InjectResult {
	var res sender.InjectResult
	via := []string{"--sendmail", sendmailPath}
	switch {
	case h.submission != 0:
		via = []string{"--smtp", fmt.Sprintf("127.0.0.1:%d", h.submission)}
	case h.sendmail != "":
		via = []string{"--sendmail", h.sendmail}
	}
	args := append([]string{"/lab", "inject", "--workload", topology.WorkloadPath}, via...)
	code, out, err := h.c.Exec(ctx, append(args, "--message-id-host", InjectIDHost, "--events", injectedPath)...)
	if err == nil {
		err = json.Unmarshal(bytes.TrimSpace(out), &res)
	}
	if err != nil || code != 0 {
		res.Errors = append(res.Errors, fmt.Sprintf("injection loop failed (exit %d): %v: %s", code, err, bytes.TrimSpace(out)))
	}
	return res
}

// StopInjection ends the inject loop if it still runs (the run's timeout
// came first) and waits for it to go, so that nothing is injected after
// the lab has read what was: SIGTERM makes it stop after the message in
// hand.
func (h *Handle) StopInjection(ctx context.Context) error {
	script := fmt.Sprintf(`pid=$(cat %[1]s.pid 2>/dev/null) || exit 0
kill -TERM "$pid" 2>/dev/null || exit 0
i=0; while kill -0 "$pid" 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done`, injectedPath)
	code, out, err := h.c.Exec(ctx, "sh", "-c", script)
	if err != nil || code != 0 {
		return fmt.Errorf("stop the injection in %s (exit %d): %v: %s", h.role, code, err, out)
	}
	return nil
}

// Injected are the Queued events the inject loop wrote as it went: all of
// them, also when the run's timeout cut the loop short and its answer
// never came. A real sender's own log has no Message-IDs.
func (h *Handle) Injected(ctx context.Context) ([]events.Event, error) {
	if h.role != topology.Sender {
		return nil, nil
	}
	code, out, err := h.c.Exec(ctx, "cat", injectedPath)
	if err != nil || code != 0 {
		return nil, nil // nothing injected yet
	}
	return events.ReadJSONL(bytes.NewReader(out))
}

// Keep copies the MTA's evidence into the run's folder dir: its mail log
// as <role>-mail.log, and a receiver's Maildir into dir/maildir with the
// files' own modification times.
func (h *Handle) Keep(ctx context.Context, dir string) error {
	if h.role == topology.Receiver && h.mbox != "" {
		return h.keepMbox(ctx, filepath.Join(dir, "maildir"))
	}
	if h.role == topology.Receiver {
		local := filepath.Join(dir, "maildir")
		if err := h.c.CopyDir(ctx, h.maildir, local); err != nil {
			return err
		}
		if err := h.maildirTimes(ctx, local); err != nil {
			return err
		}
	}
	if h.image() {
		return nil
	}
	log, err := h.mailLog(ctx)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, string(h.role)+"-mail.log"), log, 0o644)
}

// maildirTimes gives the Maildir copied out of a real receiver the files'
// own modification times, to the microsecond, as find(1) reads them in the
// container: the report takes a delivery's time from its file when the
// receiver logs no Delivered event (the engine's archive keeps whole
// seconds only).
func (h *Handle) maildirTimes(ctx context.Context, local string) error {
	code, out, err := h.c.Exec(ctx, "find", h.maildir, "-type", "f", "-printf", `%T@ %P\n`)
	if err != nil || code != 0 {
		return fmt.Errorf("read %s's Maildir times (exit %d): %v", h.role, code, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		stamp, rel, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.Contains(rel, "..") {
			continue
		}
		secs, frac, _ := strings.Cut(stamp, ".")
		s, err1 := strconv.ParseInt(secs, 10, 64)
		frac = (frac + "000000000")[:9]
		ns, err2 := strconv.ParseInt(frac, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		t := time.Unix(s, ns)
		if err := os.Chtimes(filepath.Join(local, rel), t, t); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
