package receiver

// The receiver's configuration, with Courier's defaults where Courier has
// one. Each part names the Courier source it was read in (all in
// github.com/svarshavchik/courier unless said otherwise):
//
//   - Admission: couriertcpd's options, svarshavchik/courier-libs
//     tcpd/tcpd.c and tcpd/couriertcpd.sgml.
//   - SMTP: courier/courier/module.esmtp/esmtpconfig.c (esmtptimeout and
//     esmtptimeoutdata defaults) and courier/courier/submit.C
//     (BOFHCHECKDNS).
//   - Filter: courier/courier/filters/courierfilter.sgml and
//     courier/courier/doc/dot-courier.sgml (a command's exit codes).
//   - Delivery and Rule: courier/courier/module.local/dotcourier.c and
//     courier/courier/doc/dot-courier.sgml (address extensions and the
//     .courier-foo-default search).

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
)

// Config is everything the receiver needs. It is also the scenario's
// receiver section (lab/scenario embeds it): each setting is declared here
// once, with its YAML and JSON names. The fields tagged yaml:"-" are the
// lab's to fill from the live topology (addresses, ports, the blacklist
// zones the DNS stub serves); a scenario cannot set them.
type Config struct {
	Hostname  string `yaml:"hostname" json:"hostname"`
	Admission `yaml:",inline"`
	SMTP      `yaml:",inline"`
	Delivery  `yaml:",inline"`
}

// Admission is couriertcpd's part: how many sessions at once, from one
// address and from one C block, and the checks made before the greeting.
// What couriertcpd does is read from its source (svarshavchik/courier-libs
// tcpd/tcpd.c, the same in the 2009 and 2013 versions that still had
// IDENT; tcpd/couriertcpd.sgml); the comments below name the function.
type Admission struct {
	// MaxSessions is -maxprocs (MAXDAEMONS): at the limit couriertcpd
	// stops accepting (getfreeslot before accept), so connections wait in
	// the kernel's backlog.
	MaxSessions int `yaml:"max_sessions" json:"max_sessions"`
	// MaxPerC and MaxPerIP are -maxperc (MAXPERC) and -maxperip
	// (MAXPERIP); 0 is no limit (couriertcpd itself defaults MAXPERIP to 4
	// and MAXPERC to maxprocs). A connection over either is accepted, its
	// IDENT query made, and then closed without a word (see check).
	MaxPerC  int `yaml:"max_per_c" json:"max_per_c"`
	MaxPerIP int `yaml:"max_per_ip" json:"max_per_ip"`
	// Profile is the set of lookups made per connection: ProfileCourier1999
	// (the default, "" included) or ProfileCourier1016.
	Profile string `yaml:"profile" json:"profile"`

	DNSServers []string `yaml:"-" json:"dns_servers,omitempty"` // "ip:port"
	// The resolver's schedule (lab/resolver): DNSTimeout the first round
	// (default 5 s), each later round DNSMultiplier times longer (default
	// 5), DNSRounds rounds (default 3); every server is asked once a round.
	DNSTimeout    duration.Duration `yaml:"dns_timeout" json:"dns_timeout"`
	DNSMultiplier int               `yaml:"dns_multiplier" json:"dns_multiplier"`
	DNSRounds     int               `yaml:"dns_rounds" json:"dns_rounds"`

	// ReverseDNS off is -nodnslookup: no PTR, no forward confirmation.
	ReverseDNS bool `yaml:"reverse_dns" json:"reverse_dns"`
	// DNSBL off asks no blacklist (no -block options).
	DNSBL bool `yaml:"dnsbl" json:"dnsbl"`
	// Blacklists are the DNSBL zones, asked in this order, one -block each.
	Blacklists []string `yaml:"-" json:"blacklists,omitempty"`
	// BlacklistPolicy says, by zone, what a listing does; a zone not in it
	// has the zero Block: reject, A query, Courier's default text.
	BlacklistPolicy map[string]Block `yaml:"-" json:"blacklist_policy,omitempty"`

	// Ident off is -noidentlookup.
	Ident        bool              `yaml:"ident" json:"ident"`
	IdentPort    int               `yaml:"-" json:"ident_port,omitempty"`
	IdentTimeout duration.Duration `yaml:"ident_timeout" json:"ident_timeout"`
}

