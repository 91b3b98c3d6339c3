package scenario

import (
	"strings"
	"testing"
	"time"
)

// Every impossible expectation is refused as file:line: expect.key: why,
// on the line of its value.
func TestExpectRefused(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"delivered above the workload", "name: x\nexpect:\n  delivered: 201\n",
			"x.yaml:3: expect.delivered: the workload injects 200 messages; 201 can never be delivered"},
		{"delivered above a small workload", "name: x\nworkload: {rounds: 2, recipients: 3}\nexpect:\n  none_lost: true\n  delivered: 7\n",
			"x.yaml:5: expect.delivered: the workload injects 6 messages; 7 can never be delivered"},
		{"delivered negative", "name: x\nexpect:\n  delivered: -1\n",
			"x.yaml:3: expect.delivered: must not be negative, got -1"},
		{"total time 0", "name: x\nexpect:\n  max_total_time: 0s\n",
			"x.yaml:3: expect.max_total_time: must be positive, got 0s (leave it out to not check it)"},
		{"total time negative", "name: x\n\nexpect:\n  none_lost: true\n  max_total_time: -1s\n",
			"x.yaml:5: expect.max_total_time: must be positive, got -1s (leave it out to not check it)"},
		{"p99 0", "name: x\nexpect:\n  max_latency_p99: 0ms\n",
			"x.yaml:3: expect.max_latency_p99: must be positive, got 0s (leave it out to not check it)"},
		{"connections negative", "name: x\nexpect:\n  max_connections: -1\n",
			"x.yaml:3: expect.max_connections: must not be negative, got -1"},
		{"queries negative", "name: x\nexpect:\n  max_dns_queries: -5\n",
			"x.yaml:3: expect.max_dns_queries: must not be negative, got -5"},
		{"held negative", "name: x\nexpect:\n  max_held_by_faults: -2\n",
			"x.yaml:3: expect.max_held_by_faults: must not be negative, got -2"},
		{"rate negative", "name: x\nexpect:\n  min_messages_per_second: -0.5\n",
			"x.yaml:3: expect.min_messages_per_second: must not be negative, got -0.5"},
		{"flow style", "name: x\nexpect: {delivered: 500}\n",
			"x.yaml:2: expect.delivered: the workload injects 200 messages; 500 can never be delivered"},
		// Two at once: one line each, each on its own line of the file.
		{"two", "name: x\nexpect:\n  max_connections: -1\n  max_total_time: 0s\n",
			"x.yaml:4: expect.max_total_time: must be positive, got 0s (leave it out to not check it)\n" +
				"x.yaml:3: expect.max_connections: must not be negative, got -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error for %q", c.yaml)
			}
			if !sameLines(err.Error(), c.want) {
				t.Errorf("error\n%s\nwant\n%s", err, c.want)
			}
		})
	}
}

// sameLines compares two sets of error lines in any order.
func sameLines(a, b string) bool {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

// Values the YAML decoder refuses name their line and column; an unknown
// key names itself.
func TestExpectBadValues(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // all in the error
	}{
		{"unknown key", "name: x\nexpect:\n  none_lost: true\n  max_conections: 5\n", []string{"x.yaml:4:3:", `unknown field "max_conections"`}},
		{"bare number duration", "name: x\nexpect:\n  max_total_time: 30\n", []string{"x.yaml:3:", `"30" is not a duration`}},
		{"empty duration", "name: x\nexpect:\n  max_latency_p99: \"\"\n", []string{"x.yaml:3:", `"" is not a duration`}},
		{"word for a count", "name: x\nexpect:\n  delivered: many\n", []string{"x.yaml:3:", "of type int"}},
		{"word for a flag", "name: x\nexpect:\n  none_lost: maybe\n", []string{"x.yaml:3:", "of type bool"}},
		{"overflow", "name: x\nexpect:\n  max_dns_queries: 99999999999999999999\n", []string{"x.yaml:3:", "overflow"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error for %q", c.yaml)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("more than one error: %q", err)
			}
		})
	}
}

// A good block fills exactly the pointers it names; 0 is a value, an
// absent key is no check.
func TestExpectParsed(t *testing.T) {
	s, err := Parse("x.yaml", []byte(`name: x
expect:
  delivered: 200
  none_lost: true
  max_total_time: 1m30s
  max_connections: 0
  max_latency_p99: 150ms
  min_messages_per_second: 2.5
  max_dns_queries: 228
`))
	if err != nil {
		t.Fatal(err)
	}
	e := s.Expect
	switch {
	case e.Delivered == nil || *e.Delivered != 200:
		t.Errorf("delivered %v", e.Delivered)
	case !e.NoneLost:
		t.Errorf("none_lost false")
	case e.MaxTotalTime == nil || e.MaxTotalTime.D() != 90*time.Second:
		t.Errorf("max_total_time %v", e.MaxTotalTime)
	case e.MaxConnections == nil || *e.MaxConnections != 0:
		t.Errorf("max_connections %v, want a pointer to 0", e.MaxConnections)
	case e.MaxLatencyP99 == nil || e.MaxLatencyP99.D() != 150*time.Millisecond:
		t.Errorf("max_latency_p99 %v", e.MaxLatencyP99)
	case e.MinMessagesPerSecond != 2.5:
		t.Errorf("min_messages_per_second %v", e.MinMessagesPerSecond)
	case e.MaxDNSQueries == nil || *e.MaxDNSQueries != 228:
		t.Errorf("max_dns_queries %v", e.MaxDNSQueries)
	case e.MaxHeldByFaults != nil:
		t.Errorf("max_held_by_faults %v, want nil (not in the file)", *e.MaxHeldByFaults)
	case e.Empty():
		t.Errorf("a full block reads as empty")
	}

	// delivered at the workload's size is possible.
	if _, err := Parse("x.yaml", []byte("name: x\nworkload: {rounds: 2, recipients: 3}\nexpect: {delivered: 6}\n")); err != nil {
		t.Errorf("delivered = rounds x recipients: %v", err)
	}
	// No block checks nothing.
	s, err = Parse("x.yaml", []byte("name: x\n"))
	if err != nil || !s.Expect.Empty() {
		t.Errorf("no expect block: %v, %+v", err, s.Expect)
	}
}
