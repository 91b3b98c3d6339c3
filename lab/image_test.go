package lab_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
)

// ownImage builds lab/testdata/own-postfix, a Postfix image the lab has
// never heard of, over the lab's Debian base with Postfix, and returns its
// tag.
func ownImage(t *testing.T, eng *stack.Engine) string {
	return ownImageOf(t, eng, scenario.ImplPostfix)
}

// ownImageOf builds lab/testdata/own-<mta> over the lab's Debian base with
// that MTA installed, and returns its tag.
func ownImageOf(t *testing.T, eng *stack.Engine, mta string) string {
	t.Helper()
	stacktest.Debootstrap(t)
	ctx := context.Background()
	if _, _, err := stack.BuildImages(ctx, eng, []string{mta}, t.Logf); err != nil {
		t.Fatalf("the %s base: %v", mta, err)
	}
	tag := "smtplab-test/own-" + mta + ":1"
	cmd := exec.CommandContext(ctx, "docker", "build", "--label", "smtplab=1",
		"--build-arg", "BASE="+stack.MTAs[mta].BaseRef(), "-t", tag, filepath.Join("testdata", "own-"+mta))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	return tag
}

// imageScenario is fast.yaml with the image tag as its receiver,
// delivering to the recipient account's Maildir.
func imageScenario(t *testing.T, name, tag string) scenario.Scenario {
	t.Helper()
	sc := shipped(t, "fast.yaml")
	sc.Name = name
	sc.Receiver.Impl = scenario.ImplImage
	sc.Receiver.Maildir = "/home/recipient/Maildir"
	sc.Receiver.Image = &scenario.Image{Name: tag}
	return sc
}

// TestYourOwnImage runs fast.yaml's 200 messages through a receiver from
// an image the lab has never heard of (receiver.impl image), given one of
// its files by the scenario: every message delivered exactly once, found
// in the Maildir the scenario names; its DNS lookups made at the lab's
// DNS (the image's resolver pointed there); its connections counted at
// the sender, and the report saying what it could not trace.
func TestYourOwnImage(t *testing.T) {
	eng := stacktest.Engine(t)
	sc := imageScenario(t, "fast-own-image", ownImage(t, eng))
	// As TestGoSenderPostfixReceiver, for the same reasons: a burst (the
	// image's fsyncs share the disk with the sender's queue, and a pace
	// the machine cannot hold is an error) and one session per host (each
	// served by its own smtpd process, whose RBL cache would otherwise
	// answer a later session's blacklist question).
	sc.Workload.Pace = scenario.Pace{Mode: "burst"}
	sc.Sender.MaxPerHost = 1
	sc.Receiver.Image.Files = []scenario.ImageFile{
		// The scenario's own word on which domains are local: the
		// workload's 20 hosts under foo.example.com.
		{Path: "/etc/postfix/local-domains", Content: "/^example\\.com$/ OK\n/\\.foo\\.example\\.com$/ OK\n"},
	}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, eng, sc)
	deliveredOnce(t, res.Dir, runEvents(t, res), 200)
	s := res.Summary
	if s.Delivered != 200 || s.Injected != 200 {
		t.Errorf("delivered %d of %d", s.Delivered, s.Injected)
	}
	if s.ConnectionsFrom != "sender" || s.Connections != 20 || s.Connections != s.SenderConnections {
		t.Errorf("connections %d (from %q), sender's %d; want 20, one per host, counted at the sender", s.Connections, s.ConnectionsFrom, s.SenderConnections)
	}
	// Postfix's checks, asked of the lab's DNS: per connection the
	// client's PTR, its name's A, and one query per blacklist.
	by := s.DNSQueriesByType
	if by["PTR"] != s.Connections || by["A"] != s.Connections || by["DNSBL"] != 2*s.Connections {
		t.Errorf("DNS queries by type %v for %d connections: want a PTR, an A and two DNSBL queries each", by, s.Connections)
	}
	if s.IdentQueries != 0 {
		t.Errorf("%d IDENT queries: this Postfix makes none", s.IdentQueries)
	}
	notes := strings.Join(report.RealMTANotes(sc.Receiver.Impl, sc.Sender.Impl, sc.Receiver.EvidenceKind()), "\n")
	if !strings.Contains(notes, "an image the lab knows nothing of") {
		t.Errorf("notes %q say nothing of the image", notes)
	}
}