// The lookup profiles.
const (
	// ProfileCourier1999 is the benchmark's Courier R: four queries per
	// connection with two blacklists (PTR and A of the client, one A per
	// zone), all IPv4.
	ProfileCourier1999 = "1999"
	// ProfileCourier1016 is Debian's courier-mta 1.0.16 listening on an
	// IPv6 socket, so the client is ::ffff:a.b.c.d: PTR of the client, A
	// and AAAA of its name (rfc1035_a asks both, rfc1035qa.c), PTR of the
	// connection's local address and A and AAAA of that name (ip2host of
	// TCPLOCALHOST), and each zone twice, reversed octets and then the
	// nibbles of the mapped address (check_blocklist): ten queries with two
	// zones, as docs/REAL-MTAS.md records.
	ProfileCourier1016 = "courier-1.0.16"
)

// The DNSBL policies.
const (
	// PolicyReject is -block=zone: a listing sets BLOCK, which makes
	// Courier refuse every RCPT, and later reject zones are not asked.
	PolicyReject = "reject"
	// PolicyMark is -block=zone,VAR with a variable of the zone's own:
	// the listing is only recorded (Courier acts on BLOCK alone).
	PolicyMark = "mark"
)

// Block is one DNSBL zone's settings (couriertcpd's
// -block=zone[,var[,msg]]).
type Block struct {
	Policy string `yaml:"policy" json:"policy,omitempty"` // PolicyReject (default, "") or PolicyMark
	// TXT asks for TXT records instead of A (-block=zone,BLOCK,*): the
	// zone lists an address when it has a TXT record for it, and the text
	// is the record's.
	TXT bool `yaml:"txt" json:"txt,omitempty"`
	// Message replaces the text (its first '@' becomes the client's
	// address, as mkmymsg does); with neither TXT nor Message the text is
	// "Blacklisted by <zone>".
	Message string `yaml:"message" json:"message,omitempty"`
}

// Validate reports the first bad admission setting.
func (a Admission) Validate() error {
	if a.MaxSessions < 1 {
		return fmt.Errorf("receiver: max sessions must be at least 1, got %d (with none it would never accept)", a.MaxSessions)
	}
	switch a.Profile {
	case "", ProfileCourier1999, ProfileCourier1016:
	default:
		return fmt.Errorf("receiver: unknown lookup profile %q", a.Profile)
	}
	if a.MaxPerC < 0 || a.MaxPerIP < 0 || a.DNSMultiplier < 0 || a.DNSRounds < 0 {
		return fmt.Errorf("receiver: negative limit or DNS schedule")
	}
	for zone, b := range a.BlacklistPolicy {
		if b.Policy != "" && b.Policy != PolicyReject && b.Policy != PolicyMark {
			return fmt.Errorf("receiver: blacklist %s: unknown policy %q", zone, b.Policy)
		}
		if b.TXT && b.Message != "" {
			return fmt.Errorf("receiver: blacklist %s: a TXT query and a message exclude each other", zone)
		}
		if !slices.Contains(a.Blacklists, zone) {
			return fmt.Errorf("receiver: policy for %s, which is not in blacklists", zone)
		}
	}
	return nil
}

// Courier's defaults (courier/courier/module.esmtp/esmtpconfig.c):
// esmtptimeout, the wait for each command line, is 10 minutes;
// esmtptimeoutdata, the wait for each read inside DATA and for each write
// (courieresmtpd.c sets iovwrite_timeout=data_timeout), is 5 minutes.
const (
	DefaultCommandTimeout = 10 * time.Minute
	DefaultDataTimeout    = 5 * time.Minute
)

// SMTP is courieresmtpd's part: the session's limits, checks and filter.
type SMTP struct {
	// MaxMessage is the SIZE limit in bytes (EHLO advertises it; a larger
	// SIZE= or message is refused with 552). New makes 0 10 MiB, Courier's
	// sizelimit default.
	MaxMessage int64 `yaml:"max_message_bytes" json:"max_message_bytes"`
	// CommandTimeout is the wait for each command line (Courier's
	// esmtptimeout, default 10 min); at its end the server answers 421 and
	// closes.
	CommandTimeout duration.Duration `yaml:"command_timeout" json:"command_timeout"`
	// DataTimeout is the wait for each read inside DATA and for each reply
	// written (Courier's esmtptimeoutdata, default 5 min). A client stalling
	// inside DATA gets 421 and the connection closed; nothing is delivered.
	DataTimeout duration.Duration `yaml:"data_timeout" json:"data_timeout"`
	// BOFHCheckDNS: the MAIL FROM domain must resolve (MX, else A), as
	// Courier's BOFHCHECKDNS=1. Off in the 1999 run.
	BOFHCheckDNS bool `yaml:"bofh_check_dns" json:"bofh_check_dns"`
	// Filter is the content filter every accepted message passes before
	// delivery ("filtering enabled").
	Filter Filter `yaml:"filter" json:"filter"`
}

