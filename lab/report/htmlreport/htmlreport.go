// Package htmlreport writes one run's result as a single HTML page that
// opens offline: inline CSS, charts drawn by gonum/plot as inline SVG, no
// script and no reference to anything outside the file.
//
// The page leads with where the time went (the per-phase chart and the
// summary beside 1999's figures), then the run's curves over time, the
// slowest messages with the story of their receiver connection, and last
// the scenario and environment as run. An incomplete result (the run
// failed before its figures were built) says so with its error and shows
// no charts, since its records are empty.
package htmlreport

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/topology"
)

//go:embed page.html.tmpl
var pageText string

var pageTmpl = template.Must(template.Must(template.New("page").Parse(styleText)).Parse(pageText))

// slowest is how many of the slowest messages the page tells in full.
const slowest = 10

// Write writes r as one self-contained HTML page that opens offline.
func Write(w io.Writer, r *report.Result) error {
	pg, err := build(r)
	if err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	if err := pageTmpl.Execute(w, pg); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	return nil
}

// WriteFile writes r.Dir/report.html (report.HTMLFile).
func WriteFile(r *report.Result) error {
	if r.Dir == "" {
		return fmt.Errorf("html report: the result has no folder (Dir) to write %s in", report.HTMLFile)
	}
	return writeAtomic(filepath.Join(r.Dir, report.HTMLFile), func(w io.Writer) error { return Write(w, r) })
}

// page is everything the template shows, already formatted: the
// template lays it out and escapes it, nothing more.
type page struct {
	Title       string
	RunID       string
	Name        string
	Description string
	Started     string
	Complete    bool
	Error       string
	Status      string // "ok", "warn" or "bad": the banner's colour
	StatusText  string
	// Not1999 is why the 1999 figures are left out ("" when they stand
	// beside this run's: scenario.Workload.Not1999).
	Not1999     string
	Glance      []figure
	TimeWent    string
	Summary     []row
	Checks      []checkRow
	Expect      []report.Verdict
	ExpectFail  int
	OutcomeOK   bool
	Outcome     []outcomeList
	Charts      []*chart
	Slowest     []slowMessage
	Faults      []faultRow
	MailPath    *mailPath // nil when the run had no fault on the mail path
	Scenario    string
	Environment []row
}

// figure is one headline number with 1999's beside it.
type figure struct {
	Name, Now, Then string
}

// row is one line of a two- or three-column table.
type row struct {
	Name, Now, Then string
}

type checkRow struct {
	Name, Count, Failed, P50, P99, Max, Total string
}

type outcomeList struct {
	Name string
	IDs  []string
}

type slowMessage struct {
	Rank                         int
	MessageID, QueueID, Rcpts    string
	Queued, Delivered, Latency   string
	Attempts                     int
	Status, SenderConn, RecvConn string
	Error                        string
	Conn                         *connStory
	HeldByFault                  bool // one of its connection's checks waited on a faulted query
	Went                         []segment
}

// connStory is a receiver connection from accept to close.
type connStory struct {
	Conn, Host, Opened, Greeting, ToGreeting, Closed, Reason string
	Messages                                                 int
	Checks                                                   []checkStory
}

// segment is one part of a message's latency.
type segment struct {
	Name, Took string
	Percent    int // of the latency, for the stacked bar
	Kind       string
	d          time.Duration
}

type checkStory struct {
	Check, Name, QType, Start, Duration, Result, Error string
	Tries                                              string // the queries it sent, when more than one (CheckRecord.TriesText)
	Faulted                                            bool
	Percent                                            int // of the time to the greeting, for the bar
}

// mailPath is the faults on the mail path: the outages, the link's
// faults, the messages they touched and the exceptions they explain.
type mailPath struct {
	Outages    []outageRow
	Link       string
	Touched    []touchedRow
	Count      int // messages touched
	More       int // touched messages not shown
	Total      int // messages in the run
	Exceptions []string
}

type outageRow struct {
	Rule, Fault, Role, Trigger, Began, Out, Back, Error string
}

type touchedRow struct {
	MessageID, Rcpts, Faults, Status string
	Attempts, Copies                 int
}

type faultRow struct {
	At, Role, Fault, Name, Duration, Reason string
	Seq                                     int
}

