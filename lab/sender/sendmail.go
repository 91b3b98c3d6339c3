package sender

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// Exit codes of the sendmail entry point, from sysexits.h as sendmail uses
// them.
const (
	ExitOK       = 0
	ExitUsage    = 64 // EX_USAGE: bad command line
	ExitDataErr  = 65 // EX_DATAERR: bad address or message
	ExitIOErr    = 74 // EX_IOERR: the queue could not be written
	ExitTempFail = 75 // EX_TEMPFAIL
)

// SendmailArgs is a parsed sendmail command line.
type SendmailArgs struct {
	From       string   // -f
	FullName   string   // -F
	Rcpts      []string // operands
	IgnoreDots bool     // -i / -oi: a lone "." does not end the message
	FromHeader bool     // -t: recipients from To, Cc, Bcc
}

// UsageError is a bad sendmail command line or message; Code is the exit
// code to use.
type UsageError struct {
	Code int
	Msg  string
}

func (e *UsageError) Error() string { return e.Msg }

// ParseSendmailArgs reads sendmail's options as the 1999 benchmark's loop
// and common callers use them: -f FROM (or -fFROM), -F NAME, -i, -oi, -t,
// and recipients. Other -o options are accepted and ignored, as sendmail
// does.
func ParseSendmailArgs(args []string) (SendmailArgs, error) {
	var a SendmailArgs
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			a.Rcpts = append(a.Rcpts, args[i+1:]...)
			i = len(args)
		case arg == "-f" || arg == "-F":
			if i+1 >= len(args) {
				return a, &UsageError{ExitUsage, "sendmail: " + arg + " needs a value"}
			}
			i++
			if arg == "-f" {
				a.From = args[i]
			} else {
				a.FullName = args[i]
			}
		case strings.HasPrefix(arg, "-f"):
			a.From = arg[2:]
		case strings.HasPrefix(arg, "-F"):
			a.FullName = arg[2:]
		case arg == "-i" || arg == "-oi":
			a.IgnoreDots = true
		case arg == "-t":
			a.FromHeader = true
		case strings.HasPrefix(arg, "-o"):
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			return a, &UsageError{ExitUsage, fmt.Sprintf("sendmail: unknown option %q", arg)}
		default:
			a.Rcpts = append(a.Rcpts, arg)
		}
	}
	for _, r := range a.Rcpts {
		if err := checkAddress(r); err != nil {
			return a, err
		}
	}
	if a.From != "" {
		if err := checkAddress(a.From); err != nil {
			return a, err
		}
	}
	if len(a.Rcpts) == 0 && !a.FromHeader {
		return a, &UsageError{ExitUsage, "sendmail: no recipients"}
	}
	return a, nil
}

func checkAddress(a string) error {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || strings.ContainsAny(a, " \t\r\n<>(),;:\"") {
		return &UsageError{ExitDataErr, fmt.Sprintf("sendmail: %q is not a mail address (local@domain)", a)}
	}
	return nil
}

