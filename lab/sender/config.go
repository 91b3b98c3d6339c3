package sender

// The sender's configuration: Config, its defaults and its checks, as
// Courier's module.esmtp reads its own. The per-phase timeouts default to
// those of courier/module.esmtp/esmtpconfig.c in Courier's source
// (svarshavchik/courier: courier/courier/module.esmtp/esmtpconfig.c, the
// config_time_esmtp* functions; CourierTimeouts in smtpclient.go lists
// them); the connection limits are module.esmtp's MAXDELS and MAXHOST
// (courier/module.esmtp/courier.config); the routes are its esmtproutes.

import (
	"fmt"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/line"
)

// Route sends mail for Domain ("example.com" exact, ".example.com" any
// subdomain) to Relay ("ip:port"), like Courier's esmtproutes. In a
// scenario a route names the domain only: the lab routes it to its
// receiver.
type Route struct {
	Domain string `yaml:"domain" json:"domain"`
	Relay  string `yaml:"-" json:"relay,omitempty"`
}

// Bounce modes: what a permanent failure leaves behind.
const (
	BounceDSN    = "dsn"    // a DSN to the envelope sender, and the Failed event
	BounceRecord = "record" // only the Failed event
)

// Config is everything the sender needs. Zero values take the defaults
// named in each comment. It is also the scenario's sender section
// (lab/scenario embeds it): each setting is declared here once, with its
// YAML and JSON names. The fields tagged yaml:"-" are the lab's to fill
// from the live topology (queue, resolver, ports); a scenario cannot set
// them.
type Config struct {
	Hostname       string              `yaml:"hostname" json:"hostname"`
	QueueDir       string              `yaml:"-" json:"queue_dir,omitempty"`
	MaxConnections int                 `yaml:"max_connections" json:"max_connections"` // in all (Courier's MAXDELS)
	MaxPerHost     int                 `yaml:"max_per_host" json:"max_per_host"`       // per recipient host (Courier's MAXHOST)
	IdleClose      duration.Duration   `yaml:"idle_close" json:"idle_close"`           // close a connection idle this long
	Retry          []duration.Duration `yaml:"retry" json:"retry"`                     // waits between attempts, the last repeats; default [1s]
	MaxAttempts    int                 `yaml:"max_attempts" json:"max_attempts"`       // default 10
	Routes         []Route             `yaml:"routes" json:"routes"`

	// DNSServers ("ip:port") resolve MX and A for hosts no route matches;
	// none: such hosts fail ("no route"). The resolver keeps Courier's
	// schedule (lab/resolver): DNSFirstTimeout (default 5s), times 5 each
	// round, DNSRounds rounds (default 3).
	DNSServers      []string          `yaml:"-" json:"dns_servers,omitempty"`
	DNSFirstTimeout duration.Duration `yaml:"-" json:"dns_first_timeout,omitempty"`
	DNSRounds       int               `yaml:"-" json:"dns_rounds,omitempty"`
	// SMTPPort is the port of servers found through MX/A; default 25.
	SMTPPort int `yaml:"-" json:"smtp_port,omitempty"`

	// Bounce is "dsn" (default, Courier's behaviour: a delivery status
	// notification to the envelope sender on a permanent failure) or
	// "record" (the failure is only reported).
	Bounce string `yaml:"bounce" json:"bounce"`
	// MaxInMemory caps the messages held in memory; default 10000.
	MaxInMemory int `yaml:"max_in_memory" json:"max_in_memory"`
	// MaxPerConnection caps the messages one session carries; 0: no cap
	// (Courier's esmtp client has none).
	MaxPerConnection int `yaml:"max_per_connection" json:"max_per_connection"`
	// NoFsync turns the queue's fsyncs off: for measuring what they cost,
	// never for a run whose durability matters.
	NoFsync bool `yaml:"-" json:"no_fsync,omitempty"`

	// Timeouts per phase, Courier's esmtptimeout* settings; zero takes
	// CommandTimeout when that is set (a shorthand for tests), else
	// Courier's default (CourierTimeouts, smtpclient.go).
	ConnectTimeout   duration.Duration `yaml:"connect_timeout" json:"connect_timeout"`
	GreetingTimeout  duration.Duration `yaml:"greeting_timeout" json:"greeting_timeout"`
	HeloTimeout      duration.Duration `yaml:"helo_timeout" json:"helo_timeout"`
	MailTimeout      duration.Duration `yaml:"mail_timeout" json:"mail_timeout"`
	RcptTimeout      duration.Duration `yaml:"rcpt_timeout" json:"rcpt_timeout"`
	DataTimeout      duration.Duration `yaml:"data_timeout" json:"data_timeout"` // the reply to DATA
	EndOfDataTimeout duration.Duration `yaml:"end_of_data_timeout" json:"end_of_data_timeout"`
	QuitTimeout      duration.Duration `yaml:"quit_timeout" json:"quit_timeout"`
	CommandTimeout   duration.Duration `yaml:"-" json:"command_timeout,omitempty"`

	// Link carries the sender's SMTP connections over a modelled line
	// (lab/line's link: bandwidth, latency, jitter, loss, reset after N
	// bytes); off unless enabled. Seed seeds its loss and jitter (the
	// scenario's seed, filled in by the lab).
	Link line.LinkConfig `yaml:"link" json:"link"`
	Seed uint64          `yaml:"-" json:"seed,omitempty"`
}

