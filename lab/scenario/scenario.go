// Package scenario describes one run of the lab: the workload, each role's
// settings and the run's limits. A scenario is built in two layers: the
// 1999 benchmark's settings (Default), then a YAML file over them (Load);
// Validate runs last, so nothing starts from an impossible description.
//
// Errors from a file always name file:line, whether the YAML is malformed,
// names an unknown key, has a wrong type, or gives an impossible value.
package scenario

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/fault"
	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/line"
	"github.com/smtplab/smtplab/lab/outage"
	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/receiver"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// Scenario is one run of the lab.
type Scenario struct {
	Name        string            `yaml:"name" json:"name"`
	Description string            `yaml:"description" json:"description,omitempty"`
	Timeout     duration.Duration `yaml:"timeout" json:"timeout"` // the whole run, injection to last delivery
	// Seed feeds every random choice of the run (line jitter, faults at
	// random): the same seed makes the same decisions.
	Seed     uint64   `yaml:"seed" json:"seed"`
	Workload Workload `yaml:"workload" json:"workload"`
	DNS      DNS      `yaml:"dns" json:"dns"`
	Identd   Identd   `yaml:"identd" json:"identd"`
	Receiver Receiver `yaml:"receiver" json:"receiver"`
	Sender   Sender   `yaml:"sender" json:"sender"`
	// Faults are the faults on the mail path (lab/outage): a role killed,
	// paused or partitioned, each on a trigger. The DNS faults are
	// dns.faults; the SMTP link is sender.link.
	Faults []Outage `yaml:"faults" json:"faults,omitempty"`
	// Limits bound each role's container (every one, whatever plays it).
	Limits Limits `yaml:"limits" json:"limits"`
	// Expect is what the run must show to pass (a CI gate); empty checks
	// only that every message was delivered exactly once.
	Expect Expect `yaml:"expect" json:"expect"`
	// CompareModel, with a real MTA in a role, first runs the same
	// scenario with the Go models in both roles, then this one, and prints
	// the model, the real MTAs and 1999 side by side.
	CompareModel bool `yaml:"compare_model" json:"compare_model,omitempty"`
}

// Model is the scenario with the Go models in both roles (for
// CompareModel): named <name>-model, comparing nothing itself.
func (s Scenario) Model() Scenario {
	m := s
	m.Name = s.Name + "-model"
	m.Receiver.Impl, m.Sender.Impl = ImplGo, ImplGo
	m.CompareModel = false
	return m
}

// Workload is the 1999 benchmark's injection loop: for round in 1..Rounds, for n in
// 1..Recipients, one sendmail call with one recipient. In To, Subject and
// Body, {n} stands for the recipient number, as $f did in the 1999 benchmark's loop.
type Workload struct {
	Rounds     int    `yaml:"rounds" json:"rounds"`
	Recipients int    `yaml:"recipients" json:"recipients"`
	From       string `yaml:"from" json:"from"` // envelope sender (sendmail -f)
	To         string `yaml:"to" json:"to"`     // envelope recipient
	// FromHeader and ToHeader are the From: and To: lines of the message
	// itself; the 1999 benchmark's loop wrote "From: sender" and "To: recipient".
	FromHeader string `yaml:"from_header" json:"from_header"`
	ToHeader   string `yaml:"to_header" json:"to_header"`
	Subject    string `yaml:"subject" json:"subject"`
	Body       string `yaml:"body" json:"body"`
	// Pace is when each message is injected (lab/pace).
	Pace Pace `yaml:"pace" json:"pace"`
	// Injection is how each message enters the sender's queue:
	// InjectSendmail (the default: one `sendmail` process per message, as
	// 1999's shell loop) or InjectDirect (the same sendmail code and queue
	// commit called inside the Go sender's process: no fork, for paces of
	// thousands of messages a second). The messages are the same either
	// way, so it does not make a workload another than 1999's.
	Injection string `yaml:"injection" json:"injection,omitempty"`
}

