package sender

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// failure is one recipient that failed for good, and why.
type failure struct {
	rcpt string
	host string // the recipient host
	mta  string // the server that refused, when one did (the DSN's Remote-MTA)
	code int    // the SMTP reply code, 0 when no server answered
	err  error
}

// diagnostic is the Diagnostic-Code of a failure: the SMTP reply as it came
// when there was one (RFC 3464 2.3.6, type "smtp"), else the lab's own
// words under an X- type.
func (f failure) diagnostic() string {
	if r := replyOf(f.err); r != nil {
		return "smtp; " + r.Error()
	}
	return "X-Smtplab; " + oneLine(f.err.Error())
}

// status is the RFC 3463 status of a failure (RFC 3464 2.3.4): the
// enhanced code of the reply that decided it; for a reply without one, its
// class alone ("4.0.0", "5.0.0": RFC 3463 3.1 keeps X.0.0 for an error of
// which only the class is known); 5.0.0 when no server answered.
//
// A recipient given up after temporary replies keeps their class: after
// repeated "450 4.3.0" the DSN says Action: failed, Status: 4.3.0. RFC 3463
// section 2 defines 4.X.X as a temporary condition whose persistence made
// the attempts be abandoned, and says that beside a delivery failure it
// tells the sender a later try may succeed: the truth about such a
// recipient, in the peer's own code. Mapping it to 5.3.0 would claim a
// permanent failure nobody reported. Courier's DSN differs here: dodsn in
// courier/module.dsn/dsn.C writes 5.0.0 for every failed recipient,
// whatever the peer said, and leaves the peer's words to Diagnostic-Code
// (which the lab writes as Courier does). The lab takes Status from the
// reply, for a 4xx as for a 5xx.
func (f failure) status() string {
	r := replyOf(f.err)
	switch {
	case r == nil || r.Code < 400:
		return "5.0.0"
	case r.Enhanced() != "":
		return r.Enhanced()
	default:
		return strconv.Itoa(r.Code/100) + ".0.0"
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// buildDSN writes the delivery status notification (RFC 3464) for the
// failures of message env whose text is orig: a multipart/report from
// MAILER-DAEMON@hostname to the envelope sender, with a human part, the
// machine-readable delivery-status part and the original's header (not
// its body: Courier's default too, and a bounce stays small). It returns
// the text and the DSN's Message-ID.
func buildDSN(hostname string, env Envelope, orig []byte, fails []failure, now time.Time) ([]byte, string) {
	msgID := fmt.Sprintf("<%d.%d.%d.dsn@%s>", now.UnixNano(), os.Getpid(), idSeq.Add(1), hostname)
	boundary := fmt.Sprintf("=_%s_%d_%d", hostname, now.UnixNano(), idSeq.Add(1))
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Mail Delivery Subsystem <MAILER-DAEMON@%s>\n", hostname)
	fmt.Fprintf(&b, "To: <%s>\n", env.From)
	fmt.Fprintf(&b, "Subject: Delivery Status Notification (Failure)\n")
	fmt.Fprintf(&b, "Date: %s\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: %s\n", msgID)
	// RFC 3834: an automatic reply, so responders do not answer it.
	fmt.Fprintf(&b, "Auto-Submitted: auto-replied\n")
	fmt.Fprintf(&b, "MIME-Version: 1.0\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"%s\"\n\n", boundary)
	fmt.Fprintf(&b, "This is a MIME-formatted message.\n\n")

	fmt.Fprintf(&b, "--%s\nContent-Type: text/plain; charset=us-ascii\n\n", boundary)
	fmt.Fprintf(&b, "This is the mail system at %s.\n\n", hostname)
	fmt.Fprintf(&b, "Your message %s could not be delivered to the following\nrecipients. This is a permanent error.\n\n", env.MessageID)
	for _, f := range fails {
		fmt.Fprintf(&b, "<%s>: %s\n", f.rcpt, oneLine(f.err.Error()))
	}
	b.WriteString("\n")

	fmt.Fprintf(&b, "--%s\nContent-Type: message/delivery-status\n\n", boundary)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\n", hostname)
	fmt.Fprintf(&b, "X-Smtplab-Queue-ID: %s\n", env.ID)
	if !env.QueuedAt.IsZero() {
		fmt.Fprintf(&b, "Arrival-Date: %s\n", env.QueuedAt.Format(time.RFC1123Z))
	}
	for _, f := range fails {
		fmt.Fprintf(&b, "\nFinal-Recipient: rfc822; %s\n", f.rcpt)
		fmt.Fprintf(&b, "Action: failed\n")
		fmt.Fprintf(&b, "Status: %s\n", f.status())
		if f.mta != "" {
			fmt.Fprintf(&b, "Remote-MTA: dns; %s\n", f.mta)
		}
		fmt.Fprintf(&b, "Diagnostic-Code: %s\n", f.diagnostic())
		fmt.Fprintf(&b, "Last-Attempt-Date: %s\n", now.Format(time.RFC1123Z))
	}
	b.WriteString("\n")

	fmt.Fprintf(&b, "--%s\nContent-Type: text/rfc822-headers\n\n", boundary)
	b.Write(headerOf(orig))
	fmt.Fprintf(&b, "\n--%s--\n", boundary)
	return b.Bytes(), msgID
}

// headerOf returns the header lines of a message text (up to the first
// empty line), each ending in "\n".
func headerOf(text []byte) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}
