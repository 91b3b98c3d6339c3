package sender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/pace"
)

// Injection is what an injection loop is given (POST /inject on the Go
// sender, the workload file of a real one): the messages in order and
// the schedule to inject them on.
type Injection struct {
	Pace     pace.Spec `json:"pace"`
	Messages []Message `json:"messages"`
	// Direct: the Go sender commits each message itself, with the code
	// its sendmail runs (InjectDirect), instead of a sendmail process.
	Direct bool `json:"direct,omitempty"`
	// Places, when set, are the messages' places in the whole workload
	// (from 0), one per message: this sender injects its share of a
	// workload split among several senders, each message at its due time
	// in the whole schedule, and Starts name the whole workload's places.
	Places []int `json:"places,omitempty"`
}

// place is message i's place in the whole workload.
func (inj Injection) place(i int) int {
	if inj.Places != nil {
		return inj.Places[i]
	}
	return i
}

// ValidatePlaces says what is wrong with inj's Places, if anything: one
// place per message, each a place in the workload (0 or more), none twice.
func (inj Injection) ValidatePlaces() error {
	if inj.Places == nil {
		return nil
	}
	if len(inj.Places) != len(inj.Messages) {
		return fmt.Errorf("places: %d for %d messages, want one per message", len(inj.Places), len(inj.Messages))
	}
	seen := make(map[int]bool, len(inj.Places))
	for i, p := range inj.Places {
		if p < 0 {
			return fmt.Errorf("places[%d]: %d is not a place in a workload (0 or more)", i, p)
		}
		if seen[p] {
			return fmt.Errorf("places[%d]: %d given twice", i, p)
		}
		seen[p] = true
	}
	return nil
}

// Share is the part of inj that the k-th of n senders injects (from 0;
// any k outside 0 to n-1 has none): every n-th message from the k-th,
// each keeping its place in the whole schedule. Round robin keeps each
// sender's share spread over the workload's hosts and over time, as the
// whole is.
func (inj Injection) Share(k, n int) Injection {
	out := inj
	out.Messages, out.Places = nil, nil
	if n < 1 || k < 0 {
		return out // no such sender: nothing to inject
	}
	for i := k; i < len(inj.Messages); i += n {
		out.Messages = append(out.Messages, inj.Messages[i])
		out.Places = append(out.Places, inj.place(i))
	}
	return out
}

// Message is one message of a workload, as one sendmail call takes it.
type Message struct {
	Round, N int
	From     string // envelope sender (sendmail -f)
	To       string // the one envelope recipient
	// Data is the message as the workload's loop pipes it to sendmail.
	Data string
}