// TestImageNotHere: an image that is not on the engine is refused before
// any container starts, saying how to get it there; nothing is pulled.
func TestImageNotHere(t *testing.T) {
	eng := stacktest.Engine(t)
	sc := imageScenario(t, "no-image", "smtplab-test/no-such-image:never")
	res, err := lab.Run(context.Background(), sc, lab.Options{ResultsDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "is not on this Docker engine, and the lab pulls nothing: build it (docker build -t smtplab-test/no-such-image:never DIR) or load it") {
		t.Fatalf("error %v", err)
	}
	if res != nil {
		t.Errorf("a run was started (%s)", res.RunID)
		stacktest.NoLeftovers(t, eng, res.RunID)
	}
}

// TestImageThatNeverComesUp: an image whose program stops before its SMTP
// port opens fails the run with what it printed last, and leaves nothing.
func TestImageThatNeverComesUp(t *testing.T) {
	eng := stacktest.Engine(t)
	sc := imageScenario(t, "broken-image", ownImage(t, eng))
	sc.Receiver.Image.Cmd = []string{"sh", "-c", "echo my-mx: cannot read main.cf >&2; exit 3"}
	res, err := lab.Run(context.Background(), sc, lab.Options{ResultsDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "start receiver: it exited (code 3) before it was up") ||
		!strings.Contains(err.Error(), "my-mx: cannot read main.cf") {
		t.Fatalf("error %v, want the exit and the program's last words", err)
	}
	if res != nil {
		stacktest.NoLeftovers(t, eng, res.RunID)
	}
}

// TestYourOwnImageAsSender runs fast.yaml's 200 messages from a sender
// the lab has never heard of (sender.impl image: the same Postfix image,
// injected through its SMTP port), to the lab's Go receiver: it routes the
// workload's hosts by the lab's DNS, where they resolve to the receiver;
// every message arrives exactly once, its connections are counted at the
// receiver, and the report says what it could not trace of the sender.
func TestYourOwnImageAsSender(t *testing.T) {
	eng := stacktest.Engine(t)
	sc := shipped(t, "fast.yaml")
	sc.Name = "fast-own-sender"
	sc.Sender.Impl = scenario.ImplImage
	sc.Sender.Image = &scenario.Image{Name: ownImage(t, eng), Submission: 25,
		// As a user would: its port 25 takes submissions from its own
		// host (mynetworks), without the checks it makes as a receiver;
		// a retry soon after a refusal, not Postfix's five minutes, for a
		// run of seconds. (Real Courier, Postfix and Exim as senders are
		// injected through their sendmail, the other way in.)
		Cmd: []string{"sh", "-c", "postconf -e smtpd_client_restrictions= minimal_backoff_time=2s maximal_backoff_time=4s queue_run_delay=2s && exec /bin/sh /start.sh"}}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, eng, sc)
	deliveredOnce(t, res.Dir, runEvents(t, res), 200)
	s := res.Summary
	if s.Delivered != 200 || s.Injected != 200 || !res.Outcome.OK() {
		t.Errorf("delivered %d of %d: %+v", s.Delivered, s.Injected, res.Outcome)
	}
	if s.Connections < 1 || s.ConnectionsFrom != "" || s.Measured(report.KeySenderConnections) {
		t.Errorf("connections %d (from %q), sender connections measured %v: want them counted at the receiver, the sender's unmeasured",
			s.Connections, s.ConnectionsFrom, s.Measured(report.KeySenderConnections))
	}
	// Its routing, asked of the lab's DNS: each of the 20 hosts looked up
	// (MX, then the A it falls back to) before its first delivery, at
	// least (Postfix asks again per delivery unless a cached session
	// carries it: 200 MX queries for 200 connections here).
	if by := s.DNSQueriesByType; by["MX"] < 20 || s.Connections < 20 {
		t.Errorf("DNS queries by type %v, %d connections: want the sender's MX lookups of the 20 hosts, a connection to each at least", by, s.Connections)
	}
	notes := strings.Join(report.RealMTANotes(sc.Receiver.Impl, sc.Sender.Impl, sc.Receiver.EvidenceKind()), "\n")
	if !strings.Contains(notes, "the sender is an image the lab knows nothing of") {
		t.Errorf("notes %q say nothing of the image", notes)
	}
}

// TestYourOwnImageMbox: the same image delivering to an mbox instead
// (Postfix's local(8) with no home_mailbox: /var/mail/recipient), named
// as the evidence: the lab copies it out and splits it into messages,
// every one of the 200 there exactly once, each timed by its separator
// line (whole seconds).
func TestYourOwnImageMbox(t *testing.T) {
	eng := stacktest.Engine(t)
	sc := imageScenario(t, "fast-own-mbox", ownImage(t, eng))
	sc.Workload.Pace = scenario.Pace{Mode: "burst"}
	sc.Sender.MaxPerHost = 1
	sc.Receiver.Evidence, sc.Receiver.Mbox = scenario.EvidenceMbox, "/var/mail/recipient"
	sc.Receiver.Image.Files = []scenario.ImageFile{
		{Path: "/etc/postfix/local-domains", Content: "/^example\\.com$/ OK\n/\\.foo\\.example\\.com$/ OK\n"},
	}
	sc.Receiver.Image.Cmd = []string{"sh", "-c", "postconf -e home_mailbox= && exec /bin/sh /start.sh"}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, eng, sc)
	deliveredOnce(t, res.Dir, runEvents(t, res), 200)
	// Whole seconds: a delivery's time is at most a second before the
	// moment it happened (and a message with no time would put it years
	// back).
	if s := res.Summary; s.Delivered != 200 || !res.Outcome.OK() || s.TotalTime <= -time.Second || s.Evidence != "mbox" {
		t.Errorf("delivered %d of %d in %s, evidence %q: %+v", s.Delivered, s.Injected, s.TotalTime, s.Evidence, res.Outcome)
	}
	notes := strings.Join(report.RealMTANotes(sc.Receiver.Impl, sc.Sender.Impl, sc.Receiver.EvidenceKind()), "\n")
	if !strings.Contains(notes, "deliveries come from the mbox the scenario names") {
		t.Errorf("notes %q do not say the mbox was the evidence", notes)
	}
}

