package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/mta"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/stack"
)

// A role played by a real MTA (receiver.impl or sender.impl courier or
// postfix) runs its image (lab/stack/debian.go) configured by lab/mta. It
// has no control port: the lab reads it with docker exec (its Maildir,
// its queue, its mail log) and copies its Maildir out as for the Go
// receiver.

// startReceiver starts the scenario's receiver: the Go model or a real MTA.
func startReceiver(ctx context.Context, st *stack.Stack, sc scenario.Scenario, a addrs, images map[string]stack.Image) (*stack.Container, error) {
	dnsIP := a.dns
	switch impl := sc.Receiver.Impl; impl {
	case scenario.ImplCourier, scenario.ImplPostfix:
		files := mta.CourierReceiver(sc, dnsIP)
		if impl == scenario.ImplPostfix {
			files = mta.PostfixReceiver(sc, dnsIP)
		}
		return st.StartMTA(ctx, stack.MTASpec{Role: role.Receiver, MTA: impl, Image: images[impl], Files: files})
	}
	return st.Start(ctx, roleSpec(sc, role.Receiver, a))
}

// startSender starts the scenario's sender with the workload file and the
// identd's port exposed (the identd joins its network namespace).
func startSender(ctx context.Context, st *stack.Stack, sc scenario.Scenario, a addrs, workload []byte, images map[string]stack.Image) (*stack.Container, error) {
	receiverIP, dnsIP := a.receiver, a.dns
	opts := []stack.StartOption{stack.Expose(identdPort), stack.Alias(role.Identd)}
	if impl := sc.Sender.Impl; impl == scenario.ImplCourier {
		// The lab's inject runs in it with docker exec and reads the
		// workload from this file; a Go sender gets it over POST /inject.
		opts = append(opts, stack.WithFile(workloadPath, workload))
		return st.StartMTA(ctx, stack.MTASpec{Role: role.Sender, MTA: impl, Image: images[impl],
			Files: mta.CourierSender(sc, receiverIP, dnsIP)}, opts...)
	}
	return st.Start(ctx, roleSpec(sc, role.Sender, a), opts...)
}

// sendmailOf is the path of a real MTA's sendmail in its image.
const sendmailOf = "/usr/sbin/sendmail"

// injectCommand is the seed's loop in a real sender's container, with
// its own sendmail: the lab's inject records each message's Message-ID
// (under idHost) and start time (sender.InjectExternal), also to
// injectedPath as it goes. (A Go sender is injected over POST /inject.)
func injectCommand(idHost string) []string {
	return []string{"/lab", "inject", "--workload", workloadPath,
		"--sendmail", sendmailOf, "--message-id-host", idHost, "--events", injectedPath}
}

// receiverState is what a real receiver holds now, read in its
// container with one exec: the messages in its Maildir (new/ and cur/)
// and its open SMTP sessions (established TCP connections on port 25, from
// /proc/net/tcp and tcp6).
func receiverState(ctx context.Context, c *stack.Container, dir string) (delivered, open int, err error) {
	script := fmt.Sprintf("find %s/new %s/cur -type f | wc -l; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null", shellQuote(dir), shellQuote(dir))
	code, out, err := c.Exec(ctx, "sh", "-c", script)
	if err != nil || code != 0 {
		return 0, 0, fmt.Errorf("read %s's Maildir (exit %d): %v: %s", c.Role, code, err, out)
	}
	first, rest, _ := strings.Cut(string(out), "\n")
	delivered, err = strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, 0, fmt.Errorf("read %s's Maildir: %q", c.Role, first)
	}
	return delivered, smtpSessions(rest), nil
}

// smtpSessions counts the established (state 01) connections whose local
// port is 25 (0019) in /proc/net/tcp or tcp6 text.
func smtpSessions(procNetTCP string) int {
	n := 0
	for _, line := range strings.Split(procNetTCP, "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], ":0019") && f[3] == "01" {
			n++
		}
	}
	return n
}

// queueEmpty says whether a real MTA's queue holds no message: Courier
// keeps each as files under /var/lib/courier/msgs until it is delivered
// or bounced; Postfix under its spool's incoming, active and deferred
// queues (and maildrop, before pickup).
func queueEmpty(ctx context.Context, c *stack.Container) (bool, error) {
	dirs := "/var/lib/courier/msgs"
	if c.MTA == scenario.ImplPostfix {
		dirs = "/var/spool/postfix/maildrop /var/spool/postfix/incoming /var/spool/postfix/active /var/spool/postfix/deferred"
	}
	code, out, err := c.Exec(ctx, "sh", "-c", "find "+dirs+" -type f 2>/dev/null | wc -l")
	if err != nil || code != 0 {
		return false, fmt.Errorf("list %s's queue (exit %d): %v: %s", c.Role, code, err, out)
	}
	return strings.TrimSpace(string(out)) == "0", nil
}