func build(r *report.Result) (*page, error) {
	sc, err := json.MarshalIndent(r.Scenario, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	pg := &page{
		Title:       "smtplab: " + r.RunID,
		RunID:       r.RunID,
		Name:        r.Scenario.Name,
		Description: r.Scenario.Description,
		Complete:    r.Complete,
		Error:       r.Error,
		Scenario:    string(sc),
		Environment: environment(r),
	}
	if !r.Started.IsZero() {
		pg.Started = r.Started.UTC().Format("2006-01-02 15:04:05 MST")
	}
	if !r.Complete {
		pg.Status = "bad"
		pg.StatusText = "This run is incomplete: it ended before its figures were built, so there is no summary, outcome or chart to show."
		return pg, nil
	}
	s := r.Summary
	pg.Expect = r.Expectations
	pg.ExpectFail = len(report.Failed(r.Expectations))
	pg.OutcomeOK = r.Outcome.OK()
	pg.Outcome = outcome(r.Outcome)
	notHeld := ""
	if s.Pace != nil {
		notHeld = s.Pace.NotHeld()
	}
	switch {
	case !pg.OutcomeOK || pg.ExpectFail > 0 || r.Error != "" || notHeld != "":
		pg.Status = "warn"
	default:
		pg.Status = "ok"
	}
	pg.StatusText = fmt.Sprintf("%d of %d injected messages delivered in %s.", s.Delivered, s.Injected, secs(s.TotalTime))
	if pg.OutcomeOK {
		pg.StatusText += " Every injected message was delivered exactly once."
	} else {
		pg.StatusText += " Not every injected message was delivered exactly once: see the outcome."
	}
	if pg.ExpectFail > 0 {
		pg.StatusText += fmt.Sprintf(" %d of %d expectations failed.", pg.ExpectFail, len(r.Expectations))
	}
	switch {
	case notHeld != "":
		pg.StatusText += " The " + notHeld + ": the figures were measured at another pace than the scenario's and are not comparable."
	case s.Pace != nil && s.Pace.MachineDependent:
		pg.StatusText += " The pace was this machine's speed (pace mode loop): the figures are not comparable across machines or loads."
	}
	pg.Not1999 = r.Scenario.Workload.Not1999()
	pg.Glance = glance(s, report.Seed1999)
	pg.TimeWent = timeWent(s)
	pg.Summary = summaryRows(s, r.Seed1999)
	pg.Checks = checkRows(s)
	if pg.Charts, err = charts(r); err != nil {
		return nil, err
	}
	tl := newTimeline(r)
	pg.Slowest = slowMessages(r, tl)
	for _, f := range r.Faults {
		pg.Faults = append(pg.Faults, faultRow{At: at(tl, f.Time), Role: string(f.Role), Fault: f.Fault, Name: f.Name,
			Seq: f.Seq, Duration: secs(f.Duration), Reason: f.Reason})
	}
	pg.MailPath = mailPathOf(r, tl)
	return pg, nil
}

// mailPathOf is report.WriteFaults as a section: nil when the run had
// no fault on the mail path.
func mailPathOf(r *report.Result, tl timeline) *mailPath {
	if len(r.Outages) == 0 && r.Link == nil {
		return nil
	}
	mp := &mailPath{Total: len(r.Messages), Exceptions: r.Outcome.Exceptions()}
	for _, o := range r.Outages {
		row := outageRow{Rule: o.Rule, Fault: o.Fault, Role: string(o.Role), Trigger: o.Trigger, Error: o.Error}
		switch {
		case o.Skipped:
			row.Began = "skipped (its seeded draw said no)"
		case o.Began.IsZero():
			row.Began = "did not begin"
		default:
			row.Began, row.Out, row.Back = at(tl, o.Began), secs(o.Duration), at(tl, o.Ended)
		}
		mp.Outages = append(mp.Outages, row)
	}
	if r.Link != nil {
		mp.Link = r.Link.String()
	}
	touched := r.Touched()
	for _, m := range touched[:min(slowest, len(touched))] {
		var fs []string
		for _, f := range m.Faults {
			fs = append(fs, faultText(f))
		}
		mp.Touched = append(mp.Touched, touchedRow{MessageID: m.MessageID, Rcpts: strings.Join(m.Rcpts, ", "),
			Faults: strings.Join(fs, "; "), Status: m.Status, Attempts: m.Attempts, Copies: m.Copies})
	}
	mp.Count, mp.More = len(touched), len(touched)-len(mp.Touched)
	return mp
}

// faultText says what one fault did to a message, for its table cell.
func faultText(f report.MessageFault) string {
	if f.Rule != "" {
		return fmt.Sprintf("%s in %s (%s %s)", secs(f.Waited), f.Rule, f.Fault, f.Role)
	}
	s := fmt.Sprintf("link %s ×%d on %s", f.Fault, f.Count, f.Conn)
	if f.Waited > 0 {
		s += " (" + secs(f.Waited) + " waited)"
	}
	return s
}

func glance(s, s99 report.Summary) []figure {
	held := fmt.Sprint(s.HeldByFaults)
	if !s.Measured(report.KeyHeldByFaults) {
		held = "not measured" // a card holds a figure: the summary table says why
	}
	return []figure{
		{"delivered / injected", fmt.Sprintf("%d / %d", s.Delivered, s.Injected), fmt.Sprintf("%d / %d", s99.Delivered, s99.Injected)},
		{"total time", secs(s.TotalTime), secs(s99.TotalTime)},
		{"messages per second", fmt.Sprintf("%.1f", s.MessagesPerSecond), fmt.Sprintf("%.1f", s99.MessagesPerSecond)},
		{"ESMTP connections", fmt.Sprint(s.Connections), fmt.Sprint(s99.Connections)},
		{"delivery latency p99", secs(s.Latency.P99), "not reported"},
		{"delivery latency max", secs(s.Latency.Max), "50-75 s"},
		{"held by a faulted query", held, fmt.Sprint(s99.HeldByFaults)},
	}
}

// phaseOfIt says what the time of a phase inside another went to.
var phaseOfIt = map[string]string{
	"dns_line": "waiting for or crossing the DNS line",
	"mailfrom": "looking up the MAIL FROM domain",
	"disk":     "writing to the Maildir",
}

// timeWent says in one sentence where the time went, largest phase
// first.
func timeWent(s report.Summary) string {
	names := phases(s)
	if len(names) == 0 {
		return ""
	}
	sort.SliceStable(names, func(i, j int) bool { return s.Phases[names[i]].Total > s.Phases[names[j]].Total })
	var parts []string
	inner := map[string]string{} // outer phase -> the phase inside it
	for in, out := range report.PhaseInside {
		inner[out] = in
	}
	for _, n := range names {
		if report.PhaseInside[n] != "" {
			continue // told with the phase it is part of
		}
		p := fmt.Sprintf("%s %s", strings.TrimSpace(phaseLabel(n)), secs(s.Phases[n].Total))
		if in, ok := s.Phases[inner[n]]; ok {
			p += fmt.Sprintf(" (%s of it %s)", secs(in.Total), phaseOfIt[inner[n]])
		}
		parts = append(parts, p)
	}
	return "Where the time went, summed over all connections: " + strings.Join(parts, "; ") + "."
}

// summaryRows are the rows of report.WriteText, as a table.
func summaryRows(s, s99 report.Summary) []row {
	var rows []row
	for _, r := range report.Rows(s, s99) {
		rows = append(rows, row{r.Name, r.Now, r.Then})
	}
	return rows
}

// checkOrder is report.WriteText's order of the receiver's checks.
var checkOrder = []string{"ident", "reverse", "forward", "local_reverse", "local_forward", "dnsbl", "mailfrom"}

// checkRows are the receiver's checks then the phases, with percentiles.
func checkRows(s report.Summary) []checkRow {
	var rows []checkRow
	add := func(name string, ct report.CheckTime) {
		rows = append(rows, checkRow{Name: name, Count: fmt.Sprint(ct.Count), Failed: fmt.Sprint(ct.Failed),
			P50: secs(ct.P50), P99: secs(ct.P99), Max: secs(ct.Max), Total: secs(ct.Total)})
	}
	for _, n := range checkOrder {
		if ct, ok := s.Checks[n]; ok {
			add("check: "+n, ct)
		}
	}
	var other []string
	for n := range s.Checks {
		if !slices.Contains(checkOrder, n) {
			other = append(other, n)
		}
	}
	slices.Sort(other)
	for _, n := range other {
		add("check: "+n, s.Checks[n])
	}
	for _, n := range phases(s) {
		add("phase: "+strings.TrimSpace(phaseLabel(n)), s.Phases[n])
	}
	return rows
}

func outcome(o report.Outcome) []outcomeList {
	var ls []outcomeList
	for _, l := range []outcomeList{{"lost", o.Lost}, {"duplicated", o.Duplicated}, {"unexpected", o.Unexpected},
		{"failed", o.Failed}, {"not queued", o.NotQueued}} {
		if len(l.IDs) > 0 {
			ls = append(ls, l)
		}
	}
	return ls
}

// slowMessages tells the slowest delivered messages' stories, slowest
// first.
func slowMessages(r *report.Result, tl timeline) []slowMessage {
	var ms []report.MessageRecord
	for _, m := range r.Messages {
		if !m.Delivered.IsZero() {
			ms = append(ms, m)
		}
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Latency > ms[j].Latency })
	ms = ms[:min(slowest, len(ms))]
	recv := map[string]*report.ConnectionRecord{}
	for i := range r.Connections {
		if c := &r.Connections[i]; c.Role == topology.Receiver {
			recv[c.Conn] = c
		}
	}
	var out []slowMessage
	for i, m := range ms {
		sm := slowMessage{
			Rank: i + 1, MessageID: m.MessageID, QueueID: m.QueueID, Rcpts: strings.Join(m.Rcpts, ", "),
			Queued: at(tl, m.Queued), Delivered: at(tl, m.Delivered), Latency: secs(m.Latency),
			Attempts: m.Attempts, Status: m.Status, SenderConn: m.SenderConn, RecvConn: m.ReceiverConn, Error: m.Error,
		}
		if c := recv[m.ReceiverConn]; c != nil {
			sm.Conn = story(c, tl)
			sm.Went = went(m, c)
			for _, ck := range c.Checks {
				sm.HeldByFault = sm.HeldByFault || ck.Faulted
			}
		}
		out = append(out, sm)
	}
	return out
}

