package report

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Side is one column of a three-way comparison: a run's figures and what
// played its roles.
type Side struct {
	Receiver, Sender string // "go", "courier", "postfix"
	Summary          Summary
}

// realName is how a column names a role's implementation.
func realName(impl string) string {
	switch impl {
	case "courier":
		return "real Courier"
	case "postfix":
		return "real Postfix"
	case "image":
		return "your image"
	}
	return "Go model"
}

// Heading names the column: "Go model", "real Courier", or both roles
// when they differ ("real Courier S -> real Postfix R").
func (s Side) Heading() string {
	if s.Receiver == s.Sender {
		return realName(s.Receiver)
	}
	return realName(s.Sender) + " S -> " + realName(s.Receiver) + " R"
}

// WriteThreeWay prints the Go model's run, the real MTAs' run of the same
// scenario and 1999's figures side by side. Where a real MTA gives no
// evidence for a figure (Summary.Unmeasured: Courier S logs no
// connections) the column says "not measured", and where its 0 needs a
// word (Postfix makes no IDENT lookup) it gets one, instead of a bare 0
// read as measured. not1999, when not "", is why the 1999 column is left
// out (scenario.Workload.Not1999), as in WriteText.
func WriteThreeWay(w io.Writer, title string, model, real Side, not1999 string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\n\n", title)
	then := func(c string) string { // the 1999 column, when it stands
		if not1999 != "" {
			return ""
		}
		return "\t" + c
	}
	fmt.Fprintf(tw, "\t%s\t%s\t%s%s\n", model.Heading(), real.Heading(), RatioHeading, then("1999"))
	m, r, s99 := model.Summary, real.Summary, Seed1999
	// row is a figure with no ratio (text, or counts that do not divide);
	// figure one whose model / real ratio says how alike the two are.
	row := func(name, a, b, c string) { fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", name, a, b, noRatio, then(c)) }
	figure := func(name, a, b string, x, y float64, c string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", name, a, b, ratio(x, y), then(c))
	}
	if not1999 != "" {
		defer fmt.Fprintf(w, "(no 1999 column: %s)\n", not1999)
	}
	delivered := func(s Summary) string { return fmt.Sprintf("%d / %d", s.Delivered, s.Injected) }
	// The pace first: the two columns compare only if both runs kept it.
	paceOf := func(s Summary) string {
		if s.Pace == nil {
			return "not recorded"
		}
		return PaceText(*s.Pace) + "; " + heldText(*s.Pace)
	}
	if m.Pace != nil || r.Pace != nil {
		row("pace (when each message was injected)", paceOf(m), paceOf(r), "a shell loop of sendmail: about 3 msg/s (assumed, docs/BENCHMARK-1999.md)")
	}
	row("delivered / injected", delivered(m), delivered(r), delivered(s99))
	figure("total time (first injection to last delivery)", secs(m.TotalTime), secs(r.TotalTime), m.TotalTime.Seconds(), r.TotalTime.Seconds(), secs(s99.TotalTime))
	figure("messages per second", fmt.Sprintf("%.1f", m.MessagesPerSecond), fmt.Sprintf("%.1f", r.MessagesPerSecond), m.MessagesPerSecond, r.MessagesPerSecond, fmt.Sprintf("%.1f", s99.MessagesPerSecond))
	figure("ESMTP connections (receiver)", fmt.Sprint(m.Connections), fmt.Sprint(r.Connections), float64(m.Connections), float64(r.Connections), fmt.Sprint(s99.Connections))
	senderConns := func(s Summary) string {
		return s.IfMeasured(KeySenderConnections, fmt.Sprintf("%d, %d", s.SenderConnections, s.SenderReused))
	}
	row("sender connections: opened, messages over a reused one", senderConns(m), senderConns(r), "57, not reported")
	figure("messages per connection", fmt.Sprintf("%.1f", m.MessagesPerConn), fmt.Sprintf("%.1f", r.MessagesPerConn), m.MessagesPerConn, r.MessagesPerConn, fmt.Sprintf("%.1f", float64(s99.Delivered)/float64(s99.Connections)))
	lookups := func(s Summary) string { return fmt.Sprintf("%d (%s)", s.DNSQueries, byType(s.DNSQueriesByType)) }
	figure("DNS lookups", lookups(m), lookups(r), float64(m.DNSQueries), float64(r.DNSQueries), "not measured")
	figure("DNS lookups per connection", fmt.Sprintf("%.1f", m.LookupsPerConnection), fmt.Sprintf("%.1f", r.LookupsPerConnection), m.LookupsPerConnection, r.LookupsPerConnection, fmt.Sprintf("%.0f", s99.LookupsPerConnection))
	ident := func(sd Side) string {
		if sd.Receiver == "postfix" {
			return "none: Postfix makes no IDENT lookup"
		}
		return fmt.Sprint(sd.Summary.IdentQueries)
	}
	if model.Receiver == "postfix" || real.Receiver == "postfix" {
		row("IDENT lookups", ident(model), ident(real), "one per connection")
	} else {
		figure("IDENT lookups", ident(model), ident(real), float64(m.IdentQueries), float64(r.IdentQueries), "one per connection")
	}
	lat := func(s Summary) string {
		return fmt.Sprintf("%s / %s / %s", secs(s.Latency.P50), secs(s.Latency.P90), secs(s.Latency.P99))
	}
	row("delivery latency p50 / p90 / p99", lat(m), lat(r), "not reported")
	figure("delivery latency p50", secs(m.Latency.P50), secs(r.Latency.P50), m.Latency.P50.Seconds(), r.Latency.P50.Seconds(), "not reported")
	figure("delivery latency max", secs(m.Latency.Max), secs(r.Latency.Max), m.Latency.Max.Seconds(), r.Latency.Max.Seconds(), "50-75 s")
	figure("messages over 10 s", fmt.Sprint(m.DeliveredLateMessages), fmt.Sprint(r.DeliveredLateMessages), float64(m.DeliveredLateMessages), float64(r.DeliveredLateMessages), fmt.Sprint(s99.DeliveredLateMessages))
	if m.LineFloor > 0 || r.LineFloor > 0 {
		row("DNS line floor", secs(m.LineFloor), secs(r.LineFloor), "not reported")
	}
	row("faults applied", orNone(byType(m.Faults)), orNone(byType(r.Faults)), "one stalled DNS query")
	held := func(s Summary) string { return s.IfMeasured(KeyHeldByFaults, HeldText(s)) }
	row("messages held by a faulted query", held(m), held(r), fmt.Sprint(s99.HeldByFaults))
	return tw.Flush()
}

// RatioHeading heads the column that divides the Go model's figure by the
// real MTAs' (1.00x: alike; timings are noisy on a shared machine, so the
// ratio of two runs made side by side is what compares, not either time).
const RatioHeading = "model / real"

// noRatio fills the ratio column where a figure does not divide.
const noRatio = "-"

// ratio is x / y as "1.03x"; noRatio when y is 0 (and "1.00x" when both are).
func ratio(x, y float64) string {
	switch {
	case y == 0 && x == 0:
		return "1.00x"
	case y == 0:
		return noRatio
	}
	return fmt.Sprintf("%.2fx", x/y)
}

// RealMTANotes says which of WriteText's figures a real MTA in a role
// leaves without evidence, so a 0 there is not read as measured;
// evidence is the receiver's (receiver.evidence: "" or "maildir", "mbox",
// "relay": it relayed every message to the lab's final receiver).
func RealMTANotes(receiver, sender, evidence string) []string {
	var out []string
	if evidence == "mbox" && receiver == "image" {
		out = append(out, "the receiver is an image the lab knows nothing of: deliveries come from the mbox the scenario names, copied out and split into messages, each timed by its separator line to the second; "+
			"ESMTP connections are the sender's count; DNS and IDENT lookups are counted at the lab's DNS server and identd; "+
			"the receiver's own checks, phases and messages held by a faulted query are not traced (it keeps no log the lab reads).")
		receiver = ""
	}
	if evidence == "relay" && receiver == "image" {
		out = append(out, "the receiver is an image the lab knows nothing of, relaying every message to the lab's final receiver (the relay topology): deliveries and their times come from there, and the relay hop times the receiver's own part; "+
			"ESMTP connections are the sender's count; DNS and IDENT lookups are counted at the lab's DNS server and identd; "+
			"the receiver's own checks, phases and messages held by a faulted query are not traced (it keeps no log the lab reads).")
		receiver = ""
	}
	switch receiver {
	case "external":
		out = append(out, "the receiver is a server outside Docker the lab knows nothing of: deliveries and their times come from the lab's final receiver it relays to (the relay topology); "+
			"ESMTP connections are the sender's count; its DNS lookups are counted only if it asks the lab's DNS, which it is not pointed at; "+
			"its own checks, phases and messages held by a faulted query are not traced.")
	case "image":
		out = append(out, "the receiver is an image the lab knows nothing of: deliveries and their times come from the Maildir the scenario names; "+
			"ESMTP connections are the sender's count; DNS and IDENT lookups are counted at the lab's DNS server and identd; "+
			"the receiver's own checks, phases and messages held by a faulted query are not traced (it keeps no log the lab reads).")
	case "postfix":
		out = append(out, "IDENT lookups: none, not a measured 0: Postfix makes no IDENT lookup.")
		fallthrough
	case "courier":
		out = append(out, fmt.Sprintf("the receiver is %s: connections come from its mail log, deliveries and their times from its Maildir's files; "+
			"messages held by a faulted query are not traced (it logs no per-lookup events): not measured when a fault delayed a query.", realName(receiver)))
	}
	if sender == "image" {
		out = append(out, "the sender is an image the lab knows nothing of: it keeps no log the lab reads, so sender connections are not measured; "+
			"injection times and Message-IDs come from the lab's loop in its container, around its sendmail or submission port.")
	}
	if sender == "courier" {
		out = append(out, "the sender is real Courier: it logs no connections, so sender connections are not measured; "+
			"injection times and Message-IDs come from the lab's loop around its sendmail.")
	}
	return out
}