// setDefaults fills in the defaults named in Config's comments.
func (c *Config) setDefaults() {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if len(c.Retry) == 0 {
		c.Retry = []duration.Duration{duration.Duration(time.Second)}
	}
	if c.SMTPPort == 0 {
		c.SMTPPort = 25
	}
	if c.Bounce == "" {
		c.Bounce = BounceDSN
	}
	if c.MaxInMemory == 0 {
		c.MaxInMemory = 10000
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = duration.Duration(CourierTimeouts.Connect)
	}
	for _, p := range []struct {
		v   *duration.Duration
		def time.Duration
	}{
		{&c.GreetingTimeout, CourierTimeouts.Greeting},
		{&c.HeloTimeout, CourierTimeouts.Helo},
		{&c.MailTimeout, CourierTimeouts.Mail},
		{&c.RcptTimeout, CourierTimeouts.Rcpt},
		{&c.DataTimeout, CourierTimeouts.Data},
		{&c.EndOfDataTimeout, CourierTimeouts.EndOfData},
		{&c.QuitTimeout, CourierTimeouts.Quit},
	} {
		switch {
		case *p.v != 0:
		case c.CommandTimeout != 0:
			*p.v = c.CommandTimeout
		default:
			*p.v = duration.Duration(p.def)
		}
	}
	if c.Link.Enabled {
		c.Link = c.Link.WithDefaults() // a 28.8k modem, RFC 879's segment, a 1 s RTO
	}
}

// timeouts are the per-phase limits of c's SMTP sessions.
func (c *Config) timeouts() Timeouts {
	return Timeouts{Connect: c.ConnectTimeout.D(), Greeting: c.GreetingTimeout.D(), Helo: c.HeloTimeout.D(),
		Mail: c.MailTimeout.D(), Rcpt: c.RcptTimeout.D(), Data: c.DataTimeout.D(), EndOfData: c.EndOfDataTimeout.D(), Quit: c.QuitTimeout.D()}
}

// retry is the waits between attempts.
func (c *Config) retry() []time.Duration {
	out := make([]time.Duration, len(c.Retry))
	for i, d := range c.Retry {
		out[i] = d.D()
	}
	return out
}

// validate checks a Config whose defaults are set.
func (c *Config) validate() error {
	if c.MaxConnections < 1 || c.MaxPerHost < 1 {
		return fmt.Errorf("sender: connection limits must be at least 1 (total %d, per host %d)", c.MaxConnections, c.MaxPerHost)
	}
	if c.Bounce != BounceDSN && c.Bounce != BounceRecord {
		return fmt.Errorf("sender: bounce %q: want %q or %q", c.Bounce, BounceDSN, BounceRecord)
	}
	if err := c.Link.Validate(); err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	if c.MaxInMemory < 1 {
		return fmt.Errorf("sender: max_in_memory must be at least 1, got %d", c.MaxInMemory)
	}
	return nil
}