// went splits a message's latency at its receiver connection's accept
// and greeting: before the connection, the connection's checks, and
// the SMTP dialogue and Maildir write after the greeting.
func went(m report.MessageRecord, c *report.ConnectionRecord) []segment {
	if m.Latency <= 0 || c.Opened.IsZero() || c.Greeting.IsZero() {
		return nil
	}
	opened := later(c.Opened, m.Queued)
	greeting := later(c.Greeting, opened)
	delivered := later(m.Delivered, greeting)
	var segs []segment
	add := func(name, kind string, d time.Duration) {
		if d > 0 {
			segs = append(segs, segment{Name: name, Took: secs(d), Kind: kind, d: d,
				Percent: int(min(100, max(1, 100*d/m.Latency)))})
		}
	}
	add("waiting for a connection", "wait", opened.Sub(m.Queued))
	add("its connection's checks before the greeting", "checks", greeting.Sub(opened))
	add("SMTP, DATA and the Maildir after the greeting", "smtp", delivered.Sub(greeting))
	return segs
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func story(c *report.ConnectionRecord, tl timeline) *connStory {
	cs := &connStory{Conn: c.Conn, Host: c.Host, Opened: at(tl, c.Opened), Messages: c.Messages, Reason: c.Reason}
	var toGreeting time.Duration
	if !c.Greeting.IsZero() {
		cs.Greeting = at(tl, c.Greeting)
		toGreeting = c.Greeting.Sub(c.Opened)
		cs.ToGreeting = secs(toGreeting)
	}
	if c.Closed.IsZero() {
		cs.Closed = "still open at the end"
	} else {
		cs.Closed = at(tl, c.Closed)
	}
	for _, ck := range c.Checks {
		st := checkStory{Check: ck.Check, Name: ck.Name, QType: ck.QType, Start: at(tl, ck.Start),
			Duration: secs(ck.Duration), Result: ck.Result, Error: ck.Error, Faulted: ck.Faulted, Tries: ck.TriesText()}
		if toGreeting > 0 {
			st.Percent = int(min(100, max(1, 100*ck.Duration/toGreeting)))
		}
		cs.Checks = append(cs.Checks, st)
	}
	return cs
}

func environment(r *report.Result) []row {
	e, o := r.Environment, r.Overhead
	built := "no, reused"
	if e.ImageBuilt {
		built = "yes, in " + secs(o.ImageBuild)
	}
	mem := "unknown"
	if e.MemoryBytes > 0 {
		mem = fmt.Sprintf("%.1f GiB", float64(e.MemoryBytes)/(1<<30))
	}
	return []row{
		{Name: "run", Now: r.RunID},
		{Name: "result schema", Now: r.Schema},
		{Name: "lab version", Now: e.LabVersion},
		{Name: "Go", Now: e.GoVersion},
		{Name: "container engine", Now: e.EngineVersion},
		{Name: "image", Now: e.Image},
		{Name: "image id", Now: e.ImageID},
		{Name: "image built for this run", Now: built},
		{Name: "CPUs", Now: fmt.Sprint(e.CPUs)},
		{Name: "engine memory", Now: mem},
		{Name: "OS", Now: e.OS},
		{Name: "network", Now: e.Network},
		{Name: "sending hosts", Now: fmt.Sprint(max(1, e.Senders))},
		{Name: "lab start to first injection", Now: secs(o.StartToInjection)},
		{Name: "last delivery to the lab's exit", Now: secs(o.DeliveryToExit)},
		{Name: "of which gathering the evidence (events, Maildir, logs)", Now: secs(o.Collect)},
		{Name: "of which building the report (figures, records, this page)", Now: secs(o.Report)},
	}
}

// at is t as an offset on the page's timeline.
func at(tl timeline, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("t+%.3f s", tl.x(t))
}

// secs formats as report.WriteText does, so the page and the text agree.
func secs(d time.Duration) string { return report.Secs(d) }

// plural is "1 query", "2 queries".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
