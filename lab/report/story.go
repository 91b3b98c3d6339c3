package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smtplab/smtplab/lab/topology"
)

// PhaseOrder is the order phases are shown in, as a delivery meets them.
var PhaseOrder = []string{"ident", "dns", "dns_line", "mail_rcpt", "mailfrom", "data", "disk"}

// PhaseInside says which phase a phase is part of ("" for none): its time
// is counted in both.
var PhaseInside = map[string]string{"dns_line": "dns", "mailfrom": "mail_rcpt", "disk": "data"}

// phaseLabel says what each phase measures, for people.
var phaseLabel = map[string]string{
	"ident":     "IDENT query back to the client (per connection)",
	"dns":       "DNS checks before the greeting (per lookup)",
	"dns_line":  "of which queued and on the DNS line (per query)",
	"mail_rcpt": "MAIL and RCPT commands (per command)",
	"mailfrom":  "of which the MAIL FROM domain lookup (BOFHCHECKDNS)",
	"data":      "DATA to final reply (per message)",
	"disk":      "of which Maildir write, fsync, rename (per copy)",
}

// Story is why one message took as long as it did: the connection it
// came over and that connection's checks, slowest first.
type Story struct {
	Message    MessageRecord
	Connection *ConnectionRecord // its receiver session; nil when unknown
	// WaitedForGreeting is how long the session's checks held the greeting
	// after the message was queued (0 when the session was ready).
	WaitedForGreeting time.Duration
}

// Slowest returns the n messages that took longest to arrive (lost ones
// first), each with its story.
func Slowest(r *Result, n int) []Story {
	msgs := append([]MessageRecord(nil), r.Messages...)
	sort.SliceStable(msgs, func(i, j int) bool {
		a, b := msgs[i], msgs[j]
		if (a.Copies == 0) != (b.Copies == 0) {
			return a.Copies == 0
		}
		return a.Latency > b.Latency
	})
	conns := map[string]*ConnectionRecord{}
	for i := range r.Connections {
		if c := &r.Connections[i]; c.Role == topology.Receiver {
			conns[c.Conn] = c
		}
	}
	var out []Story
	for _, m := range msgs[:min(n, len(msgs))] {
		s := Story{Message: m, Connection: conns[m.ReceiverConn]}
		if c := s.Connection; c != nil && !c.Greeting.IsZero() && c.Greeting.After(m.Queued) {
			s.WaitedForGreeting = c.Greeting.Sub(m.Queued)
		}
		out = append(out, s)
	}
	return out
}

// WriteDetails prints where the time went, per phase, the slowest
// messages with their stories, and the faults on the mail path
// (WriteFaults).
func WriteDetails(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(r.Summary.Phases) > 0 {
		fmt.Fprintf(tw, "\nwhere the time went\tcount\tp50 / p99\ttotal\n")
		for _, name := range PhaseOrder {
			if p, ok := r.Summary.Phases[name]; ok {
				fmt.Fprintf(tw, "  %s: %s\t%d\t%s / %s\t%s\n", name, phaseLabel[name], p.Count, secs(p.P50), secs(p.P99), secs(p.Total))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if stories := Slowest(r, 5); len(stories) > 0 {
		fmt.Fprintf(w, "\nthe slowest messages\n")
		for _, s := range stories {
			fmt.Fprintf(w, "  %s\n", s.Line())
		}
	}
	return WriteFaults(w, r)
}

// Line tells the story in one line.
func (s Story) Line() string {
	m := s.Message
	var b strings.Builder
	if m.Copies == 0 {
		fmt.Fprintf(&b, "%s to %s: %s", m.MessageID, strings.Join(m.Rcpts, ", "), m.Status)
		if m.Error != "" {
			fmt.Fprintf(&b, " (%s)", m.Error)
		}
	} else {
		fmt.Fprintf(&b, "%s to %s: %s", m.MessageID, strings.Join(m.Rcpts, ", "), secs(m.Latency))
	}
	if m.Attempts > 1 {
		fmt.Fprintf(&b, ", %d attempts", m.Attempts)
	}
	c := s.Connection
	if c == nil {
		return b.String()
	}
	fmt.Fprintf(&b, "; session %s", c.Conn)
	if s.WaitedForGreeting > 0 {
		fmt.Fprintf(&b, " (greeting %s after it was queued)", secs(s.WaitedForGreeting))
	}
	checks := append([]CheckRecord(nil), c.Checks...)
	sort.SliceStable(checks, func(i, j int) bool { return checks[i].Duration > checks[j].Duration })
	var parts []string
	for _, ck := range checks[:min(3, len(checks))] {
		p := fmt.Sprintf("%s %s %s", ck.Check, ck.Name, secs(ck.Duration))
		if ck.Faulted {
			p += " (hit by a fault)"
		}
		if t := ck.TriesText(); t != "" {
			p += " (" + t + ")"
		}
		if ck.Error != "" {
			p += " (" + ck.Error + ")"
		}
		parts = append(parts, p)
	}
	if len(parts) > 0 {
		fmt.Fprintf(&b, "; slowest checks: %s", strings.Join(parts, ", "))
	}
	return b.String()
}

// TriesText tells a check's queries when it sent more than one: "3 tries:
// 0 s stall, 5.00 s stall, 30.00 s stall; last NXDOMAIN"; "" otherwise.
func (ck CheckRecord) TriesText() string {
	if len(ck.Tries) < 2 {
		return ""
	}
	var at []string
	for _, t := range ck.Tries {
		p := secs(t.After)
		if t.Fault != "" {
			p += " " + t.Fault
		}
		at = append(at, p)
	}
	last := ck.Tries[len(ck.Tries)-1].Result
	return fmt.Sprintf("%d tries: %s; last %s", len(ck.Tries), strings.Join(at, ", "), last)
}
