package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
)

// Every shipped scenario loads and validates.
func TestShippedScenariosLoad(t *testing.T) {
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	// The examples a user copies load as well.
	examples, _ := filepath.Glob("../../docs/examples/*.yaml")
	if len(examples) == 0 {
		t.Fatal("no example scenarios found")
	}
	files = append(files, examples...)
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if got := len(s.Workload.Messages()); got != s.Workload.Rounds*s.Workload.Recipients {
			t.Errorf("%s: %d messages", f, got)
		}
	}
}

func TestBenchmarkWorkload(t *testing.T) {
	s, err := Load("../../scenarios/courier-1999.yaml")
	if err != nil {
		t.Fatal(err)
	}
	msgs := s.Workload.Messages()
	if len(msgs) != 200 {
		t.Fatalf("got %d messages, want 200", len(msgs))
	}
	m := msgs[26] // round 2, recipient 7
	if m.To != "recipient-foo-7@7.foo.example.com" || m.From != "sender@example.com" {
		t.Errorf("message 27: %+v", m)
	}
	want := "From: sender\nTo: recipient\nSubject: test 7\n\ntest 7\n" // as the 1999 benchmark's loop wrote it
	if m.Data != want {
		t.Errorf("data %q, want %q", m.Data, want)
	}
	if h := s.Workload.Hosts(); len(h) != 20 || h[19] != "20.foo.example.com" {
		t.Errorf("hosts %v", h)
	}
}

func TestBadScenarios(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "name: x\nsender:\n  max_conns: 3\n", "x.yaml:3:"},
		{"wrong type", "name: x\nreceiver:\n  max_sessions: many\n", "x.yaml:3:"},
		{"zero connections", "name: x\nsender:\n  max_connections: 0\n", "x.yaml:3: sender.max_connections: must be at least 1"},
		{"negative delay", "name: x\ndns:\n  query_delay: -5ms\n", "x.yaml:3: dns.query_delay: must not be negative"},
		{"bare number duration", "name: x\ntimeout: 30\n", "x.yaml:2:"},
		{"bad listed ip", "dns:\n  blacklists:\n    - zone: bl.example\n    - zone: bl2.example\n      listed: [1.2.3]\n", "x.yaml:5: dns.blacklists[1].listed[0]"},
		{"no route", "sender:\n  routes:\n    - {domain: example.org}\n", "workload.to: recipient host 1.foo.example.com has no route"},
		{"route target", "sender:\n  routes:\n    - {domain: .example.com, to: receiver}\n", "x.yaml:3"},
		{"lab's own field", "receiver:\n  dns_servers: [10.0.0.1:53]\n", "x.yaml:2"},
		{"syntax", "name: [x\n", "x.yaml:"},
		{"empty", "", "x.yaml:1: empty"},
		{"default invalid only by file", "receiver:\n  maildir: relative/path\n", "x.yaml:2: receiver.maildir"},
		{"unknown fault", "dns:\n  faults:\n    - type: drop\n    - type: explode\n", `x.yaml:4: dns.faults[1]: unknown fault type "explode"`},
		{"stall without duration", "dns:\n  faults:\n    - {type: stall, nth: [3]}\n", "x.yaml:3: dns.faults[0]: stall needs a positive duration"},
		{"probability", "dns:\n  faults:\n    - {type: drop, probability: 2}\n", "dns.faults[0]: probability must be in [0, 1]"},
		{"zero bandwidth", "dns:\n  line:\n    enabled: true\n    bits_per_second: 0\n", "x.yaml:3: dns.line: bits per second must be positive"},
		{"bad record", "dns:\n  records:\n    - \"example.com. MX ten receiver.\"\n", "x.yaml:3: dns.records[0]"},
		{"bad name", "name: ../etc\n", "x.yaml:1: name:"},
		{"huge workload", "workload: {rounds: 100000, recipients: 100000}\n", "x.yaml:1: workload:"},
		{"header injection", "workload:\n  subject: \"a\\nBcc: x@y\"\n", "x.yaml:2: workload.subject"},
		{"not local", "receiver:\n  local_domains: [example.org]\n", "x.yaml:2: receiver.local_domains: do not cover the workload's host 1.foo.example.com"},
		{"unknown outage", "faults:\n  - {type: kill, role: receiver, at: 1s}\n  - {type: melt, role: receiver, at: 1s}\n", `x.yaml:3: faults[1]: unknown fault type "melt"`},
		{"outage without trigger", "faults:\n  - {type: pause, role: dns, duration: 10s}\n", "x.yaml:2: faults[0]: give exactly one trigger"},
		{"outage on a stranger", "faults:\n  - {type: pause, role: mx, at: 1s, duration: 1s}\n", `x.yaml:2: faults[0]: role "mx"`},
		{"real MTA restart", "receiver: {impl: postfix}\nfaults:\n  - {type: kill, role: receiver, at: 1s, restart: true}\n", "x.yaml:3: faults[0].role: restarting receiver"},
		{"identd cut off alone", "faults:\n  - {type: partition, role: identd, at: 1s, duration: 1s}\n", "x.yaml:2: faults[0].role: identd shares the sender's network"},
		{"queue count of a real sender", "sender: {impl: courier}\nfaults:\n  - {type: pause, role: dns, after_queued: 5, duration: 1s}\n", "x.yaml:3: faults[0].after_queued"},
		{"bad code", "dns:\n  blacklists:\n    - {zone: bl.example, code: nine}\n", "x.yaml:3: dns.blacklists[0].code"},
		{"unknown injection", "workload:\n  injection: fork\n", `x.yaml:2: workload.injection: "fork": want sendmail`},
		{"direct into a real sender", "sender: {impl: courier}\nworkload:\n  injection: direct\n", "x.yaml:3: workload.injection: direct commits to the Go sender's own queue"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error for %q", c.yaml)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestFileOverridesDefaults(t *testing.T) {
	s, err := Parse("x.yaml", []byte("name: small\nworkload:\n  rounds: 2\nsender:\n  retry: [10ms]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Workload.Rounds != 2 || s.Workload.Recipients != 20 || len(s.Sender.Retry) != 1 || s.Sender.MaxPerHost != 4 {
		t.Errorf("layers not applied: %+v", s)
	}
}

// FuzzParse: no input makes Parse panic, and every error names the file.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../scenarios/courier-1999.yaml", "../../scenarios/fast.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("sender: {max_connections: -1}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Parse("f.yaml", b)
		if err != nil && !strings.HasPrefix(err.Error(), "f.yaml:") {
			t.Errorf("error without file:line: %v", err)
		}
	})
}