// BuildMessage reads a message as sendmail does (up to EOF, or a lone "."
// line unless IgnoreDots) and adds the headers a sendmail adds when
// missing: From (the envelope sender), Date and Message-ID. It returns the
// message, its Message-ID and, with -t, the recipients from its headers
// (a Bcc header is dropped).
func BuildMessage(a SendmailArgs, r io.Reader, hostname string, now time.Time) (text []byte, msgID string, rcpts []string, err error) {
	var raw bytes.Buffer
	br := bufio.NewReader(r)
	for {
		line, rerr := br.ReadString('\n')
		if !a.IgnoreDots && strings.TrimRight(line, "\r\n") == "." {
			break
		}
		raw.WriteString(line)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, "", nil, &UsageError{ExitIOErr, "sendmail: reading the message: " + rerr.Error()}
		}
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw.Bytes())))
	hdr, herr := tp.ReadMIMEHeader()
	if herr != nil && herr != io.EOF {
		return nil, "", nil, &UsageError{ExitDataErr, "sendmail: malformed message header: " + herr.Error()}
	}
	rest, _ := io.ReadAll(tp.R)

	var out bytes.Buffer
	if hdr.Get("Message-Id") == "" {
		msgID = fmt.Sprintf("<%d.%d.%d@%s>", now.UnixNano(), os.Getpid(), idSeq.Add(1), hostname)
		fmt.Fprintf(&out, "Message-ID: %s\n", msgID)
	} else {
		msgID = strings.TrimSpace(hdr.Get("Message-Id"))
	}
	if hdr.Get("Date") == "" {
		fmt.Fprintf(&out, "Date: %s\n", now.Format(time.RFC1123Z))
	}
	if hdr.Get("From") == "" {
		from := envelopeFrom(a, hostname)
		if a.FullName != "" {
			from = (&mail.Address{Name: a.FullName, Address: from}).String()
		}
		fmt.Fprintf(&out, "From: %s\n", from)
	}
	if a.FromHeader {
		for _, k := range []string{"To", "Cc", "Bcc"} {
			for _, v := range hdr.Values(k) {
				list, perr := mail.ParseAddressList(v)
				if perr != nil {
					return nil, "", nil, &UsageError{ExitDataErr, fmt.Sprintf("sendmail: bad %s header %q: %v", k, v, perr)}
				}
				for _, ad := range list {
					rcpts = append(rcpts, ad.Address)
				}
			}
		}
		if len(rcpts) == 0 {
			return nil, "", nil, &UsageError{ExitUsage, "sendmail: -t and no recipients in To, Cc or Bcc"}
		}
	}
	// The original header lines, in order, minus Bcc (and the lines it is
	// folded on) when -t.
	orig := raw.Bytes()
	inBcc := false
	for len(orig) > 0 {
		i := bytes.IndexByte(orig, '\n')
		line := orig
		if i >= 0 {
			line = orig[:i+1]
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			break
		}
		orig = orig[len(line):]
		if trimmed[0] != ' ' && trimmed[0] != '\t' {
			inBcc = a.FromHeader && bytes.HasPrefix(bytes.ToLower(trimmed), []byte("bcc:"))
		}
		if inBcc {
			continue
		}
		out.Write(line)
		if i < 0 {
			out.WriteByte('\n')
		}
	}
	out.WriteByte('\n')
	out.Write(rest)
	return out.Bytes(), msgID, rcpts, nil
}

// Sendmail is the sendmail entry point: it parses args, reads the message
// from stdin, commits it to the queue in dir and wakes the sender. The
// error, when not nil, is a *UsageError carrying the exit code.
func Sendmail(args []string, stdin io.Reader, dir, hostname string) error {
	a, err := ParseSendmailArgs(args)
	if err != nil {
		return err
	}
	text, msgID, hdrRcpts, err := BuildMessage(a, stdin, hostname, time.Now())
	if err != nil {
		return err
	}
	rcpts := append(a.Rcpts, hdrRcpts...)
	for _, r := range rcpts {
		if err := checkAddress(r); err != nil {
			return err
		}
	}
	from := envelopeFrom(a, hostname)
	q, err := OpenQueue(dir)
	if err != nil {
		return &UsageError{ExitTempFail, "sendmail: " + err.Error()}
	}
	if _, err := q.Put(Envelope{From: from, Rcpts: rcpts, MessageID: msgID}, text); err != nil {
		return &UsageError{ExitIOErr, "sendmail: " + err.Error()}
	}
	wake(dir)
	return nil
}

// envelopeFrom is the sender of the message: -f, else root@hostname.
func envelopeFrom(a SendmailArgs, hostname string) string {
	if a.From != "" {
		return a.From
	}
	return "root@" + hostname
}

// wake tells a running sender that the queue has a new message. It is a
// hint: the sender also scans the queue on its own.
func wake(dir string) {
	c, err := net.Dial("unixgram", wakeSocket(dir))
	if err != nil {
		return
	}
	c.Write([]byte{1})
	c.Close()
}
