package lab_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
	"github.com/smtplab/smtplab/lab/topology"
)

// relayExample builds docs/examples/relay-postfix, the worked example of
// your own server in the middle, over the lab's Debian base with Postfix,
// under the tag scenarios/relay-postfix.yaml names.
func relayExample(t *testing.T, eng *stack.Engine, tag string) {
	t.Helper()
	stacktest.Debootstrap(t)
	ctx := context.Background()
	if _, _, err := stack.BuildImages(ctx, eng, []string{scenario.ImplPostfix}, t.Logf); err != nil {
		t.Fatalf("the Postfix base: %v", err)
	}
	cmd := exec.CommandContext(ctx, "docker", "build", "--label", "smtplab=1",
		"--build-arg", "BASE="+stack.MTAs[scenario.ImplPostfix].BaseRef(), "-t", tag, filepath.Join("..", "docs", "examples", "relay-postfix"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}

// finalDeliveries counts the final receiver's Delivered events by
// Message-ID.
func finalDeliveries(evs []events.Event) map[string]int {
	n := map[string]int{}
	for _, e := range evs {
		if e.Role == topology.Final && e.Kind == events.Delivered {
			n[e.MessageID]++
		}
	}
	return n
}

// TestRelayThroughYourImage runs scenarios/relay-postfix.yaml as shipped:
// the fast workload through the worked example's Postfix, built from its
// Dockerfile, relaying to the lab's final receiver. Every message reaches
// the final receiver exactly once; the system under test's checks are
// counted at the lab's DNS; its connections at the sender; its own hop is
// timed, and result.json and the report say the evidence was the relay.
func TestRelayThroughYourImage(t *testing.T) {
	eng := stacktest.Engine(t)
	sc := shipped(t, "relay-postfix.yaml")
	relayExample(t, eng, sc.Receiver.Image.Name)
	res := mustRun(t, eng, sc)
	deliveredOnce(t, res.Dir, runEvents(t, res), 200)
	s := res.Summary
	if s.Delivered != 200 || !res.Outcome.OK() {
		t.Errorf("delivered %d of %d: %+v", s.Delivered, s.Injected, res.Outcome)
	}
	fin := finalDeliveries(runEvents(t, res))
	if len(fin) != 200 {
		t.Errorf("the final receiver logged %d messages, want 200", len(fin))
	}
	for id, n := range fin {
		if n != 1 {
			t.Errorf("%s reached the final receiver %d times", id, n)
		}
	}
	if s.Evidence != "relay" || s.RelayHop == nil || s.RelayHop.P50 <= 0 || s.RelayHop.Max > s.Latency.Max {
		t.Errorf("evidence %q, relay hop %+v (latency %+v): want the hop measured, within the whole", s.Evidence, s.RelayHop, s.Latency)
	}
	if s.ConnectionsFrom != "sender" || s.Connections != 20 {
		t.Errorf("connections %d from %q; want 20, one per host, counted at the sender", s.Connections, s.ConnectionsFrom)
	}
	// Postfix's checks at the lab's DNS, per connection: the client's
	// PTR and its name's A, one query per blacklist; it also asks the A
	// of final.lab.example.net, where it relays, as its resolver needs.
	by := s.DNSQueriesByType
	if by["PTR"] != s.Connections || by["DNSBL"] != 2*s.Connections || by["A"] < s.Connections {
		t.Errorf("DNS queries by type %v for %d connections: want a PTR, an A and two DNSBL queries each", by, s.Connections)
	}
	b, err := os.ReadFile(filepath.Join(res.Dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Summary struct {
			Evidence string          `json:"evidence"`
			RelayHop json.RawMessage `json:"relay_hop"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Summary.Evidence != "relay" || len(doc.Summary.RelayHop) == 0 {
		t.Errorf("result.json: evidence %q, relay_hop %s (%v)", doc.Summary.Evidence, doc.Summary.RelayHop, err)
	}
	html, err := os.ReadFile(filepath.Join(res.Dir, "report.html"))
	if err != nil || !strings.Contains(string(html), "relay hop") {
		t.Errorf("report.html does not show the relay hop (%v)", err)
	}
}

// outside is a mail server outside Docker, started by the test on the
// lab's machine, as a user's own would be: it takes each message and,
// unless told to hold them, relays it to the lab's final receiver before
// it answers 250.
type outside struct {
	final string // where the lab publishes its final receiver
	hold  bool   // take mail and never relay it
	mu    sync.Mutex
	took  int
}

func (o *outside) taken() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.took
}

func (o *outside) NewSession(*smtp.Conn) (smtp.Session, error) { return &outsideSession{o: o}, nil }

type outsideSession struct {
	o    *outside
	from string
	to   []string
}

func (s *outsideSession) AuthPlain(string, string) error { return smtp.ErrAuthUnsupported }
func (s *outsideSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *outsideSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *outsideSession) Data(r io.Reader) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.o.mu.Lock()
	s.o.took++
	s.o.mu.Unlock()
	if s.o.hold {
		return nil
	}
	if err := relay(s.o.final, s.from, s.to, msg); err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "relay: " + err.Error()}
	}
	return nil
}

// relay sends one message to addr in plain SMTP (the final receiver
// offers no STARTTLS, which go-smtp's SendMail insists on).
func relay(addr, from string, to []string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(string(msg))); err != nil {
		return err
	}
	return c.Quit()
}
func (s *outsideSession) Reset()        { s.from, s.to = "", nil }
func (s *outsideSession) Logout() error { return nil }

// startOutside starts o on the Docker bridge's gateway, the address the
// lab's containers reach as host.docker.internal, and returns its port.
func startOutside(t *testing.T, o *outside) string {
	t.Helper()
	gw, err := exec.Command("docker", "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}").Output()
	if err != nil {
		t.Fatalf("the bridge's gateway: %v", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(strings.TrimSpace(string(gw)), "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(o)
	srv.Domain = "outside.example.org"
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// freePort is a TCP port free on the loopback address now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// externalScenario is fast.yaml with its receiver outside Docker at
// host.docker.internal:port, relaying to the final receiver published at
// final.
func externalScenario(t *testing.T, name, port, final string) scenario.Scenario {
	t.Helper()
	sc := shipped(t, "fast.yaml")
	sc.Name = name
	sc.Receiver.Impl = scenario.ImplExternal
	sc.Receiver.External = &scenario.External{Address: scenario.HostDockerInternal + ":" + port, Final: final}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestRelayFromOutsideDocker: a server outside Docker, given as
// host:port, in the middle of the relay topology: the lab's sender
// reaches it on the machine running Docker, it relays to the final
// receiver published where the scenario says, and every message arrives
// there exactly once.
func TestRelayFromOutsideDocker(t *testing.T) {
	eng := stacktest.Engine(t)
	o := &outside{final: "127.0.0.1:" + freePort(t)}
	sc := externalScenario(t, "fast-outside", startOutside(t, o), o.final)
	res := mustRun(t, eng, sc)
	deliveredOnce(t, res.Dir, runEvents(t, res), 200)
	s := res.Summary
	if s.Delivered != 200 || !res.Outcome.OK() || o.taken() != 200 {
		t.Errorf("delivered %d of %d, the outside server took %d: %+v", s.Delivered, s.Injected, o.taken(), res.Outcome)
	}
	if fin := finalDeliveries(runEvents(t, res)); len(fin) != 200 {
		t.Errorf("the final receiver logged %d messages, want 200", len(fin))
	}
	if s.Evidence != "relay" || s.RelayHop == nil || s.Connections != s.SenderConnections || s.ConnectionsFrom != "sender" || s.Connections < 20 {
		t.Errorf("evidence %q, relay hop %+v, connections %d from %q (sender's %d)", s.Evidence, s.RelayHop, s.Connections, s.ConnectionsFrom, s.SenderConnections)
	}
}

// TestRelayThatNeverDelivers: a server that takes every message and
// relays none fails the run, each message named with the hop that
// stopped, and leaves nothing behind.
func TestRelayThatNeverDelivers(t *testing.T) {
	eng := stacktest.Engine(t)
	o := &outside{final: "127.0.0.1:" + freePort(t), hold: true}
	sc := externalScenario(t, "outside-holds", startOutside(t, o), o.final)
	sc.Workload.Rounds, sc.Workload.Recipients = 1, 5
	sc.Expect.Delivered = nil
	res, err := lab.Run(context.Background(), sc, lab.Options{ResultsDir: t.TempDir()})
	if res != nil {
		stacktest.NoLeftovers(t, eng, res.RunID)
	}
	if !errors.Is(err, lab.ErrNotDelivered) || res == nil {
		t.Fatalf("error %v, want %v", err, lab.ErrNotDelivered)
	}
	if len(res.Outcome.Lost) != 5 {
		t.Fatalf("lost %v, want the 5 messages", res.Outcome.Lost)
	}
	for _, l := range res.Outcome.Lost {
		if !strings.Contains(l, "(the relay hop stopped: the receiver took it at ") {
			t.Errorf("lost %q does not say the relay hop stopped", l)
		}
	}
	if n := o.taken(); n != 5 {
		t.Errorf("the outside server took %d, want 5", n)
	}
}