// The ways a message enters the sender's queue (Workload.Injection).
const (
	InjectSendmail = "sendmail"
	InjectDirect   = "direct"
)

// InjectionOf is w's injection, InjectSendmail when not set.
func (w Workload) InjectionOf() string {
	if w.Injection == "" {
		return InjectSendmail
	}
	return w.Injection
}

// Pace is the workload's arrival schedule (lab/pace): mode rate (a fixed
// rate, or interval, with an optional ramp), burst (the whole workload
// queued before delivery starts) or loop (one after another as fast as
// the machine goes, as the 1999 shell loop: machine-dependent).
type Pace struct {
	Mode     string            `yaml:"mode" json:"mode"`
	Rate     float64           `yaml:"rate" json:"rate,omitempty"`         // messages per second
	Interval duration.Duration `yaml:"interval" json:"interval,omitempty"` // or: one message every Interval
	Ramp     duration.Duration `yaml:"ramp" json:"ramp,omitempty"`         // from 0 to Rate over this
	MaxLag   duration.Duration `yaml:"max_lag" json:"max_lag,omitempty"`   // pace held when no message starts, or reaches the queue, later than this; 1s when 0
}

// Not1999 says why a run of this workload cannot stand beside the 1999
// benchmark's figures ("" when it can): the messages must be 1999's
// (docs/BENCHMARK-1999.md: 10 rounds of 20 recipients, one host each, the
// same envelope and text); the pace may differ (the report shows it
// beside 1999's shell loop).
func (w Workload) Not1999() string {
	var diffs []string
	for _, d := range WorkloadDiff(w, Default().Workload) {
		if !strings.HasPrefix(d.Field, "workload.pace.") && d.Field != "workload.injection" {
			diffs = append(diffs, fmt.Sprintf("%s %s (1999: %s)", d.Field, d.A, d.B))
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	return "this workload is not 1999's: " + strings.Join(diffs, ", ")
}

// Diff is one field that differs between two workloads, as the scenario
// file names it, with each side's value.
type Diff struct{ Field, A, B string }

// WorkloadDiff are the fields of the workload (its pace included) in
// which a and b differ, in the file's order.
func WorkloadDiff(a, b Workload) []Diff {
	var out []Diff
	var walk func(prefix string, x, y reflect.Value)
	walk = func(prefix string, x, y reflect.Value) {
		for i := range x.NumField() {
			name := strings.Split(x.Type().Field(i).Tag.Get("yaml"), ",")[0]
			fx, fy := x.Field(i), y.Field(i)
			if fx.Kind() == reflect.Struct && fx.Type() == reflect.TypeFor[Pace]() {
				walk(prefix+name+".", fx, fy)
				continue
			}
			if !reflect.DeepEqual(fx.Interface(), fy.Interface()) {
				out = append(out, Diff{prefix + name, short(fx.Interface()), short(fy.Interface())})
			}
		}
	}
	walk("workload.", reflect.ValueOf(a), reflect.ValueOf(b))
	return out
}

// short is v for a message, a string quoted and cut to a few words.
func short(v any) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprint(v)
	}
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// PaceSpec is the workload's schedule for lab/pace.
func (s Scenario) PaceSpec() pace.Spec {
	p := s.Workload.Pace
	sp := pace.Spec{Mode: p.Mode, PerSecond: p.Rate, Ramp: p.Ramp.D(), MaxLag: p.MaxLag.D()}
	if p.Interval > 0 {
		sp.PerSecond = float64(time.Second) / float64(p.Interval)
	}
	return sp
}

// DNS configures the stub DNS/DNSBL server.
type DNS struct {
	// QueryDelay holds every answer this long: a fixed delay, simpler than
	// the line (below) and added to it when both are on.
	QueryDelay duration.Duration `yaml:"query_delay" json:"query_delay"`
	// LabDomain names the lab's own hosts: sender.<LabDomain> and so on.
	LabDomain  string      `yaml:"lab_domain" json:"lab_domain"`
	Blacklists []Blacklist `yaml:"blacklists" json:"blacklists"`
	// Line is the dial-up line every query and answer crosses.
	Line Line `yaml:"line" json:"line"`
	// Faults hit chosen queries (lab/fault).
	Faults []Fault `yaml:"faults" json:"faults,omitempty"`
	// Records are extra records in zone-file form, any type miekg/dns
	// parses: "example.com. MX 10 receiver.lab.example.net.".
	Records []string `yaml:"records" json:"records,omitempty"`
}

// Blacklist is one DNSBL zone and what it lists.
// What the zone lists and answers is the DNS stub's (lab/dnsstub); how
// the receiver uses it, as couriertcpd's -block options, the receiver's
// (lab/receiver): policy "reject" (every RCPT refused with the text; the
// default) or "mark" (recorded only); txt asks for the TXT record (its
// text is the refusal) instead of A; message replaces the text ('@'
// becomes the client's address).
type Blacklist struct {
	dnsstub.Blacklist `yaml:",inline"`
	receiver.Block    `yaml:",inline"`
}

// Line is the simulated serial line between the receiver's resolver and
// the DNS server (lab/line). Off unless enabled; the defaults are a 28.8k
// modem.
type Line struct {
	Enabled       bool              `yaml:"enabled" json:"enabled"`
	BitsPerSecond int               `yaml:"bits_per_second" json:"bits_per_second"` // per direction
	FramingBytes  int               `yaml:"framing_bytes" json:"framing_bytes"`     // per packet: PPP + IP + UDP
	Latency       duration.Duration `yaml:"latency" json:"latency"`                 // one way
	Jitter        duration.Duration `yaml:"jitter" json:"jitter"`                   // up to this much more per packet, seeded
	Upstream      duration.Duration `yaml:"upstream" json:"upstream"`               // far-side cost of a name not in cache
	CacheTTL      duration.Duration `yaml:"cache_ttl" json:"cache_ttl"`             // far-side cache; 0s: none (the 1999 benchmark's case)
}

// Fault is one fault rule (lab/fault): its type, which queries it hits
// (every selector set must hold) and its parameters.
type Fault struct {
	Type        string            `yaml:"type" json:"type"` // drop, stall, servfail, slow_upstream
	Name        string            `yaml:"name" json:"name,omitempty"`
	QType       string            `yaml:"qtype" json:"qtype,omitempty"`
	Nth         []int             `yaml:"nth" json:"nth,omitempty"`
	Probability *float64          `yaml:"probability" json:"probability,omitempty"` // absent: every matching query
	Count       int               `yaml:"count" json:"count,omitempty"`
	Duration    duration.Duration `yaml:"duration" json:"duration,omitempty"`
	Forever     bool              `yaml:"forever" json:"forever,omitempty"`
	Follow      string            `yaml:"follow" json:"follow,omitempty"` // retries, name: keep hitting the lookup (lab/fault)
}

// Outage is one fault on the mail path (lab/outage): its type, the role
// it hits, one trigger, and how long the role stays out.
type Outage struct {
	Type string        `yaml:"type" json:"type"` // kill, pause, partition
	Role topology.Role `yaml:"role" json:"role"` // receiver, sender, dns, identd
	// Triggers: exactly one.
	At             duration.Duration `yaml:"at" json:"at,omitempty"`                           // after injection began
	AfterDelivered int               `yaml:"after_delivered" json:"after_delivered,omitempty"` // messages in the Maildir
	AfterQueued    int               `yaml:"after_queued" json:"after_queued,omitempty"`       // messages the sender queued
	OnConnection   int               `yaml:"on_connection" json:"on_connection,omitempty"`     // the receiver's Nth connection
	Probability    *float64          `yaml:"probability" json:"probability,omitempty"`         // absent: always
	// Duration: how long the role stays out (pause, partition; a kill
	// with restart: how long it stays down, 0 for at once).
	Duration duration.Duration `yaml:"duration" json:"duration,omitempty"`
	Restart  bool              `yaml:"restart" json:"restart,omitempty"` // kill: start it again
}

// OutageSpecs are the mail-path faults as lab/outage takes them.
func (s Scenario) OutageSpecs() []outage.Spec {
	out := make([]outage.Spec, len(s.Faults))
	for i, f := range s.Faults {
		out[i] = outage.Spec{Type: f.Type, Role: f.Role, At: f.At.D(), AfterDelivered: f.AfterDelivered,
			AfterQueued: f.AfterQueued, OnConnection: f.OnConnection, Probability: f.Probability,
			Duration: f.Duration.D(), Restart: f.Restart}
	}
	return out
}

// Identd configures the identd on the sending host (lab/identd).
type Identd struct {
	User    string            `yaml:"user" json:"user"`
	OS      string            `yaml:"os" json:"os,omitempty"`           // UNIX when empty
	Charset string            `yaml:"charset" json:"charset,omitempty"` // optional, after the OS
	Mode    string            `yaml:"mode" json:"mode,omitempty"`       // userid (default), error, silent (never answers), closed (not listening)
	Error   string            `yaml:"error" json:"error,omitempty"`     // mode error: NO-USER (default), HIDDEN-USER, INVALID-PORT, UNKNOWN-ERROR or an X-token
	Delay   duration.Duration `yaml:"delay" json:"delay,omitempty"`     // answer this late
}

// Receiver is the receiver's part of the scenario: what plays it (Impl)
// and the settings of the model of Courier R (lab/receiver's Config,
// declared there once with their YAML names). A real MTA takes the limits,
// checks and local domains; the Go model's own knobs (profile, DNS
// timeouts, filter modes, rules) it has no equivalent for
// (docs/REAL-MTAS.md).
type Receiver struct {
	// Impl is what receives: "go" (the model, the default), "courier"
	// (Debian's courier-mta), "postfix", "exim", "image" (any local
	// image, described by Image) or "external" (a server outside Docker,
	// described by External).
	Impl     string    `yaml:"impl" json:"impl"`
	Image    *Image    `yaml:"image" json:"image,omitempty"`
	External *External `yaml:"external" json:"external,omitempty"`
	// Evidence is how the lab knows what arrived (relay.go): "maildir"
	// (the receiver's Maildir, the default), "mbox" (an image's mbox at
	// Mbox) or "relay" (the receiver relays every message to the lab's
	// final receiver).
	Evidence        string `yaml:"evidence" json:"evidence,omitempty"`
	Mbox            string `yaml:"mbox" json:"mbox,omitempty"`
	receiver.Config `yaml:",inline"`
}

// Sender is the sender's part of the scenario: what plays it (Impl) and
// the settings of the model of Courier S (lab/sender's Config). A real
// Courier takes the routes, MAXDELS and MAXHOST.
type Sender struct {
	// Impl is what sends: "go" (the model, the default), "courier"
	// (Debian's courier-mta), "postfix", "exim", or "image" (any local
	// image, described by Image, which routes the workload's hosts by the
	// lab's DNS: they resolve to the receiver).
	Impl  string `yaml:"impl" json:"impl"`
	Image *Image `yaml:"image" json:"image,omitempty"`
	// Replicas is how many sending hosts run the Go sender, each with its
	// own queue, address and identd, the workload split among them
	// (default 1). More than one runs on the swarm engine (lab run
	// --engine swarm), as a service's replicas.
	Replicas      int `yaml:"replicas" json:"replicas,omitempty"`
	sender.Config `yaml:",inline"`
}

// MaxReplicas bounds sender.replicas: the swarm's overlay network is one
// /24, shared with the other roles and the runner.
const MaxReplicas = 64

// SenderHosts is how many sending hosts the scenario runs (1 unless
// sender.replicas says more).
func (s Scenario) SenderHosts() int { return max(1, s.Sender.Replicas) }

// What can play a role: the lab's Go model or a real MTA.
const (
	ImplGo      = "go"
	ImplCourier = "courier"
	ImplPostfix = "postfix"
	ImplExim    = "exim"
)

// MTAs are the real MTAs the scenario runs (for images to build).
func (s Scenario) MTAs() []string {
	var out []string
	for _, impl := range []string{s.Receiver.Impl, s.Sender.Impl} {
		if impl != ImplGo && impl != ImplImage && impl != ImplExternal && impl != "" && !slices.Contains(out, impl) {
			out = append(out, impl)
		}
	}
	return out
}

// Limits are a role container's resource bounds.
type Limits struct {
	// MemoryMB is the most memory, in MiB, a role's container may use
	// (its processes are killed past it); Pids the most processes and
	// threads in it at once (a real MTA forks one per session).
	MemoryMB int `yaml:"memory_mb" json:"memory_mb"`
	Pids     int `yaml:"pids" json:"pids"`
}

// Default returns the 1999 benchmark's settings; a file overrides them.
func Default() Scenario {
	return Scenario{
		Name:    "unnamed",
		Timeout: duration.Duration(5 * time.Minute),
		// Far above what the 1999 workload takes (a Go role: tens of MB;
		// real Courier: a process per session, 40 at most), so that a
		// role run away is stopped before the machine is.
		Limits: Limits{MemoryMB: topology.DefaultMemoryMB, Pids: topology.DefaultPids},
		Workload: Workload{
			Rounds: 10, Recipients: 20,
			From:       "sender@example.com",
			To:         "recipient-foo-{n}@{n}.foo.example.com",
			FromHeader: "sender",
			ToHeader:   "recipient",
			Subject:    "test {n}",
			Body:       "test {n}",
			// 196 messages in 65 s: about 3 a second (docs/BENCHMARK-1999.md).
			Pace: Pace{Mode: pace.Rate, Rate: 3},
		},
		Seed: 1999,
		DNS: DNS{
			LabDomain: "lab.example.net",
			Line: Line{
				BitsPerSecond: line.DefaultBitsPerSecond,
				FramingBytes:  line.DefaultFramingBytes,
				Latency:       duration.Duration(line.DefaultLatency),
			},
			Blacklists: []Blacklist{
				{Blacklist: dnsstub.Blacklist{Zone: "bl1.example.net"}}, {Blacklist: dnsstub.Blacklist{Zone: "bl2.example.net"}},
			},
		},
		Identd: Identd{User: "courier"},
		Receiver: Receiver{Impl: ImplGo, Config: receiver.Config{
			Hostname: "receiver.lab.example.net",
			Admission: receiver.Admission{
				MaxSessions:   40,
				MaxPerC:       40, // the 1999 benchmark's one change to Courier R's limits
				MaxPerIP:      40, // S and R shared one address in 1999
				Profile:       receiver.ProfileCourier1999,
				DNSTimeout:    duration.Duration(5 * time.Second),
				DNSMultiplier: 5,
				DNSRounds:     3,
				ReverseDNS:    true, DNSBL: true, Ident: true,
				IdentTimeout: duration.Duration(30 * time.Second),
			},
			SMTP: receiver.SMTP{
				MaxMessage:     10 << 20,
				CommandTimeout: duration.Duration(receiver.DefaultCommandTimeout),
				DataTimeout:    duration.Duration(receiver.DefaultDataTimeout),
			},
			Delivery: receiver.Delivery{
				LocalDomains: []string{"example.com", ".example.com"},
				Account:      "recipient",
				Maildir:      "/var/mail/recipient/Maildir",
			},
		}},
		Sender: Sender{Impl: ImplGo, Config: sender.Config{
			Hostname:       "sender.lab.example.net",
			MaxConnections: 40,
			MaxPerHost:     4,
			IdleClose:      duration.Duration(60 * time.Second), // esmtptimeoutkeepalive, module.esmtp/esmtpconfig.c
			Retry:          []duration.Duration{duration.Duration(time.Second), duration.Duration(5 * time.Second), duration.Duration(30 * time.Second)},
			MaxAttempts:    10,
			Bounce:         sender.BounceDSN,
			MaxInMemory:    10000,
			// Courier's module.esmtp defaults (esmtpconfig.c).
			ConnectTimeout:   duration.Duration(sender.CourierTimeouts.Connect),
			GreetingTimeout:  duration.Duration(sender.CourierTimeouts.Greeting),
			HeloTimeout:      duration.Duration(sender.CourierTimeouts.Helo),
			MailTimeout:      duration.Duration(sender.CourierTimeouts.Mail),
			RcptTimeout:      duration.Duration(sender.CourierTimeouts.Rcpt),
			DataTimeout:      duration.Duration(sender.CourierTimeouts.Data),
			EndOfDataTimeout: duration.Duration(sender.CourierTimeouts.EndOfData),
			QuitTimeout:      duration.Duration(sender.CourierTimeouts.Quit),
			Routes:           []sender.Route{{Domain: "example.com"}, {Domain: ".example.com"}},
		}},
	}
}

// Messages expands the workload in injection order.
func (w Workload) Messages() []sender.Message {
	out := make([]sender.Message, 0, w.Rounds*w.Recipients)
	for r := 1; r <= w.Rounds; r++ {
		for n := 1; n <= w.Recipients; n++ {
			sub := func(s string) string { return strings.ReplaceAll(s, "{n}", fmt.Sprint(n)) }
			to := sub(w.To)
			data := fmt.Sprintf("From: %s\nTo: %s\nSubject: %s\n\n%s\n", sub(w.FromHeader), sub(w.ToHeader), sub(w.Subject), sub(w.Body))
			out = append(out, sender.Message{Round: r, N: n, From: w.From, To: to, Data: data})
		}
	}
	return out
}

// Hosts returns the distinct recipient host names of the workload, in order.
func (w Workload) Hosts() []string {
	seen := map[string]bool{}
	var out []string
	for n := 1; n <= w.Recipients; n++ {
		to := strings.ReplaceAll(w.To, "{n}", fmt.Sprint(n))
		if i := strings.LastIndexByte(to, '@'); i >= 0 {
			h := strings.ToLower(to[i+1:])
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	return out
}

// LineConfig is the line as lab/line takes it.
func (s Scenario) LineConfig() line.Config {
	l := s.DNS.Line
	return line.Config{
		BitsPerSecond: l.BitsPerSecond, FramingBytes: l.FramingBytes,
		Latency: l.Latency.D(), Jitter: l.Jitter.D(), Upstream: l.Upstream.D(), CacheTTL: l.CacheTTL.D(),
		Seed: s.Seed,
	}
}

// FaultSpecs are the fault rules as lab/fault takes them.
func (s Scenario) FaultSpecs() []fault.Spec {
	out := make([]fault.Spec, len(s.DNS.Faults))
	for i, f := range s.DNS.Faults {
		out[i] = fault.Spec{Type: f.Type, Name: f.Name, QType: f.QType, Nth: f.Nth, Probability: f.Probability,
			Count: f.Count, Duration: f.Duration.D(), Forever: f.Forever, Follow: f.Follow}
	}
	return out
}

// IdentdConfig is the identd as lab/identd takes it.
func (s Scenario) IdentdConfig() identd.Config {
	i := s.Identd
	return identd.Config{User: i.User, OS: i.OS, Charset: i.Charset, Mode: i.Mode, Error: i.Error, Delay: i.Delay.D()}
}