// Filter modes.
const (
	// FilterHook: filtering enabled with no filter installed (the 1999
	// benchmark): the message passes the hook and nothing else.
	FilterHook = ""
	// FilterCommand runs Filter.Command with the message on stdin.
	FilterCommand = "command"
	// FilterDelay holds every message Filter.Delay, a stand-in for a filter
	// of known cost.
	FilterDelay = "delay"
)

// Filter is the spam-filter hook run on each message after its data is in
// and before delivery, as Courier runs courierfilter's filters from submit
// before it answers the end of DATA.
//
// A command's verdict: if the first line of its standard output is an
// SMTP reply ("550 ...", "451 ...") that reply is the answer, as a
// courierfilter(8) filter answers; otherwise its exit code decides with
// dot-courier(5)'s meaning (courier/courier/doc/dot-courier.sgml): 0 and
// 99 accept; 64, 65, 67, 68, 69, 70, 76, 77, 78, 100 and 112 are permanent
// (550 5.7.1); any other exit, a command that cannot start or one still
// running after Timeout is temporary (451 4.7.1), so the sender retries.
type Filter struct {
	Mode    string            `yaml:"mode" json:"mode,omitempty"`       // FilterHook, FilterCommand or FilterDelay
	Command []string          `yaml:"command" json:"command,omitempty"` // argv, for FilterCommand
	Delay   duration.Duration `yaml:"delay" json:"delay,omitempty"`
	// Timeout bounds a command (default: DataTimeout).
	Timeout duration.Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Delivery says what is local and where it goes.
type Delivery struct {
	// LocalDomains are domain.Matches patterns (".example.com" is
	// every subdomain, "example.com" the domain itself). A recipient in any
	// other domain is refused 550 5.7.1: never an open relay.
	LocalDomains []string `yaml:"local_domains" json:"local_domains"`
	// Account is the one local account; its address extensions are
	// Account-ext (courier/courier/module.local/dotcourier.c).
	Account string `yaml:"account" json:"account"`
	// Maildir is the account's default mailbox: where a message goes when
	// its dot-courier file lists no Maildir (Courier's defaultdelivery).
	Maildir string `yaml:"maildir" json:"maildir"`
	// Rules are the account's dot-courier files. Without rules the account
	// has a catch-all .courier-default delivering to Maildir, so every
	// Account-anything address is accepted (the 1999 benchmark's one
	// Maildir).
	Rules []Rule `yaml:"rules" json:"rules,omitempty"`
	// NoFsync skips the fsyncs of Maildir delivery: for measuring what
	// they cost, never for a faithful run.
	NoFsync bool `yaml:"-" json:"no_fsync,omitempty"`
}

// Rule is one dot-courier file of the account. File is its name after
// ".courier": "" for .courier (the bare account), "-foo-7", "-foo-default",
// "-default". An address Account-ext looks for .courier-EXT, then, taking
// off one "-part" at a time from the end, .courier-PREFIX-default, and
// last .courier-default; the first that exists decides, and with none the
// address does not exist (550 5.1.1). So recipient-foo-7 tries
// .courier-foo-7, .courier-foo-default, .courier-default, and
// .courier-foo-default does not cover recipient-foo itself. Periods in the
// extension are colons in the file name, and names are compared in lower
// case. The bare account always exists: without a "" rule it goes to
// Maildir (a missing $HOME/.courier is a zero-length one).
type Rule struct {
	File string `yaml:"file" json:"file"`
	// Maildirs each get one copy. Empty: the default delivery, Maildir (a
	// zero-length file).
	Maildirs []string `yaml:"maildirs" json:"maildirs,omitempty"`
}

// withDefaults fills the zero timeouts with Courier's.
func (c SMTP) withDefaults() SMTP {
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = duration.Duration(DefaultCommandTimeout)
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = duration.Duration(DefaultDataTimeout)
	}
	if c.Filter.Timeout <= 0 {
		c.Filter.Timeout = c.DataTimeout
	}
	return c
}

func (f Filter) check() error {
	switch f.Mode {
	case FilterHook, FilterDelay:
	case FilterCommand:
		if len(f.Command) == 0 {
			return errors.New("receiver: filter mode \"command\" without a command")
		}
	default:
		return fmt.Errorf("receiver: unknown filter mode %q", f.Mode)
	}
	return nil
}

// zones are the DNSBL zones to ask: Blacklists, when DNSBL is on.
func (a Admission) zones() []string {
	if !a.DNSBL {
		return nil
	}
	return a.Blacklists
}
