package sender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/scenario"
)

// InjectResult says what an injection loop did.
type InjectResult struct {
	Injected int           `json:"injected"`
	Errors   []string      `json:"errors,omitempty"` // one line per message sendmail refused
	Start    time.Time     `json:"start"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	// Queued are the messages an outside sendmail took (InjectExternal):
	// Queued events with the Message-ID the loop gave each and the time
	// its sendmail started. The lab's own sendmail logs these itself.
	Queued []events.Event `json:"queued,omitempty"`
}

// Inject runs the seed's loop: one sendmail process per message, in order,
// "sendmail -f FROM RCPT" with the message on stdin, as the 1999 shell loop
// did. sendmail is the command line that starts sendmail (for the lab's
// image: /lab sendmail).
func Inject(ctx context.Context, msgs []scenario.Message, sendmail []string) InjectResult {
	return injectEach(ctx, msgs, sendmail, nil)
}

// injectEach runs one sendmail per message, in order, and calls queued
// (when set) with the index and start time of each message it took.
func injectEach(ctx context.Context, msgs []scenario.Message, sendmail []string, queued func(i int, began time.Time)) InjectResult {
	res := InjectResult{Start: time.Now()}
	for i, m := range msgs {
		if ctx.Err() != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("message %d: %v", i+1, ctx.Err()))
			continue
		}
		args := append(append([]string{}, sendmail[1:]...), "-f", m.From, m.To)
		// The message in hand is finished even when ctx ends: a sendmail
		// killed half way may already have queued it, unrecorded. Only a
		// sendmail that hangs is killed, after a minute.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		cmd := exec.CommandContext(mctx, sendmail[0], args...)
		cmd.Env = []string{} // env -, as the seed's loop ran sendmail
		cmd.Stdin = strings.NewReader(m.Data)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		began := time.Now()
		err := cmd.Run()
		cancel()
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("message %d to %s: %v: %s", i+1, m.To, err, strings.TrimSpace(stderr.String())))
			continue
		}
		res.Injected++
		if queued != nil {
			queued(i, began)
		}
	}
	res.Elapsed = time.Since(res.Start)
	return res
}

// InjectExternal runs the seed's loop with an outside MTA's sendmail (a
// real Courier's /usr/sbin/sendmail) and records what that sendmail does
// not tell: each message gets a Message-ID header naming idHost, added
// before the message's own headers, and a Queued event (role sender) with
// the time its sendmail started. The lab matches the Maildir to these.
// When log is not nil, each event is also written to it as a JSON line
// as soon as its sendmail returns: a loop cut short (the run's timeout)
// still leaves the record of what it injected.
func InjectExternal(ctx context.Context, msgs []scenario.Message, sendmail []string, idHost string, log io.Writer) InjectResult {
	withIDs := make([]scenario.Message, len(msgs))
	ids := make([]string, len(msgs))
	start := time.Now()
	for i, m := range msgs {
		ids[i] = fmt.Sprintf("<%d.%d.%d@%s>", start.UnixNano(), os.Getpid(), i+1, idHost)
		m.Data = "Message-ID: " + ids[i] + "\n" + m.Data
		withIDs[i] = m
	}
	var queued []events.Event
	res := injectEach(ctx, withIDs, sendmail, func(i int, began time.Time) {
		e := events.Event{Time: began, Role: "sender", Kind: events.Queued,
			MessageID: ids[i], From: msgs[i].From, Rcpts: []string{msgs[i].To}}
		queued = append(queued, e)
		if log != nil {
			events.WriteJSONL(log, []events.Event{e})
		}
	})
	res.Queued = queued
	return res
}