func TestIdentdModes(t *testing.T) {
	s, err := Parse("x.yaml", []byte("identd:\n  user: u\n  mode: error\n  error: HIDDEN-USER\n  delay: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := s.IdentdConfig(); c.Mode != "error" || c.Error != "HIDDEN-USER" || c.Delay != 2*time.Second {
		t.Errorf("identd config %+v", c)
	}
	if _, err := Parse("x.yaml", []byte("identd:\n  user: u\n  mode: shout\n")); err == nil || !strings.Contains(err.Error(), "x.yaml:2: identd: ") || !strings.Contains(err.Error(), "shout") {
		t.Errorf("bad mode: %v", err)
	}
}

// A pace in the file is taken whole: "mode: burst" keeps no default rate,
// a rate alone means mode rate, and no pace at all is 1999's 3 a second.
func TestPaceFromFile(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want Pace
	}{
		{"name: p\n", Pace{Mode: "rate", Rate: 3}},
		{"name: p\nworkload:\n  pace: {mode: burst}\n", Pace{Mode: "burst"}},
		{"name: p\nworkload:\n  pace: {mode: loop}\n", Pace{Mode: "loop"}},
		{"name: p\nworkload:\n  pace: {rate: 10}\n", Pace{Mode: "rate", Rate: 10}},
		{"name: p\nworkload:\n  pace: {interval: 250ms}\n", Pace{Mode: "rate", Interval: duration.Duration(250 * time.Millisecond)}},
		{"name: p\nworkload:\n  pace: {max_lag: 1s}\n", Pace{Mode: "rate", Rate: 3, MaxLag: duration.Duration(time.Second)}},
	} {
		sc, err := Parse("p.yaml", []byte(tc.yaml))
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if sc.Workload.Pace != tc.want {
			t.Errorf("%q: pace %+v, want %+v", tc.yaml, sc.Workload.Pace, tc.want)
		}
	}
	_, err := Parse("p.yaml", []byte("name: p\nworkload:\n  pace: {mode: burst, rate: 5}\n"))
	if err == nil || !strings.Contains(err.Error(), "p.yaml:3: workload.pace: mode burst has no rate") {
		t.Errorf("burst with a rate: %v", err)
	}
}