// TestYourOwnEximImage runs fast.yaml's 200 messages through a second
// image the lab has never heard of, lab/testdata/own-exim: Exim with a
// configuration of its own that checks each client when it connects.
// Every message is delivered exactly once, and the checks it makes are
// counted where they arrive, per connection: at the lab's DNS its PTR,
// the A confirming it and one query per blacklist; at the lab's identd one
// IDENT query.
func TestYourOwnEximImage(t *testing.T) {
	eng := stacktest.Engine(t)
	sc := imageScenario(t, "fast-own-exim", ownImageOf(t, eng, scenario.ImplExim))
	sc.Workload.Pace = scenario.Pace{Mode: "burst"}
	sc.Sender.MaxPerHost = 1
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, eng, sc)
	deliveredOnce(t, res.Dir, runEvents(t, res), 200)
	s := res.Summary
	if s.Delivered != 200 || !res.Outcome.OK() {
		t.Errorf("delivered %d of %d: %+v", s.Delivered, s.Injected, res.Outcome)
	}
	if s.ConnectionsFrom != "sender" || s.Connections != 20 {
		t.Errorf("connections %d (from %q); want 20, one per host, counted at the sender", s.Connections, s.ConnectionsFrom)
	}
	by := s.DNSQueriesByType
	if by["PTR"] != s.Connections || by["A"] != s.Connections || by["DNSBL"] != 2*s.Connections || s.IdentQueries != s.Connections {
		t.Errorf("DNS queries by type %v, %d IDENT, for %d connections: want a PTR, an A, two DNSBL and one IDENT query each",
			by, s.IdentQueries, s.Connections)
	}
	// The run's record is whole: result.json read back with every
	// message's record, the page written.
	b, err := os.ReadFile(filepath.Join(res.Dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc lab.Result
	if err := json.Unmarshal(b, &doc); err != nil || !doc.Complete || doc.Summary.Delivered != 200 || len(doc.Records.Messages) != 200 || doc.Summary.IdentQueries != s.IdentQueries {
		t.Errorf("result.json: complete %v, delivered %d, %d message records, IDENT %d (%v)",
			doc.Complete, doc.Summary.Delivered, len(doc.Records.Messages), doc.Summary.IdentQueries, err)
	}
	if fi, err := os.Stat(filepath.Join(res.Dir, "report.html")); err != nil || fi.Size() == 0 {
		t.Errorf("report.html: %v", err)
	}
}
