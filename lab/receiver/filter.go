package receiver

// courierfilter's part of Courier R: the content filter every accepted
// message passes before delivery, run from submit before the end of DATA
// is answered. Read in github.com/svarshavchik/courier:
//
//   - courier/courier/filters/courierfilter.sgml (courierfilter(8)): a
//     filter's verdict is written as an SMTP reply.
//   - courier/courier/doc/dot-courier.sgml and
//     courier/courier/module.local/deliver.c: dot-courier(5)'s exit codes
//     of a program, which decide for a command that writes no reply.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// filter is the spam-filter hook. In the 1999 benchmark (FilterHook) it
// costs this call and nothing else.
func (ss *session) filter(head, body []byte) *smtp.SMTPError {
	f := ss.s.cfg.Filter
	switch f.Mode {
	case FilterDelay:
		t := time.NewTimer(f.Delay.D())
		defer t.Stop()
		select {
		case <-t.C:
		case <-ss.s.ctx.Done():
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down."}
		}
	case FilterCommand:
		return ss.runFilter(f, head, body)
	}
	return nil
}

// permanentExit are the exit codes dot-courier(5) reads as a permanent
// failure of a delivery program (courier/courier/doc/dot-courier.sgml).
var permanentExit = map[int]bool{64: true, 65: true, 67: true, 68: true, 69: true, 70: true, 76: true, 77: true, 78: true, 100: true, 112: true}

func (ss *session) runFilter(f Filter, head, body []byte) *smtp.SMTPError {
	ctx, cancel := context.WithTimeout(ss.s.ctx, f.Timeout.D())
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Command[0], f.Command[1:]...)
	cmd.Stdin = io.MultiReader(bytes.NewReader(head), bytes.NewReader(body))
	cmd.Env = append(os.Environ(), "SENDER="+ss.from, "TCPREMOTEIP="+remoteIP(ss.conn))
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	if reply, ok := smtpReply(out.String()); ok && (err == nil || ctx.Err() == nil) {
		if reply.Code/100 == 2 {
			return nil
		}
		return reply
	}
	temp := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Message filter failed, try again later."}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return temp
	case errors.As(err, &ee) && ee.ExitCode() == 99:
		return nil
	case errors.As(err, &ee) && permanentExit[ee.ExitCode()]:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected by filter."}
	}
	return temp
}

// smtpReply reads the first line of a filter's output as an SMTP reply
// ("550 5.7.1 Spam", "451 later"): a 2xx, 4xx or 5xx code and text.
func smtpReply(out string) (*smtp.SMTPError, bool) {
	line, _, _ := strings.Cut(out, "\n")
	line = strings.TrimRight(line, "\r")
	if len(line) < 4 || line[3] != ' ' || line[0] < '2' || line[0] > '5' || line[0] == '3' ||
		line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' {
		return nil, false
	}
	code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	text := strings.Map(func(r rune) rune {
		if r < ' ' || r >= 0x7f {
			return '?'
		}
		return r
	}, strings.TrimSpace(line[4:]))
	ec := smtp.EnhancedCode{code / 100, 0, 0}
	var a, b, c int
	if n, _ := fmt.Sscanf(text, "%d.%d.%d ", &a, &b, &c); n == 3 && a == code/100 {
		ec = smtp.EnhancedCode{a, b, c}
		text = strings.TrimSpace(text[strings.IndexByte(text, ' ')+1:])
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: text}, true
}
