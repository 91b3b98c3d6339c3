package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
)

// WriteText prints the summary beside 1999's figures, then anything lost.
//
// not1999, when not "", is why the 1999 column is left out
// (scenario.Workload.Not1999): figures of another workload do not stand
// beside 1999's.
func WriteText(w io.Writer, title string, s Summary, o Outcome, not1999 string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\n\n", title)
	if not1999 == "" {
		fmt.Fprintf(tw, "\tthis run\t1999\n")
	} else {
		fmt.Fprintf(tw, "\tthis run\n")
	}
	for _, r := range Rows(s, Seed1999) {
		if not1999 == "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Now, r.Then)
		} else {
			fmt.Fprintf(tw, "%s\t%s\n", r.Name, r.Now)
		}
	}
	if not1999 != "" {
		fmt.Fprintf(tw, "(no 1999 column: %s)\n", not1999)
	}
	if len(s.Checks) > 0 {
		fmt.Fprintf(tw, "\nwhere the receiver's time went before the greeting\tper connection p50 / p99\ttotal (count, failed)\n")
		for _, name := range []string{"ident", "reverse", "forward", "local_reverse", "local_forward", "dnsbl", "mailfrom"} {
			if ct, ok := s.Checks[name]; ok {
				fmt.Fprintf(tw, "  %s\t%s / %s\t%s (%d, %d failed)\n", name, secs(ct.P50), secs(ct.P99), secs(ct.Total), ct.Count, ct.Failed)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.Pace != nil {
		if msg := s.Pace.NotHeld(); msg != "" {
			fmt.Fprintf(w, "\n%s: its figures were measured at another pace than the scenario's and are not comparable\n", strings.ToUpper(msg[:1])+msg[1:])
		} else if s.Pace.MachineDependent {
			fmt.Fprintf(w, "\nThe pace was this machine's speed (pace mode loop): the figures are not comparable across machines or loads\n")
		}
	}
	if o.OK() {
		_, err := fmt.Fprintf(w, "\nevery injected message was delivered exactly once\n")
		return err
	}
	fmt.Fprintln(w)
	for _, l := range []struct {
		name string
		ids  []string
	}{{"lost", o.Lost}, {"duplicated", o.Duplicated}, {"unexpected", o.Unexpected}, {"failed", o.Failed}, {"not queued", o.NotQueued}} {
		for _, id := range l.ids {
			fmt.Fprintf(w, "%s: %s\n", l.name, id)
		}
	}
	return nil
}

// Row is one figure of a run beside the same figure in 1999.
type Row struct{ Name, Now, Then string }

// Rows are the summary's figures beside s99's (Seed1999), as the text and
// HTML reports show them; where 1999 gave no figure, Then says so.
func Rows(s, s99 Summary) []Row {
	var rows []Row
	add := func(name, now, then string) { rows = append(rows, Row{name, now, then}) }
	if s.Pace != nil {
		add("pace (when each message was injected)", PaceText(*s.Pace), "a shell loop of sendmail: about 3 msg/s (assumed, docs/BENCHMARK-1999.md)")
		if s.Pace.Mode == pace.Rate {
			add("injection lag p50 / p99 / max (bound)", fmt.Sprintf("%s / %s / %s (%s): %s", secs(s.Pace.LagP50), secs(s.Pace.LagP99), secs(s.Pace.LagMax), secs(s.Pace.MaxLag), heldText(*s.Pace)), "not reported")
			add("latest into the sender's queue after its time", secs(s.Pace.QueueLagMax), "not reported")
		}
	}
	add("delivered / injected", fmt.Sprintf("%d / %d", s.Delivered, s.Injected), fmt.Sprintf("%d / %d", s99.Delivered, s99.Injected))
	add("total time (first injection to last delivery)", secs(s.TotalTime), secs(s99.TotalTime))
	add("messages per second", fmt.Sprintf("%.1f", s.MessagesPerSecond), fmt.Sprintf("%.1f", s99.MessagesPerSecond))
	conns := s.IfMeasured(KeyConnections, fmt.Sprint(s.Connections))
	if s.ConnectionsFrom == "sender" {
		conns += " (counted at the sender: the receiver keeps no log the lab reads)"
	}
	add("ESMTP connections", conns, fmt.Sprint(s99.Connections))
	if s.Refused > 0 {
		add("connections refused over a limit", fmt.Sprint(s.Refused), "not reported")
	}
	// Unmeasured with a real sender (Summary.Unmeasured): the reason is
	// given once, on the first of the two rows.
	add("sender connections: opened, messages over a reused one",
		s.IfMeasured(KeySenderConnections, fmt.Sprintf("%d, %d", s.SenderConnections, s.SenderReused)), fmt.Sprintf("%d, not reported", s99.Connections))
	closes := orNone(byType(s.SenderCloses))
	if !s.Measured(KeySenderCloses) {
		closes = "not measured"
	}
	add("sender connections by how they ended", closes, "\"reused most sessions, closed some\"")
	add("messages per connection", fmt.Sprintf("%.1f", s.MessagesPerConn), fmt.Sprintf("%.1f", float64(s99.Delivered)/float64(s99.Connections)))
	add("DNS lookups", fmt.Sprintf("%d (%s)", s.DNSQueries, byType(s.DNSQueriesByType)), "not measured (the file's 216 does not add up)")
	add("DNS lookups per connection", fmt.Sprintf("%.1f", s.LookupsPerConnection), fmt.Sprintf("%.0f", s99.LookupsPerConnection))
	add("IDENT lookups", fmt.Sprint(s.IdentQueries), "one per connection")
	add("delivery latency p50 / p90 / p99", fmt.Sprintf("%s / %s / %s", secs(s.Latency.P50), secs(s.Latency.P90), secs(s.Latency.P99)), "not reported")
	add("delivery latency max", secs(s.Latency.Max), "50-75 s (4 messages held by one stalled DNS query)")
	if s.Evidence == "relay" {
		hop := "not measured (the sender logs no Message-ID with its deliveries)"
		if h := s.RelayHop; h != nil {
			hop = fmt.Sprintf("%s / %s / %s", secs(h.P50), secs(h.P90), secs(h.P99))
		}
		add("relay hop p50 / p90 / p99 (receiver's 250 to the lab's final receiver)", hop, "no relay")
	}
	add("messages over 10 s", fmt.Sprint(s.DeliveredLateMessages), fmt.Sprint(s99.DeliveredLateMessages))
	add("sender retries", fmt.Sprint(s.Retries), "not reported")
	if len(s.Rejections) > 0 {
		add("commands the receiver refused, by reply code", byType(s.Rejections), "not reported")
	}
	if s.DSNs > 0 {
		add("bounces (DSNs) queued, of which undeliverable", fmt.Sprintf("%d, %d", s.DSNs, s.DSNsFailed), "not reported")
	}
	if s.DNSOnLine.Max > 0 {
		add("DNS wait in the line's queues p50 / p99", fmt.Sprintf("%s / %s", secs(s.DNSLineWait.P50), secs(s.DNSLineWait.P99)), "not reported")
		add("DNS time on the line p50 / p99", fmt.Sprintf("%s / %s", secs(s.DNSOnLine.P50), secs(s.DNSOnLine.P99)), "not reported")
	}
	if s.LineFloor > 0 {
		add("DNS line floor (least time the line allows for these lookups)", secs(s.LineFloor), "not reported")
	}
	add("faults applied", orNone(byType(s.Faults)), "one stalled DNS query")
	add("messages held by a faulted query", s.IfMeasured(KeyHeldByFaults, HeldText(s)), fmt.Sprint(s99.HeldByFaults))
	return rows
}

// PaceText says in a few words how a run's injection was paced.
func PaceText(k pace.Kept) string {
	t := paceMode(k) + injectionText(k.Injection)
	if k.Senders > 1 {
		t += fmt.Sprintf(", split among %d sending hosts", k.Senders)
	}
	return t
}

// injectionText says how messages entered the queue, when the result
// says (Kept.Injection).
func injectionText(how string) string {
	switch how {
	case "sendmail":
		return ", one sendmail process per message"
	case "direct":
		return ", in the sender's process (no sendmail process)"
	}
	return ""
}

func paceMode(k pace.Kept) string {
	switch k.Mode {
	case pace.Rate:
		return fmt.Sprintf("rate: %.4g msg/s intended, %.4g achieved", k.IntendedRate, k.AchievedRate)
	case pace.Burst:
		return fmt.Sprintf("burst: the whole workload queued before delivery (%.3g msg/s into the queue)", k.AchievedRate)
	case pace.Loop:
		return fmt.Sprintf("loop: as fast as this machine went, %.3g msg/s (machine-dependent: not comparable across machines or loads)", k.AchievedRate)
	}
	return k.Mode
}

func heldText(k pace.Kept) string {
	switch {
	case k.NotJudged != "":
		return "not judged: " + k.NotJudged
	case k.Held == nil:
		return "no schedule to hold"
	case *k.Held:
		return "pace held"
	}
	return "PACE NOT HELD"
}

// Secs formats a duration as the reports do: "0 s", "0.3 ms", "150 ms",
// "8.51 s".
func Secs(d time.Duration) string { return secs(d) }

func secs(d time.Duration) string {
	switch {
	case d == 0:
		return "0 s"
	case d.Abs() < time.Millisecond:
		// To the microsecond ("0.3 ms", "0.042 ms"): a time that was
		// not 0 never reads "0 ms".
		ms := float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
		if ms == 0 {
			return "<0.001 ms"
		}
		return strconv.FormatFloat(ms, 'f', -1, 64) + " ms"
	case d.Round(time.Millisecond) < time.Second: // 999.6 ms is "1.00 s", not "1000 ms"
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func byType(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// touchedShown is how many touched messages the reports tell one by one.
const touchedShown = 10

// WriteFaults prints the faults on the mail path, when the run had any:
// each outage, the link's faults, the messages they touched (the first
// touchedShown, the rest counted) and the exceptions they explain.
// Times are offsets from the run's first queued message.
func WriteFaults(w io.Writer, r *Result) error {
	if len(r.Outages) == 0 && r.Link == nil {
		return nil
	}
	var zero time.Time
	if len(r.Messages) > 0 {
		zero = r.Messages[0].Queued // in the order queued
	}
	fmt.Fprintf(w, "\nFaults on the mail path (times from the first message queued)\n")
	for _, o := range r.Outages {
		fmt.Fprintf(w, "  %s\n", o.Line(zero))
	}
	if r.Link != nil {
		fmt.Fprintf(w, "  the link: %s\n", r.Link)
	}
	touched := r.Touched()
	fmt.Fprintf(w, "  messages touched: %d of %d\n", len(touched), len(r.Messages))
	for _, m := range touched[:min(touchedShown, len(touched))] {
		fmt.Fprintf(w, "    %s\n", m.FaultStory())
	}
	if n := len(touched) - touchedShown; n > 0 {
		fmt.Fprintf(w, "    and %d more\n", n)
	}
	ex := r.Outcome.Exceptions()
	if len(ex) == 0 {
		_, err := fmt.Fprintf(w, "  no exception: every injected message was delivered exactly once\n")
		return err
	}
	fmt.Fprintf(w, "  exceptions, with the fault that explains each\n")
	for _, e := range ex {
		if _, err := fmt.Fprintf(w, "    %s\n", e); err != nil {
			return err
		}
	}
	return nil
}

// Line tells an outage in one line, its times as offsets from zero:
// "faults[0] kill receiver (after 50 delivered): began +12.30 s, out
// 5.00 s, back +17.30 s".
func (o OutageRecord) Line(zero time.Time) string {
	head := fmt.Sprintf("%s %s %s (%s)", o.Rule, o.Fault, o.Role, o.Trigger)
	switch {
	case o.Skipped:
		return head + ": skipped (its seeded draw said no)"
	case o.Began.IsZero():
		return head + ": did not begin: " + o.Error
	}
	s := fmt.Sprintf("%s: began %s, out %s", head, Offset(zero, o.Began), secs(o.Duration))
	if o.Ended.IsZero() {
		s += ", never back (to the run's end)"
	} else {
		s += ", back " + Offset(zero, o.Ended)
	}
	if o.Error != "" {
		s += " (" + o.Error + ")"
	}
	return s
}

// Offset is t as an offset from zero: "+12.30 s", "-500 ms".
func Offset(zero, t time.Time) string {
	if d := t.Sub(zero); d < 0 {
		return "-" + secs(-d)
	}
	return "+" + secs(t.Sub(zero))
}

// HeldText is Summary.HeldByFaults, split when some of the held messages
// waited for a session rather than in one: "10 (4 in sessions waiting on
// it, 6 waiting for a session to their host)".
func HeldText(s Summary) string {
	if s.HeldInSession == 0 || s.HeldInSession == s.HeldByFaults {
		return fmt.Sprint(s.HeldByFaults)
	}
	return fmt.Sprintf("%d (%d in sessions waiting on it, %d waiting for a session to their host)", s.HeldByFaults, s.HeldInSession, s.HeldByFaults-s.HeldInSession)
}
