// Package scenario describes one run of the lab: the workload, each role's
// settings and the run's limits. A scenario is built in three layers:
// defaults (Default), then a YAML file (Load), then command-line overrides;
// Validate runs last, so nothing starts from an impossible description.
//
// Errors from a file always name file:line, whether the YAML is malformed,
// names an unknown key, has a wrong type, or gives an impossible value.
package scenario

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smtplab/smtplab/lab/fault"
	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/line"
	"github.com/smtplab/smtplab/lab/pace"
)

// Scenario is one run of the lab.
type Scenario struct {
	Name        string   `yaml:"name" json:"name"`
	Description string   `yaml:"description" json:"description,omitempty"`
	Timeout     Duration `yaml:"timeout" json:"timeout"` // the whole run, injection to last delivery
	// Seed feeds every random choice of the run (line jitter, faults at
	// random): the same seed makes the same decisions.
	Seed     uint64   `yaml:"seed" json:"seed"`
	Workload Workload `yaml:"workload" json:"workload"`
	DNS      DNS      `yaml:"dns" json:"dns"`
	Identd   Identd   `yaml:"identd" json:"identd"`
	Receiver Receiver `yaml:"receiver" json:"receiver"`
	Sender   Sender   `yaml:"sender" json:"sender"`
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

// Workload is the seed's injection loop: for round in 1..Rounds, for n in
// 1..Recipients, one sendmail call with one recipient. In To, Subject and
// Body, {n} stands for the recipient number, as $f did in the seed's loop.
type Workload struct {
	Rounds     int    `yaml:"rounds" json:"rounds"`
	Recipients int    `yaml:"recipients" json:"recipients"`
	From       string `yaml:"from" json:"from"` // envelope sender (sendmail -f)
	To         string `yaml:"to" json:"to"`     // envelope recipient
	// FromHeader and ToHeader are the From: and To: lines of the message
	// itself; the seed's loop wrote "From: sender" and "To: recipient".
	FromHeader string `yaml:"from_header" json:"from_header"`
	ToHeader   string `yaml:"to_header" json:"to_header"`
	Subject    string `yaml:"subject" json:"subject"`
	Body       string `yaml:"body" json:"body"`
	// Pace is when each message is injected (lab/pace).
	Pace Pace `yaml:"pace" json:"pace"`
}

// Pace is the workload's arrival schedule (lab/pace): mode rate (a fixed
// rate, or interval, with an optional ramp), burst (the whole workload
// queued before delivery starts) or loop (one after another as fast as
// the machine goes, as the 1999 shell loop: machine-dependent).
type Pace struct {
	Mode     string   `yaml:"mode" json:"mode"`
	Rate     float64  `yaml:"rate" json:"rate,omitempty"`         // messages per second
	Interval Duration `yaml:"interval" json:"interval,omitempty"` // or: one message every Interval
	Ramp     Duration `yaml:"ramp" json:"ramp,omitempty"`         // from 0 to Rate over this
	MaxLag   Duration `yaml:"max_lag" json:"max_lag,omitempty"`   // pace held when no message starts, or reaches the queue, later than this; 1s when 0
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
	// QueryDelay holds every answer this long: a fixed stand-in for the
	// 1999 dial-up line until the line model exists.
	QueryDelay Duration `yaml:"query_delay" json:"query_delay"`
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
type Blacklist struct {
	Zone   string   `yaml:"zone" json:"zone"`
	Listed []string `yaml:"listed" json:"listed,omitempty"`
	Code   string   `yaml:"code" json:"code,omitempty"`     // A answer for a listed address; 127.0.0.2 when empty
	Reason string   `yaml:"reason" json:"reason,omitempty"` // TXT answer for a listed address
	// How the receiver uses the zone, as couriertcpd's -block options:
	// Policy "reject" (every RCPT refused with the text; the default) or
	// "mark" (recorded only); TXT asks for the TXT record (its text is the
	// refusal) instead of A; Message replaces the text ('@' becomes the
	// client's address).
	Policy  string `yaml:"policy" json:"policy,omitempty"`
	TXT     bool   `yaml:"txt" json:"txt,omitempty"`
	Message string `yaml:"message" json:"message,omitempty"`
}

// Line is the simulated serial line between the receiver's resolver and
// the DNS server (lab/line). Off unless enabled; the defaults are a 28.8k
// modem.
type Line struct {
	Enabled       bool     `yaml:"enabled" json:"enabled"`
	BitsPerSecond int      `yaml:"bits_per_second" json:"bits_per_second"` // per direction
	FramingBytes  int      `yaml:"framing_bytes" json:"framing_bytes"`     // per packet: PPP + IP + UDP
	Latency       Duration `yaml:"latency" json:"latency"`                 // one way
	Jitter        Duration `yaml:"jitter" json:"jitter"`                   // up to this much more per packet, seeded
	Upstream      Duration `yaml:"upstream" json:"upstream"`               // far-side cost of a name not in cache
	CacheTTL      Duration `yaml:"cache_ttl" json:"cache_ttl"`             // far-side cache; 0s: none (the seed's case)
}

// Fault is one fault rule (lab/fault): its type, which queries it hits
// (every selector set must hold) and its parameters.
type Fault struct {
	Type        string   `yaml:"type" json:"type"` // drop, stall, servfail, slow_upstream
	Name        string   `yaml:"name" json:"name,omitempty"`
	QType       string   `yaml:"qtype" json:"qtype,omitempty"`
	Nth         []int    `yaml:"nth" json:"nth,omitempty"`
	Probability *float64 `yaml:"probability" json:"probability,omitempty"` // absent: every matching query
	Count       int      `yaml:"count" json:"count,omitempty"`
	Duration    Duration `yaml:"duration" json:"duration,omitempty"`
	Forever     bool     `yaml:"forever" json:"forever,omitempty"`
}

// Identd configures the identd on the sending host (lab/identd).
type Identd struct {
	User    string   `yaml:"user" json:"user"`
	OS      string   `yaml:"os" json:"os,omitempty"`           // UNIX when empty
	Charset string   `yaml:"charset" json:"charset,omitempty"` // optional, after the OS
	Mode    string   `yaml:"mode" json:"mode,omitempty"`       // userid (default), error, silent (never answers), closed (not listening)
	Error   string   `yaml:"error" json:"error,omitempty"`     // mode error: NO-USER (default), HIDDEN-USER, INVALID-PORT, UNKNOWN-ERROR or an X-token
	Delay   Duration `yaml:"delay" json:"delay,omitempty"`     // answer this late
}

// Receiver configures the model of Courier R (lab/receiver), or the real
// MTA Impl names (lab/mta, docs/REAL-MTAS.md).
type Receiver struct {
	// Impl is what receives: "go" (the model, the default), "courier"
	// (Debian's courier-mta) or "postfix". A real MTA takes the limits,
	// checks and local domains below; the Go model's own knobs (profile,
	// DNS timeouts, filter modes, rules) it has no equivalent for.
	Impl        string `yaml:"impl" json:"impl"`
	Hostname    string `yaml:"hostname" json:"hostname"`
	MaxSessions int    `yaml:"max_sessions" json:"max_sessions"` // MAXDAEMONS
	MaxPerC     int    `yaml:"max_per_c" json:"max_per_c"`       // MAXPERC: per client /24; 0: no limit
	MaxPerIP    int    `yaml:"max_per_ip" json:"max_per_ip"`     // MAXPERIP; 0: no limit
	// Profile is which lookups a connection costs: "1999" (PTR, A, one per
	// DNSBL) or "courier-1.0.16" (ten: both ends' PTR, A and AAAA, each
	// DNSBL in IPv4 and IPv6-mapped form).
	Profile       string `yaml:"profile" json:"profile"`
	DNSMultiplier int    `yaml:"dns_multiplier" json:"dns_multiplier"` // each later round's timeout is this times the last
	DNSRounds     int    `yaml:"dns_rounds" json:"dns_rounds"`
	// BOFHCheckDNS: the MAIL FROM domain must resolve (off in the seed).
	BOFHCheckDNS   bool     `yaml:"bofh_check_dns" json:"bofh_check_dns"`
	MaxMessage     int64    `yaml:"max_message_bytes" json:"max_message_bytes"` // SIZE
	CommandTimeout Duration `yaml:"command_timeout" json:"command_timeout"`     // esmtptimeout
	DataTimeout    Duration `yaml:"data_timeout" json:"data_timeout"`           // esmtptimeoutdata, per read in DATA
	Filter         Filter   `yaml:"filter" json:"filter"`
	// Rules map address extensions to Maildirs, as .courier-EXT files
	// do: "-foo-default" catches recipient-foo-*; none: everything to
	// Maildir (the seed's one .courier-foo-default).
	Rules        []Rule   `yaml:"rules" json:"rules,omitempty"`
	LocalDomains []string `yaml:"local_domains" json:"local_domains"` // "example.com" exact, ".example.com" any subdomain
	Account      string   `yaml:"account" json:"account"`             // the one local account; address extensions (account-ext) land in its Maildir
	Maildir      string   `yaml:"maildir" json:"maildir"`
	ReverseDNS   bool     `yaml:"reverse_dns" json:"reverse_dns"` // PTR of the client, then A of that name
	DNSBL        bool     `yaml:"dnsbl" json:"dnsbl"`             // one lookup per blacklist zone
	Ident        bool     `yaml:"ident" json:"ident"`             // RFC 1413 query back to the client
	DNSTimeout   Duration `yaml:"dns_timeout" json:"dns_timeout"` // first round; Courier multiplies by 5 for 3 rounds
	IdentTimeout Duration `yaml:"ident_timeout" json:"ident_timeout"`
}

// Filter is the receiver's spam-filter hook: mode "" (enabled, no
// filter: the seed's case), "command" (the message on the command's stdin;
// exit 0 or 99 accepts) or "delay" (a fixed wait per message).
type Filter struct {
	Mode    string   `yaml:"mode" json:"mode,omitempty"`
	Command []string `yaml:"command" json:"command,omitempty"`
	Delay   Duration `yaml:"delay" json:"delay,omitempty"`
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Rule delivers the recipients an extension file matches to Maildirs.
type Rule struct {
	File     string   `yaml:"file" json:"file"` // "" (the bare account), "-foo-7", "-foo-default", "-default"
	Maildirs []string `yaml:"maildirs" json:"maildirs,omitempty"`
}

// Sender configures the model of Courier S, or the real MTA Impl names.
type Sender struct {
	// Impl is what sends: "go" (the model, the default) or "courier"
	// (Debian's courier-mta: routes, MAXDELS and MAXHOST from below).
	Impl           string     `yaml:"impl" json:"impl"`
	Hostname       string     `yaml:"hostname" json:"hostname"`
	MaxConnections int        `yaml:"max_connections" json:"max_connections"` // in all (Courier's MAXDELS)
	MaxPerHost     int        `yaml:"max_per_host" json:"max_per_host"`       // per recipient host (Courier's MAXHOST)
	IdleClose      Duration   `yaml:"idle_close" json:"idle_close"`           // close a connection idle this long
	Retry          []Duration `yaml:"retry" json:"retry"`                     // waits between attempts; the last repeats
	MaxAttempts    int        `yaml:"max_attempts" json:"max_attempts"`
	Routes         []Route    `yaml:"routes" json:"routes"`
	// Bounce: "dsn" (a delivery status notification to the envelope
	// sender on a permanent failure, as Courier does) or "record" (the
	// failure is only reported).
	Bounce      string `yaml:"bounce" json:"bounce"`
	MaxInMemory int    `yaml:"max_in_memory" json:"max_in_memory"` // queued messages held in memory at once
	// MaxPerConnection caps the messages one session carries; 0: no cap
	// (Courier's esmtp client has none).
	MaxPerConnection int `yaml:"max_per_connection" json:"max_per_connection"`
	// Per-phase timeouts, Courier's esmtptimeout* settings.
	ConnectTimeout   Duration `yaml:"connect_timeout" json:"connect_timeout"`
	GreetingTimeout  Duration `yaml:"greeting_timeout" json:"greeting_timeout"`
	HeloTimeout      Duration `yaml:"helo_timeout" json:"helo_timeout"`
	MailTimeout      Duration `yaml:"mail_timeout" json:"mail_timeout"`
	RcptTimeout      Duration `yaml:"rcpt_timeout" json:"rcpt_timeout"`
	DataTimeout      Duration `yaml:"data_timeout" json:"data_timeout"`
	EndOfDataTimeout Duration `yaml:"end_of_data_timeout" json:"end_of_data_timeout"`
	QuitTimeout      Duration `yaml:"quit_timeout" json:"quit_timeout"`
}

// Route sends mail for Domain ("example.com" exact, ".example.com" any
// subdomain) to the role named in To, like Courier's esmtproutes.
type Route struct {
	Domain string `yaml:"domain" json:"domain"`
	To     string `yaml:"to" json:"to"` // "receiver": the only route target the skeleton knows
}

// What can play a role: the lab's Go model or a real MTA.
const (
	ImplGo      = "go"
	ImplCourier = "courier"
	ImplPostfix = "postfix"
)

// MTAs are the real MTAs the scenario runs (for images to build).
func (s Scenario) MTAs() []string {
	var out []string
	for _, impl := range []string{s.Receiver.Impl, s.Sender.Impl} {
		if impl != ImplGo && impl != "" && !slices.Contains(out, impl) {
			out = append(out, impl)
		}
	}
	return out
}

// Default returns the 1999 seed's settings; a file overrides them.
func Default() Scenario {
	return Scenario{
		Name:    "unnamed",
		Timeout: Duration(5 * time.Minute),
		Workload: Workload{
			Rounds: 10, Recipients: 20,
			From:       "sender@example.com",
			To:         "recipient-foo-{n}@{n}.foo.example.com",
			FromHeader: "sender",
			ToHeader:   "recipient",
			Subject:    "test {n}",
			Body:       "test {n}",
			// 196 messages in 65 s: about 3 a second (docs/SEED.md).
			Pace: Pace{Mode: pace.Rate, Rate: 3},
		},
		Seed: 1999,
		DNS: DNS{
			LabDomain: "lab.example.net",
			Line: Line{
				BitsPerSecond: line.DefaultBitsPerSecond,
				FramingBytes:  line.DefaultFramingBytes,
				Latency:       Duration(line.DefaultLatency),
			},
			Blacklists: []Blacklist{
				{Zone: "bl1.example.net"}, {Zone: "bl2.example.net"},
			},
		},
		Identd: Identd{User: "courier"},
		Receiver: Receiver{
			Impl:           ImplGo,
			Hostname:       "receiver.lab.example.net",
			MaxSessions:    40,
			MaxPerC:        40, // the seed's one change to Courier R's limits
			MaxPerIP:       40, // S and R shared one address in 1999
			Profile:        "1999",
			DNSMultiplier:  5,
			DNSRounds:      3,
			MaxMessage:     10 << 20,
			CommandTimeout: Duration(10 * time.Minute),
			DataTimeout:    Duration(5 * time.Minute),
			LocalDomains:   []string{"example.com", ".example.com"},
			Account:        "recipient",
			Maildir:        "/var/mail/recipient/Maildir",
			ReverseDNS:     true, DNSBL: true, Ident: true,
			DNSTimeout:   Duration(5 * time.Second),
			IdentTimeout: Duration(30 * time.Second),
		},
		Sender: Sender{
			Impl:           ImplGo,
			Hostname:       "sender.lab.example.net",
			MaxConnections: 40,
			MaxPerHost:     4,
			IdleClose:      Duration(60 * time.Second), // esmtptimeoutkeepalive, module.esmtp/esmtpconfig.c
			Retry:          []Duration{Duration(time.Second), Duration(5 * time.Second), Duration(30 * time.Second)},
			MaxAttempts:    10,
			Bounce:         "dsn",
			MaxInMemory:    10000,
			// Courier's module.esmtp defaults (esmtpconfig.c).
			ConnectTimeout:   Duration(time.Minute),
			GreetingTimeout:  Duration(5 * time.Minute),
			HeloTimeout:      Duration(5 * time.Minute),
			MailTimeout:      Duration(10 * time.Minute),
			RcptTimeout:      Duration(10 * time.Minute),
			DataTimeout:      Duration(10 * time.Minute),
			EndOfDataTimeout: Duration(5 * time.Minute),
			QuitTimeout:      Duration(10 * time.Second),
			Routes:           []Route{{Domain: "example.com", To: "receiver"}, {Domain: ".example.com", To: "receiver"}},
		},
	}
}

// Message is one injected message of the workload.
type Message struct {
	Round, N int
	From     string
	To       string
	// Data is the message as the seed's loop piped it to sendmail.
	Data string
}

// Messages expands the workload in injection order.
func (w Workload) Messages() []Message {
	out := make([]Message, 0, w.Rounds*w.Recipients)
	for r := 1; r <= w.Rounds; r++ {
		for n := 1; n <= w.Recipients; n++ {
			sub := func(s string) string { return strings.ReplaceAll(s, "{n}", fmt.Sprint(n)) }
			to := sub(w.To)
			data := fmt.Sprintf("From: %s\nTo: %s\nSubject: %s\n\n%s\n", sub(w.FromHeader), sub(w.ToHeader), sub(w.Subject), sub(w.Body))
			out = append(out, Message{Round: r, N: n, From: w.From, To: to, Data: data})
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

// DomainMatches reports whether host is covered by pattern: "example.com"
// matches itself only, ".example.com" any name below it (as Courier's
// locals and esmtproutes read them).
func DomainMatches(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(strings.TrimSuffix(host, "."))
	if strings.HasPrefix(pattern, ".") {
		return strings.HasSuffix(host, pattern) && len(host) > len(pattern)
	}
	return host == pattern
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
			Count: f.Count, Duration: f.Duration.D(), Forever: f.Forever}
	}
	return out
}

// IdentdConfig is the identd as lab/identd takes it.
func (s Scenario) IdentdConfig() identd.Config {
	i := s.Identd
	return identd.Config{User: i.User, OS: i.OS, Charset: i.Charset, Mode: i.Mode, Error: i.Error, Delay: i.Delay.D()}
}
