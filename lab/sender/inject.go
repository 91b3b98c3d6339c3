package sender

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/scenario"
)

// InjectResult says what an injection loop did.
type InjectResult struct {
	Injected int           `json:"injected"`
	Errors   []string      `json:"errors,omitempty"` // one line per message sendmail refused
	Start    time.Time     `json:"start"`
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// Inject runs the seed's loop: one sendmail process per message, in order,
// "sendmail -f FROM RCPT" with the message on stdin, as the 1999 shell loop
// did. sendmail is the command line that starts sendmail (for the lab's
// image: /lab sendmail).
func Inject(ctx context.Context, msgs []scenario.Message, sendmail []string) InjectResult {
	res := InjectResult{Start: time.Now()}
	for i, m := range msgs {
		if ctx.Err() != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("message %d: %v", i+1, ctx.Err()))
			continue
		}
		args := append(append([]string{}, sendmail[1:]...), "-f", m.From, m.To)
		cmd := exec.CommandContext(ctx, sendmail[0], args...)
		cmd.Env = []string{} // env -, as the seed's loop ran sendmail
		cmd.Stdin = strings.NewReader(m.Data)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("message %d to %s: %v: %s", i+1, m.To, err, strings.TrimSpace(stderr.String())))
			continue
		}
		res.Injected++
	}
	res.Elapsed = time.Since(res.Start)
	return res
}