// InjectResult says what an injection loop did.
type InjectResult struct {
	Injected int           `json:"injected"`
	Errors   []string      `json:"errors,omitempty"` // one line per message sendmail refused or never ran
	Start    time.Time     `json:"start"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	// Starts holds, for each message whose sendmail ran, its place in the
	// workload, when it was due and when it began, in workload order.
	Starts []pace.Start `json:"starts,omitempty"`
	// Queued are the messages an outside sendmail took (InjectExternal):
	// Queued events with the Message-ID the loop gave each and the time
	// its sendmail started. The lab's own sendmail logs these itself.
	Queued []events.Event `json:"queued,omitempty"`
}

// Inject runs one sendmail process per message, "sendmail -f FROM RCPT"
// with the message on stdin, as the 1999 shell loop did, on inj's
// schedule (lab/pace). sendmail is the command line that starts sendmail
// (for the lab's image: /lab sendmail).
func Inject(ctx context.Context, inj Injection, sendmail []string) InjectResult {
	return injectEach(ctx, inj, SubmitSendmail(sendmail), nil)
}

// InjectDirect runs the same loop on the same schedule, but submits each
// message by calling Sendmail, the code `lab sendmail` runs, in this
// process (SubmitDirect): the same parsing, the same Message-ID and the
// same durable commit to the queue in dir, without a process to start.
func InjectDirect(ctx context.Context, inj Injection, dir, hostname string) InjectResult {
	return injectEach(ctx, inj, SubmitDirect(dir, hostname), nil)
}

// SubmitDirect submits each message as "sendmail -f FROM RCPT" would,
// calling Sendmail in this process with the queue in dir.
func SubmitDirect(dir, hostname string) Submit {
	return func(_ context.Context, m Message) error {
		return Sendmail([]string{"-f", m.From, m.To}, strings.NewReader(m.Data), dir, hostname)
	}
}

// Submit hands one message to a sender: its sendmail, or its SMTP
// submission port.
type Submit func(ctx context.Context, m Message) error

// SubmitSendmail submits each message with "sendmail -f FROM RCPT" (cmdline is
// the command that starts sendmail), the message on stdin, in an empty
// environment (env -, as the 1999 benchmark's loop ran it).
func SubmitSendmail(cmdline []string) Submit {
	return func(ctx context.Context, m Message) error {
		args := append(append([]string{}, cmdline[1:]...), "-f", m.From, m.To)
		cmd := exec.CommandContext(ctx, cmdline[0], args...)
		cmd.Env = []string{}
		cmd.Stdin = strings.NewReader(m.Data)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
}

// SubmitSMTP submits each message in an SMTP session of its own to addr
// (a sender's submission port, RFC 6409, without authentication): one
// transaction, then QUIT, as one sendmail call is one message.
func SubmitSMTP(addr string) Submit {
	return func(ctx context.Context, m Message) error {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		if dl, ok := ctx.Deadline(); ok {
			nc.SetDeadline(dl)
		}
		c := smtp.NewClient(nc)
		defer c.Close()
		if err := c.Hello("localhost"); err != nil {
			return err
		}
		if err := c.SendMail(m.From, []string{m.To}, strings.NewReader(m.Data)); err != nil {
			return err
		}
		return c.Quit()
	}
}

// injectEach runs one sendmail per message on inj's schedule and calls
// queued (when set; from any goroutine, one call at a time) with the
// index and start time of each message sendmail took.
//
// Rate: message i starts at its due time in a goroutine of its own, at
// most pace.MaxConcurrent at once, so a slow sendmail never delays the
// next (open loop). Burst and loop: one after another, in order.
func injectEach(ctx context.Context, inj Injection, submit Submit, queued func(i int, began time.Time)) InjectResult {
	res := InjectResult{Start: time.Now()}
	var mu sync.Mutex // res, queued
	one := func(i int, m Message, due time.Duration) {
		began := time.Now()
		if ctx.Err() != nil {
			mu.Lock()
			res.Errors = append(res.Errors, fmt.Sprintf("message %d: not injected: %v", inj.place(i)+1, ctx.Err()))
			mu.Unlock()
			return
		}
		// The message in hand is finished even when ctx ends: a sendmail
		// killed half way may already have queued it, unrecorded. Only a
		// sendmail that hangs is killed, after a minute.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err := submit(mctx, m)
		mu.Lock()
		defer mu.Unlock()
		st := pace.Start{Index: inj.place(i), Due: due, Began: began.Sub(res.Start)}
		if err == nil {
			st.Queued = time.Since(res.Start)
		}
		res.Starts = append(res.Starts, st)
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("message %d to %s: %v", inj.place(i)+1, m.To, err))
			return
		}
		res.Injected++
		if queued != nil {
			queued(i, began)
		}
	}
	if inj.Pace.Mode != pace.Rate {
		for i, m := range inj.Messages {
			one(i, m, 0)
		}
	} else {
		slots := make(chan struct{}, pace.MaxConcurrent)
		var wg sync.WaitGroup
		timer := time.NewTimer(0)
		<-timer.C
		for i, m := range inj.Messages {
			due := inj.Pace.Due(inj.place(i))
			if wait := time.Until(res.Start.Add(due)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					timer.Stop()
				}
			}
			if ctx.Err() != nil {
				one(i, m, due) // records it as not injected
				continue
			}
			slots <- struct{}{} // a full house lags the schedule, and the run says so
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				one(i, m, due)
			}()
		}
		wg.Wait()
	}
	slices.SortFunc(res.Starts, func(a, b pace.Start) int { return a.Index - b.Index })
	res.Elapsed = time.Since(res.Start)
	return res
}

// InjectExternal runs the injection loop with an outside MTA's sendmail
// (a real Courier's /usr/sbin/sendmail) and records what that sendmail
// does not tell: each message gets a Message-ID header naming idHost,
// added before the message's own headers, and a Queued event (role
// sender) with the time its sendmail started. The lab matches the Maildir
// to these. When log is not nil, each event is also written to it as a
// JSON line as soon as its sendmail returns: a loop cut short (the run's
// timeout) still leaves the record of what it injected.
func InjectExternal(ctx context.Context, inj Injection, submit Submit, idHost string, log io.Writer) InjectResult {
	msgs := inj.Messages
	withIDs := make([]Message, len(msgs))
	ids := make([]string, len(msgs))
	start := time.Now()
	for i, m := range msgs {
		ids[i] = fmt.Sprintf("<%d.%d.%d@%s>", start.UnixNano(), os.Getpid(), i+1, idHost)
		m.Data = "Message-ID: " + ids[i] + "\n" + m.Data
		withIDs[i] = m
	}
	var queued []events.Event
	res := injectEach(ctx, Injection{Pace: inj.Pace, Messages: withIDs}, submit, func(i int, began time.Time) {
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
