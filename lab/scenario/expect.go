package scenario

import (
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/pace"
)

// Expect is what a run must show to pass: a gate for CI. Each field left
// out is not checked. The lab checks them after the run (report.Check),
// prints one line per expectation, and exits non-zero when one fails.
// Apart from these, a run where some message was not delivered exactly
// once always fails.
type Expect struct {
	// Delivered: exactly this many distinct messages in the Maildir.
	Delivered *int `yaml:"delivered" json:"delivered,omitempty"`
	// NoneLost: every injected message delivered exactly once (none lost,
	// duplicated, failed or refused at injection).
	NoneLost bool `yaml:"none_lost" json:"none_lost,omitempty"`
	// MaxTotalTime bounds first injection to last delivery.
	MaxTotalTime *duration.Duration `yaml:"max_total_time" json:"max_total_time,omitempty"`
	// MaxConnections bounds the ESMTP sessions the receiver served.
	MaxConnections *int `yaml:"max_connections" json:"max_connections,omitempty"`
	// MaxLatencyP99 bounds the 99th percentile of injection-to-Maildir.
	MaxLatencyP99 *duration.Duration `yaml:"max_latency_p99" json:"max_latency_p99,omitempty"`
	// MinMessagesPerSecond is the least delivery rate.
	MinMessagesPerSecond float64 `yaml:"min_messages_per_second" json:"min_messages_per_second,omitempty"`
	// MaxDNSQueries bounds the queries the DNS stub answered.
	MaxDNSQueries *int `yaml:"max_dns_queries" json:"max_dns_queries,omitempty"`
	// MaxHeldByFaults bounds the messages held back by a faulted query.
	MaxHeldByFaults *int `yaml:"max_held_by_faults" json:"max_held_by_faults,omitempty"`
	// MaxInjectionLag bounds how late any message was injected against
	// the workload's schedule (pace mode rate only).
	MaxInjectionLag *duration.Duration `yaml:"max_injection_lag" json:"max_injection_lag,omitempty"`
	// PaceHeld: the injection held the workload's pace (lab/pace). A run
	// that did not always exits 4; this makes it a line of the gate too.
	PaceHeld bool `yaml:"pace_held" json:"pace_held,omitempty"`
}

// Empty reports whether e checks nothing.
func (e Expect) Empty() bool { return e == Expect{} }

// problems lists impossible expectations; messages is how many the
// workload injects, paceMode its pace's mode.
func (e Expect) problems(messages int, paceMode string, add func(path, format string, args ...any)) {
	if e.MaxInjectionLag != nil && paceMode != pace.Rate {
		add("expect.max_injection_lag", "the workload's pace (mode %s) has no schedule to be late for: give workload.pace a rate", paceMode)
	}
	if e.PaceHeld && paceMode == pace.Loop {
		add("expect.pace_held", "pace mode loop runs as fast as the machine goes: there is no pace to hold")
	}
	if e.Delivered != nil && *e.Delivered > messages {
		add("expect.delivered", "the workload injects %d messages; %d can never be delivered", messages, *e.Delivered)
	}
	for _, n := range []struct {
		path string
		v    *int
	}{{"expect.delivered", e.Delivered}, {"expect.max_connections", e.MaxConnections},
		{"expect.max_dns_queries", e.MaxDNSQueries}, {"expect.max_held_by_faults", e.MaxHeldByFaults}} {
		if n.v != nil && *n.v < 0 {
			add(n.path, "must not be negative, got %d", *n.v)
		}
	}
	for _, d := range []struct {
		path string
		v    *duration.Duration
	}{{"expect.max_total_time", e.MaxTotalTime}, {"expect.max_latency_p99", e.MaxLatencyP99}, {"expect.max_injection_lag", e.MaxInjectionLag}} {
		if d.v != nil && *d.v <= 0 {
			add(d.path, "must be positive, got %s (leave it out to not check it)", *d.v)
		}
	}
	if e.MinMessagesPerSecond < 0 {
		add("expect.min_messages_per_second", "must not be negative, got %g", e.MinMessagesPerSecond)
	}
}