// mtaEvents reads a real MTA's mail log into the lab's events (lab/mta).
func mtaEvents(ctx context.Context, c *stack.Container, now time.Time) ([]events.Event, error) {
	code, out, err := c.Exec(ctx, "cat", mta.LogPath)
	if err != nil || code != 0 {
		return nil, fmt.Errorf("read %s's mail log (exit %d): %v", c.Role, code, err)
	}
	return mta.ParseLog(bytes.NewReader(out), c.Role, now)
}

// maildirTimes gives the Maildir copied out of a real receiver the files'
// own modification times, to the microsecond, as find(1) reads them in the
// container: the report takes a delivery's time from its file when the
// receiver logs no Delivered event (the engine's archive keeps whole
// seconds only).
func maildirTimes(ctx context.Context, c *stack.Container, dir, local string) error {
	code, out, err := c.Exec(ctx, "find", dir, "-type", "f", "-printf", `%T@ %P\n`)
	if err != nil || code != 0 {
		return fmt.Errorf("read %s's Maildir times (exit %d): %v", c.Role, code, err)
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

// injectIDHost names the Message-IDs the lab gives messages a real
// sender's sendmail takes.
const injectIDHost = "inject.smtplab"

// injectedPath is where the lab's inject, in a real sender's container,
// writes a Queued event per message as its sendmail takes it.
const injectedPath = "/var/tmp/smtplab-injected.jsonl"

// stopInjection ends a real sender's inject loop if it still runs (the
// run's timeout came first) and waits for it to go, so that nothing is
// injected after the lab has read what was: SIGTERM makes it stop after
// the message in hand.
func stopInjection(ctx context.Context, c *stack.Container) error {
	script := fmt.Sprintf(`pid=$(cat %[1]s.pid 2>/dev/null) || exit 0
kill -TERM "$pid" 2>/dev/null || exit 0
i=0; while kill -0 "$pid" 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done`, injectedPath)
	code, out, err := c.Exec(ctx, "sh", "-c", script)
	if err != nil || code != 0 {
		return fmt.Errorf("stop the injection in %s (exit %d): %v: %s", c.Role, code, err, out)
	}
	return nil
}

// withInjected adds the Queued events of a real sender's injection (its
// own log has no Message-IDs) to the collected events, in time order: the
// ones the inject loop returned, and the ones it wrote to injectedPath as
// it went (all of them, also when the run's timeout cut the loop short
// and its answer never came), each Message-ID once.
func withInjected(ctx context.Context, r running, evs []events.Event, inj sender.InjectResult) []events.Event {
	queued := inj.Queued
	if r.sender.MTA != "" {
		if code, out, err := r.sender.Exec(ctx, "cat", injectedPath); err == nil && code == 0 {
			if logged, err := events.ReadJSONL(bytes.NewReader(out)); err == nil {
				queued = append(queued, logged...)
			}
		}
	}
	if len(queued) == 0 {
		return evs
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Kind == events.Queued {
			seen[e.MessageID] = true
		}
	}
	all := append([]events.Event{}, evs...)
	for _, e := range queued {
		if !seen[e.MessageID] {
			seen[e.MessageID] = true
			all = append(all, e)
		}
	}
	// Courier S's failures name no Message-ID: tie each to its injection
	// where the envelope allows.
	mta.TieInjected(all, queued)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return all
}

// saveMTALogs keeps each real MTA's mail log beside the result
// (<role>-mail.log): the evidence its events were read from.
func saveMTALogs(ctx context.Context, r running, dir string) error {
	for _, c := range r.all() {
		if c.MTA == "" {
			continue
		}
		code, out, err := c.Exec(ctx, "cat", mta.LogPath)
		if err != nil || code != 0 {
			return fmt.Errorf("read %s's mail log (exit %d): %v", c.Role, code, err)
		}
		if err := os.WriteFile(filepath.Join(dir, c.Role+"-mail.log"), out, 0o644); err != nil {
			return err
		}
	}
	return nil
}
