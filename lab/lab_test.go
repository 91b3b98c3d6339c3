package lab_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
	"github.com/smtplab/smtplab/lab/topology"
)

// TestFastScenario runs scenarios/fast.yaml through real containers and
// checks the result against the evidence: the Maildir copied out of the
// receiver, and every role's events.
func TestFastScenario(t *testing.T) {
	eng := stacktest.Engine(t)
	sc, err := scenario.Load("../scenarios/fast.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := runChecked(t, eng, sc, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	// One sendmail process per message, as 1999's loop: each queue id
	// names the process that committed it (time.pid.sequence).
	pids := map[string]bool{}
	for _, e := range runEvents(t, res) {
		if parts := strings.Split(e.QueueID, "."); e.Kind == events.Queued && len(parts) == 3 {
			pids[parts[1]] = true
		}
	}
	if len(pids) != 200 || res.Summary.Pace == nil || res.Summary.Pace.Injection != scenario.InjectSendmail {
		t.Errorf("messages queued by %d processes, pace %+v; want 200, one sendmail each", len(pids), res.Summary.Pace)
	}

	// The run wrote its result.json, valid against the schema, and its
	// events, one per line.
	doc, err := os.ReadFile(filepath.Join(res.Dir, report.ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := report.Validate(doc); err != nil {
		t.Errorf("result.json does not fit the schema: %v", err)
	}
	if back, err := report.Load(res.Dir); err != nil {
		t.Errorf("result.json read back: %v", err)
	} else if back.RunID != res.RunID || len(back.Messages) != 200 {
		t.Errorf("result.json read back: run %q with %d messages, want %q with 200", back.RunID, len(back.Messages), res.RunID)
	}
	if html, err := os.ReadFile(filepath.Join(res.Dir, report.HTMLFile)); err != nil || !strings.Contains(string(html), "<svg") {
		t.Errorf("report.html: %v, or it has no chart", err)
	}
	// events.jsonl holds every role's log merged, in time order.
	evs := runEvents(t, res)
	byRole := map[topology.Role]int{}
	for i, e := range evs {
		byRole[e.Role]++
		if i > 0 && e.Time.Before(evs[i-1].Time) {
			t.Fatalf("events.jsonl: event %d (%s %s) is before the one above it", i+1, e.Role, e.Kind)
		}
	}
	for _, role := range []topology.Role{topology.DNS, topology.Receiver, topology.Sender, topology.Identd} {
		if byRole[role] == 0 {
			t.Errorf("events.jsonl has no event of %s: %v", role, byRole)
		}
	}

	// Every injected message is in the Maildir exactly once.
	onDisk, err := maildir.Dir(filepath.Join(res.Dir, "maildir")).List()
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]bool{}
	for _, e := range runEvents(t, res) {
		if e.Role == topology.Sender && e.Kind == events.Queued {
			queued[e.MessageID] = true
		}
	}
	if len(queued) != 200 {
		t.Errorf("%d messages queued, want 200", len(queued))
	}
	seen := map[string]int{}
	for _, m := range onDisk {
		seen[m.MessageID]++
		if !queued[m.MessageID] {
			t.Errorf("%s in the Maildir was never injected", m.MessageID)
		}
	}
	if len(onDisk) != 200 || len(seen) != 200 {
		t.Errorf("Maildir has %d files with %d distinct Message-IDs, want 200 and 200", len(onDisk), len(seen))
	}
	s := res.Summary
	if s.Delivered != 200 || s.Injected != 200 || !res.Outcome.OK() {
		t.Errorf("summary delivered %d of %d, outcome %+v", s.Delivered, s.Injected, res.Outcome)
	}

	// Connections and lookups: the 1999 profile makes PTR, A and one query
	// per DNSBL for every connection, and one IDENT query.
	conns := 0
	for _, e := range runEvents(t, res) {
		if e.Role == topology.Receiver && e.Kind == events.ConnOpen {
			conns++
		}
	}
	if conns == 0 || s.Connections != conns {
		t.Fatalf("summary says %d connections, receiver events %d", s.Connections, conns)
	}
	want := map[string]int{"PTR": conns, "A": conns, "DNSBL": 2 * conns}
	for typ, n := range want {
		if s.DNSQueriesByType[typ] != n {
			t.Errorf("%s queries: %d, want %d (%d connections)", typ, s.DNSQueriesByType[typ], n, conns)
		}
	}
	if s.DNSQueries != 4*conns || s.IdentQueries != conns {
		t.Errorf("dns %d, ident %d for %d connections", s.DNSQueries, s.IdentQueries, conns)
	}

	// The sender never exceeded its limits, and the receiver its sessions.
	perHost, total := peaks(runEvents(t, res), topology.Sender)
	for h, p := range perHost {
		if p > sc.Sender.MaxPerHost {
			t.Errorf("host %s had %d connections at once, limit %d", h, p, sc.Sender.MaxPerHost)
		}
	}
	if total > sc.Sender.MaxConnections {
		t.Errorf("sender had %d connections at once, limit %d", total, sc.Sender.MaxConnections)
	}
	if _, rt := peaks(runEvents(t, res), topology.Receiver); rt > sc.Receiver.MaxSessions {
		t.Errorf("receiver had %d sessions at once, limit %d", rt, sc.Receiver.MaxSessions)
	}

	// fast.yaml's pace (10 a second, each of 20 hosts every 2 s) and the
	// sender's 60 s keep-alive make the sessions a function of the
	// scenario: one per host, each carrying its host's 10 messages, all
	// still open when the run ends. The pace was held (or Run says so).
	if s.Pace == nil || s.Pace.Held == nil || !*s.Pace.Held || s.Pace.IntendedRate != 10 || len(res.Injections) != 200 {
		t.Errorf("pace %+v with %d injection records: want held at 10 msg/s, 200 records", s.Pace, len(res.Injections))
	}
	if s.SenderConnections != 20 || conns != 20 || s.SenderReused != 180 || s.SenderCloses["open"] != 20 {
		t.Errorf("sender opened %d connections (receiver saw %d), %d messages over a reused one, closes %v; want 20, 20, 180, all 20 open at the end",
			s.SenderConnections, conns, s.SenderReused, s.SenderCloses)
	}
}

// peaks replays role's ConnOpen/ConnClose events: the most connections open
// at once per host and in all.
func peaks(evs []events.Event, role topology.Role) (map[string]int, int) {
	open := map[string]int{}
	hostOf := map[string]string{}
	perHost := map[string]int{}
	cur, peak := 0, 0
	for _, e := range evs {
		if e.Role != role {
			continue
		}
		switch e.Kind {
		case events.ConnOpen:
			h := e.Host
			if role == topology.Receiver {
				h = "all"
			}
			hostOf[e.Conn] = h
			open[h]++
			cur++
			perHost[h] = max(perHost[h], open[h])
			peak = max(peak, cur)
		case events.ConnClose:
			if h, ok := hostOf[e.Conn]; ok {
				open[h]--
				cur--
			}
		}
	}
	return perHost, peak
}

// TestUndeliverableIsReported: mail the receiver refuses (an unknown
// account) is reported per message and fails the run.
func TestUndeliverableIsReported(t *testing.T) {
	eng := stacktest.Engine(t)
	sc, err := scenario.Parse("nobody.yaml", []byte(`
name: nobody
timeout: 1m
workload:
  rounds: 1
  recipients: 3
  to: nobody-{n}@{n}.foo.example.com
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := runChecked(t, eng, sc, nil)
	if !errors.Is(err, lab.ErrNotDelivered) {
		t.Fatalf("run returned %v, want ErrNotDelivered", err)
	}
	if len(res.Outcome.Failed) != 3 || res.Summary.Delivered != 0 {
		t.Errorf("outcome %+v, summary delivered %d", res.Outcome, res.Summary.Delivered)
	}
	for _, f := range res.Outcome.Failed {
		if !strings.Contains(f, "550") && !strings.Contains(f, "User unknown") {
			t.Errorf("failure does not say why: %s", f)
		}
	}
}

// TestTimeoutCleansUp: a run that cannot finish in its timeout stops,
// reports what was not delivered, and leaves no container or network;
// its progress output says each phase as it begins, in order.
func TestTimeoutCleansUp(t *testing.T) {
	eng := stacktest.Engine(t)
	sc, err := scenario.Parse("slow.yaml", []byte(`
name: slow
timeout: 12s
workload: {rounds: 1, recipients: 2}
dns:
  query_delay: 1h
`))
	if err != nil {
		t.Fatal(err)
	}
	// While the run waits, the running sender lists its queue (lab queue),
	// at every progress line (every 5 s): the last listing, long after
	// both messages were injected (the second is due 333 ms after the
	// first), holds both, however busy the machine.
	var queued []sender.Envelope
	var said []string
	runID := ""
	progress := writerFunc(func(line string) {
		said = append(said, line)
		if id, ok := strings.CutPrefix(line, "run "); ok {
			runID, _, _ = strings.Cut(id, ":")
		}
		if !strings.HasPrefix(line, "delivered ") {
			return
		}
		stacktest.PublishedOnLoopback(t, eng, runID)
		running, err := stack.FindRunning(context.Background(), eng, topology.Sender, runID)
		if err != nil || len(running) != 1 {
			t.Errorf("running senders %v, %v", running, err)
			return
		}
		now, err := role.NewHandle(running[0].Role, running[0].Control, nil).Queue(context.Background())
		if err != nil {
			t.Error(err)
			return
		}
		queued = now
	})
	start := time.Now()
	res, err := runChecked(t, eng, sc, progress)
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	if len(queued) != 2 {
		t.Errorf("the running sender listed %d queued messages, want the 2 waiting", len(queued))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run returned %v after %s, want the scenario's deadline", err, time.Since(start))
	}
	if len(res.Outcome.Lost) != 2 {
		t.Errorf("lost %v, want the 2 injected messages", res.Outcome.Lost)
	}
	phases := []string{
		"checking the lab's image",
		"run " + res.RunID + ": creating its network",
		"run " + res.RunID + ": starting dns, receiver, sender, identd",
		"starting dns (go): waiting for",
		"starting receiver (go): waiting for",
		"starting sender (go): waiting for",
		"starting identd (go): waiting for",
		"injecting 2 messages",
		"injection done: 2 of 2 messages queued",
		"delivered 0/2  queued 2  open sessions ",
		"stopped: delivered ",
		"collecting every role's events and evidence",
		"run " + res.RunID + ": removing its containers and network",
	}
	next := 0
	for _, l := range said {
		if next < len(phases) && strings.HasPrefix(l, phases[next]) {
			next++
		}
	}
	if next < len(phases) {
		t.Errorf("no line %q where due; the run said:\n%s", phases[next], strings.Join(said, "\n"))
	}
}

// TestLineAndFaults: DNS over the line model with a fault, through real
// containers: every query crossed the line, the fault is in the result,
// traced to the connection that waited on it, and nothing is lost.
func TestLineAndFaults(t *testing.T) {
	eng := stacktest.Engine(t)
	sc, err := scenario.Parse("line.yaml", []byte(`
name: line
timeout: 2m
workload: {rounds: 2, recipients: 5}
dns:
  line: {enabled: true}
  faults:
    - {type: stall, name: "*.bl2.example.net", nth: [1], duration: 300ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := runChecked(t, eng, sc, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	s := res.Summary
	if s.Delivered != 10 || !res.Outcome.OK() {
		t.Errorf("delivered %d of 10: %+v", s.Delivered, res.Outcome)
	}
	onLine := 0
	for _, e := range runEvents(t, res) {
		if e.Role == topology.DNS && e.Kind == events.Query && e.OnLine > 0 && e.SizeIn > 0 && e.SizeOut > 0 {
			onLine++
		}
	}
	if onLine != s.DNSQueries || s.DNSQueries == 0 {
		t.Errorf("%d of %d queries crossed the line", onLine, s.DNSQueries)
	}
	if s.LineFloor <= 0 || s.DNSOnLine.P50 <= 0 {
		t.Errorf("line floor %s, time on line %+v", s.LineFloor, s.DNSOnLine)
	}
	if s.Faults["stall"] != 1 || s.HeldByFaults < 1 {
		t.Errorf("faults %v, held %d: the stall was not traced to its connection", s.Faults, s.HeldByFaults)
	}
}

// writerFunc hands each line written to it to a function.
type writerFunc func(line string)

func (f writerFunc) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		f(strings.TrimSpace(l))
	}
	return len(p), nil
}

// runChecked runs sc through real containers and fails t if the run left
// any container or network of its own behind.
// mustRun runs sc (runChecked) and fails the test if the run failed, with
// its outcome and figures when it has them.
func mustRun(t *testing.T, eng *stack.Engine, sc scenario.Scenario) *lab.Result {
	t.Helper()
	res, err := runChecked(t, eng, sc, nil)
	if err != nil {
		if res != nil {
			t.Logf("outcome: %+v\nsummary: %+v", res.Outcome, res.Summary)
		}
		t.Fatalf("run: %v", err)
	}
	return res
}

// shipped is the scenario file name under scenarios/.
func shipped(t *testing.T, name string) scenario.Scenario {
	t.Helper()
	sc, err := scenario.Load("../scenarios/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// runChecked runs sc and checks what every run must leave: no container
// or network, and events that fit their schema.
//
// A run that did not hold its pace (lab.ErrPaceNotHeld: a sendmail held
// up by a disk stall on a busy machine) is run again, up to twice: the
// lab says its figures were measured at another pace than the
// scenario's, and the tests assert the figures of the scenario's pace.
// The retries are logged; a pace never held fails the test as before.
func runChecked(t *testing.T, eng *stack.Engine, sc scenario.Scenario, progress io.Writer) (*lab.Result, error) {
	t.Helper()
	for try := 1; ; try++ {
		res, err := lab.Run(context.Background(), sc, lab.Options{ResultsDir: t.TempDir(), Progress: progress})
		if res != nil {
			stacktest.NoLeftovers(t, eng, res.RunID)
			eventsFitSchema(t, res.Dir)
		}
		if !errors.Is(err, lab.ErrPaceNotHeld) || progress != nil || try == 3 {
			return res, err
		}
		t.Logf("run %d of scenario %s did not hold its pace, running it again: %v", try, sc.Name, err)
	}
}

// runEvents reads a run's events back from its events.jsonl (the lab
// merges its roles' logs straight into that file and keeps none in
// memory).
func runEvents(t *testing.T, res *lab.Result) []events.Event {
	t.Helper()
	f, err := os.Open(filepath.Join(res.Dir, report.EventsFile))
	if err != nil {
		t.Fatalf("events of run %s: %v", res.RunID, err)
	}
	defer f.Close()
	evs, err := events.ReadJSONL(f)
	if err != nil {
		t.Fatalf("events of run %s: %v", res.RunID, err)
	}
	return evs
}

// eventsFitSchema fails t unless every line of the run's events.jsonl
// fits lab/events/events.schema.json: every real run through runChecked
// (Go roles, real MTAs' logs, faults and outages) checks it.
func eventsFitSchema(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, report.EventsFile))
	if err != nil {
		t.Errorf("events.jsonl: %v", err)
		return
	}
	defer f.Close()
	if err := events.ValidateJSONL(f); err != nil {
		t.Errorf("%s does not fit lab/events/events.schema.json: %v", f.Name(), err)
	}
}
