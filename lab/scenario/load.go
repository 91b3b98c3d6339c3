package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/domain"
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/fault"
	"github.com/smtplab/smtplab/lab/outage"
	"github.com/smtplab/smtplab/lab/pace"
	"github.com/smtplab/smtplab/lab/topology"
)

// Load reads a scenario file over the defaults and validates it.
func Load(path string) (Scenario, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > MaxFileBytes {
		return Scenario{}, fmt.Errorf("%s:1: the file is %d bytes; a scenario is at most %d", path, fi.Size(), MaxFileBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse reads scenario YAML (named file, for messages) over the defaults
// and validates it. Every error names file:line.
func Parse(file string, data []byte) (s Scenario, err error) {
	s = Default()
	if len(bytes.TrimSpace(data)) == 0 {
		return s, fmt.Errorf("%s:1: empty scenario file", file)
	}
	f, err := preflight(data)
	if err != nil {
		return s, fmt.Errorf("%s:%w", file, err)
	}
	// The pace is taken whole from the file when it names one: the
	// default's rate must not linger under "mode: burst".
	defaultPace := s.Workload.Pace
	s.Workload.Pace = Pace{}
	if err := decode(data, &s); err != nil {
		return s, yamlError(file, err)
	}
	if f != nil {
		if fr := fractionProblems(f); len(fr) > 0 {
			return s, fmt.Errorf("%s:%s", file, strings.Join(fr, "\n"+file+":"))
		}
	}
	switch p := &s.Workload.Pace; {
	case *p == Pace{}:
		*p = defaultPace
	case p.Mode == "": // "pace: {rate: 10}" or "pace: {max_lag: 1s}": a rate
		p.Mode = pace.Rate
		if p.Rate == 0 && p.Interval == 0 {
			p.Rate = defaultPace.Rate
		}
	}
	if probs := s.problems(); len(probs) > 0 {
		var lines []string
		for _, p := range probs {
			lines = append(lines, fmt.Sprintf("%s:%d: %s: %s", file, lineOf(f, p.path), p.path, p.msg))
		}
		return s, errors.New(strings.Join(lines, "\n"))
	}
	if err := s.readImageFiles(file); err != nil {
		return s, fmt.Errorf("%s:%d: %w", file, lineOf(f, "receiver.image.files"), err)
	}
	return s, nil
}

// Validate checks s without a file (for scenarios built in code).
func (s Scenario) Validate() error {
	var msgs []string
	for _, p := range s.problems() {
		msgs = append(msgs, p.path+": "+p.msg)
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "\n"))
	}
	return nil
}

// decode unmarshals strictly. goccy/go-yaml v1.19.2 panics on some
// malformed input (found by FuzzParse, corpus kept in testdata): a panic
// becomes an error, never a crash of the lab.
func decode(data []byte, s *Scenario) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed YAML (the parser failed: %v)", r)
		}
	}()
	return yaml.UnmarshalWithOptions(data, s, yaml.DisallowUnknownField(), yaml.Strict())
}

func yamlError(file string, err error) error {
	var pe *duration.PositionError
	if errors.As(err, &pe) && pe.Line > 0 {
		return fmt.Errorf("%s:%d:%d: %s", file, pe.Line, pe.Col, pe.Msg)
	}
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		pos := ye.GetToken().Position
		return fmt.Errorf("%s:%d:%d: %s", file, pos.Line, pos.Column, ye.GetMessage())
	}
	return fmt.Errorf("%s:1: %v", file, err)
}

// lineOf finds the line of the value at path ("sender.max_per_host") in f,
// falling back to its nearest parent that the file has, then line 1 (the
// value came from the defaults).
func lineOf(f *ast.File, path string) int {
	if f == nil {
		return 1
	}
	parts := strings.Split(path, ".")
	for i := len(parts); i > 0; i-- {
		p, err := yaml.PathString("$." + strings.Join(parts[:i], "."))
		if err != nil {
			continue
		}
		if n, err := p.FilterFile(f); err == nil && n != nil && n.GetToken() != nil {
			return n.GetToken().Position.Line
		}
	}
	return 1
}

type problem struct{ path, msg string }

// checks collects problems: a value's YAML path and what is wrong with it.
type checks struct{ ps []problem }

func (c *checks) add(path, format string, args ...any) {
	c.ps = append(c.ps, problem{path, fmt.Sprintf(format, args...)})
}

func (c *checks) atLeast(path string, v, min int) {
	if v < min {
		c.add(path, "must be at least %d, got %d", min, v)
	}
}

// problems lists every impossible value; paths are YAML key paths with
// list indexes as [i].
func (s Scenario) problems() []problem {
	var c checks
	s.runProblems(&c)
	s.workloadProblems(&c)
	if w := s.Workload; w.Rounds > maxMessages || w.Recipients > maxMessages || w.Rounds*w.Recipients > maxMessages {
		// What follows walks the workload's messages and hosts: not for
		// a workload refused for its size.
		return c.ps
	}
	s.valueProblems(&c)
	s.limitProblems(&c)
	s.dnsProblems(&c)
	s.receiverProblems(&c)
	s.senderProblems(&c)
	s.outageProblems(&c)
	w := s.Workload
	s.implProblems(c.add)
	s.imageProblems(c.add)
	s.relayProblems(c.add)
	s.Expect.problems(w.Rounds*w.Recipients, w.Pace.Mode, c.add)
	for _, h := range w.Hosts() {
		if !s.Sender.routed(h) {
			c.add("workload.to", "recipient host %s has no route in sender.routes", h)
			break
		}
	}
	return c.ps
}

// outageProblems checks the faults on the mail path.
func (s Scenario) outageProblems(c *checks) {
	for i, sp := range s.OutageSpecs() {
		if _, err := outage.Build(sp); err != nil {
			c.add(fmt.Sprintf("faults[%d]", i), "%v", err)
			continue
		}
		impl := ImplGo
		switch sp.Role {
		case topology.Receiver:
			impl = s.Receiver.Impl
		case topology.Sender:
			impl = s.Sender.Impl
		}
		switch {
		case sp.Type == "partition" && sp.Role == topology.Identd:
			c.add(fmt.Sprintf("faults[%d].role", i), "identd shares the sender's network: partition the sender to cut the sending host off")
		case sp.AfterQueued > 0 && s.Sender.Impl != ImplGo && s.Sender.Impl != "":
			c.add(fmt.Sprintf("faults[%d].after_queued", i), "counts the Go sender's queue; sender.impl %s does not report it: use at or after_delivered", s.Sender.Impl)
		case sp.OnConnection > 0 && s.Receiver.Impl != ImplGo && s.Receiver.Impl != "":
			c.add(fmt.Sprintf("faults[%d].on_connection", i), "counts the Go receiver's connections; receiver.impl %s does not report them: use at or after_delivered", s.Receiver.Impl)
		}
		if impl != ImplGo && impl != "" && sp.Type == "kill" && sp.Restart {
			c.add(fmt.Sprintf("faults[%d].role", i), "restarting %s after a kill needs the Go model (impl %s is not restarted by the lab yet)", sp.Role, impl)
		}
	}
}

// runProblems checks the run's own settings.
func (s Scenario) runProblems(c *checks) {
	if !validName(s.Name) {
		c.add("name", "%q must be letters, digits, '.', '_' or '-' (it names the run's folder)", s.Name)
	}
	if s.Timeout <= 0 {
		c.add("timeout", "must be positive, got %s", s.Timeout)
	}
	if l := s.Limits; l.MemoryMB < 64 || l.MemoryMB > 1<<20 {
		c.add("limits.memory_mb", "must be 64 to %d (MiB), got %d", 1<<20, l.MemoryMB)
	}
	if l := s.Limits; l.Pids < 64 || l.Pids > 1<<22 {
		c.add("limits.pids", "must be 64 to %d, got %d", 1<<22, l.Pids)
	}
}

// workloadProblems checks the workload and its pace.
func (s Scenario) workloadProblems(c *checks) {
	w := s.Workload
	c.atLeast("workload.rounds", w.Rounds, 1)
	c.atLeast("workload.recipients", w.Recipients, 1)
	if n := w.Rounds * w.Recipients; w.Rounds > maxMessages || w.Recipients > maxMessages || n > maxMessages {
		c.add("workload", "rounds x recipients must be at most %d messages, got %d x %d", maxMessages, w.Rounds, w.Recipients)
	}
	for _, f := range []struct{ path, v string }{{"workload.subject", w.Subject}, {"workload.from_header", w.FromHeader}, {"workload.to_header", w.ToHeader}} {
		if strings.ContainsAny(f.v, "\r\n") {
			c.add(f.path, "must be one line (a line break would start a header of its own)")
		}
	}
	if !validAddress(w.From) {
		c.add("workload.from", "%q is not a mail address (local@domain)", w.From)
	}
	if !validAddress(strings.ReplaceAll(w.To, "{n}", "1")) {
		c.add("workload.to", "%q is not a mail address template (local@domain, {n} for the number)", w.To)
	}
	switch w.Injection {
	case "", InjectSendmail:
	case InjectDirect:
		if s.Sender.Impl != ImplGo && s.Sender.Impl != "" {
			c.add("workload.injection", "direct commits to the Go sender's own queue in its process; sender.impl %s takes messages by its sendmail: use sendmail", s.Sender.Impl)
		}
	default:
		c.add("workload.injection", "%q: want %s (one sendmail process per message) or %s (in the sender's process)", w.Injection, InjectSendmail, InjectDirect)
	}
	if p := w.Pace; p.Rate != 0 && p.Interval != 0 {
		c.add("workload.pace", "give rate or interval, not both")
	} else if p.Interval < 0 {
		c.add("workload.pace.interval", "must be positive, got %s", p.Interval)
	} else if err := s.PaceSpec().Validate(); err != nil {
		c.add("workload.pace", "%v", err)
	} else if p.Mode == pace.Burst && s.Sender.Impl != ImplGo && s.Sender.Impl != "" {
		c.add("workload.pace.mode", "burst holds the queue until the whole workload is in, which only the Go sender can (sender.impl %s): use a rate", s.Sender.Impl)
	}
}

// dnsProblems checks the DNS stub, its blacklists, line, records and faults, and the identd.
func (s Scenario) dnsProblems(c *checks) {
	if s.DNS.QueryDelay < 0 {
		c.add("dns.query_delay", "must not be negative, got %s", s.DNS.QueryDelay)
	}
	if !validDomain(s.DNS.LabDomain) {
		c.add("dns.lab_domain", "%q is not a domain name", s.DNS.LabDomain)
	}
	for i, bl := range s.DNS.Blacklists {
		if !validDomain(bl.Zone) {
			c.add(fmt.Sprintf("dns.blacklists[%d].zone", i), "%q is not a domain name", bl.Zone)
		}
		if bl.Policy != "" && bl.Policy != "reject" && bl.Policy != "mark" {
			c.add(fmt.Sprintf("dns.blacklists[%d].policy", i), "must be reject or mark, got %q", bl.Policy)
		}
		if bl.Code != "" && net.ParseIP(bl.Code).To4() == nil {
			c.add(fmt.Sprintf("dns.blacklists[%d].code", i), "%q is not an IPv4 address", bl.Code)
		}
		for j, ip := range bl.Listed {
			if v4 := net.ParseIP(ip).To4(); v4 == nil {
				c.add(fmt.Sprintf("dns.blacklists[%d].listed[%d]", i, j), "%q is not an IPv4 address", ip)
			}
		}
	}
	if err := s.LineConfig().Validate(); err != nil {
		c.add("dns.line", "%v", strings.TrimPrefix(err.Error(), "line: "))
	}
	for i, rec := range s.DNS.Records {
		if _, err := dns.NewRR(rec); err != nil {
			c.add(fmt.Sprintf("dns.records[%d]", i), "%v", err)
		}
	}
	for i, sp := range s.FaultSpecs() {
		if _, err := fault.Build(sp); err != nil {
			c.add(fmt.Sprintf("dns.faults[%d]", i), "%v", err)
		}
	}
	if s.Identd.User == "" || strings.ContainsAny(s.Identd.User, ":\r\n") {
		c.add("identd.user", "must be a non-empty user name without ':' or line breaks, got %q", s.Identd.User)
	} else if err := s.IdentdConfig().Validate(); err != nil {
		c.add("identd", "%v", strings.TrimPrefix(err.Error(), "identd config: "))
	}
}

// receiverProblems checks the receiver's settings.
func (s Scenario) receiverProblems(c *checks) {
	r := s.Receiver
	c.atLeast("receiver.max_sessions", r.MaxSessions, 1)
	c.atLeast("receiver.max_per_c", r.MaxPerC, 0)
	c.atLeast("receiver.max_per_ip", r.MaxPerIP, 0)
	c.atLeast("receiver.dns_multiplier", r.DNSMultiplier, 1)
	c.atLeast("receiver.dns_rounds", r.DNSRounds, 1)
	if r.Profile != "1999" && r.Profile != "courier-1.0.16" {
		c.add("receiver.profile", "must be 1999 or courier-1.0.16, got %q", r.Profile)
	}
	if r.MaxMessage < 1 {
		c.add("receiver.max_message_bytes", "must be positive, got %d", r.MaxMessage)
	}
	for _, d := range []struct {
		path string
		v    duration.Duration
	}{{"receiver.command_timeout", r.CommandTimeout}, {"receiver.data_timeout", r.DataTimeout}} {
		if d.v <= 0 {
			c.add(d.path, "must be positive, got %s", d.v)
		}
	}
	switch r.Filter.Mode {
	case "", "delay":
	case "command":
		if len(r.Filter.Command) == 0 {
			c.add("receiver.filter.command", "mode command needs a command")
		}
	default:
		c.add("receiver.filter.mode", "must be empty (the hook alone), command or delay, got %q", r.Filter.Mode)
	}
	for i, rule := range r.Rules {
		if rule.File != "" && !strings.HasPrefix(rule.File, "-") {
			c.add(fmt.Sprintf("receiver.rules[%d].file", i), "must be empty or start with '-' (as .courier-EXT), got %q", rule.File)
		}
		for j, m := range rule.Maildirs {
			if !strings.HasPrefix(m, "/") {
				c.add(fmt.Sprintf("receiver.rules[%d].maildirs[%d]", i, j), "must be an absolute path, got %q", m)
			}
		}
	}
	if !validDomain(r.Hostname) {
		c.add("receiver.hostname", "%q is not a host name", r.Hostname)
	}
	if len(r.LocalDomains) == 0 {
		c.add("receiver.local_domains", "must list at least one domain")
	}
	for i, d := range r.LocalDomains {
		if !validDomain(strings.TrimPrefix(d, ".")) {
			c.add(fmt.Sprintf("receiver.local_domains[%d]", i), "%q is not a domain or .domain", d)
		}
	}
	for _, h := range s.Workload.Hosts() {
		local := false
		for _, d := range r.LocalDomains {
			local = local || domain.Matches(d, h)
		}
		if !local && len(r.LocalDomains) > 0 {
			c.add("receiver.local_domains", "do not cover the workload's host %s: its mail would be refused as relaying", h)
			break
		}
	}
	if r.Account == "" || strings.ContainsAny(r.Account, "@/ -") {
		c.add("receiver.account", "must be a plain account name, got %q", r.Account)
	}
	if !strings.HasPrefix(r.Maildir, "/") {
		c.add("receiver.maildir", "must be an absolute path, got %q", r.Maildir)
	}
	if r.DNSTimeout <= 0 {
		c.add("receiver.dns_timeout", "must be positive, got %s", r.DNSTimeout)
	}
	if r.IdentTimeout <= 0 {
		c.add("receiver.ident_timeout", "must be positive, got %s", r.IdentTimeout)
	}
}

// senderProblems checks the sender's settings.
func (s Scenario) senderProblems(c *checks) {
	sd := s.Sender
	if !validDomain(sd.Hostname) {
		c.add("sender.hostname", "%q is not a host name", sd.Hostname)
	}
	if sd.Replicas < 0 || sd.Replicas > MaxReplicas {
		c.add("sender.replicas", "must be between 1 and %d sending hosts (0 or absent: 1), got %d", MaxReplicas, sd.Replicas)
	} else if sd.Replicas > 1 && sd.Impl != ImplGo && sd.Impl != "" {
		c.add("sender.replicas", "%d sending hosts run the Go sender only; sender.impl %s is one host: use 1", sd.Replicas, sd.Impl)
	}
	c.atLeast("sender.max_connections", sd.MaxConnections, 1)
	c.atLeast("sender.max_per_host", sd.MaxPerHost, 1)
	c.atLeast("sender.max_attempts", sd.MaxAttempts, 1)
	c.atLeast("sender.max_in_memory", sd.MaxInMemory, 1)
	c.atLeast("sender.max_per_connection", sd.MaxPerConnection, 0)
	if sd.Bounce != "dsn" && sd.Bounce != "record" {
		c.add("sender.bounce", "must be dsn or record, got %q", sd.Bounce)
	}
	for _, d := range []struct {
		path string
		v    duration.Duration
	}{{"sender.connect_timeout", sd.ConnectTimeout}, {"sender.greeting_timeout", sd.GreetingTimeout}, {"sender.helo_timeout", sd.HeloTimeout},
		{"sender.mail_timeout", sd.MailTimeout}, {"sender.rcpt_timeout", sd.RcptTimeout}, {"sender.data_timeout", sd.DataTimeout},
		{"sender.end_of_data_timeout", sd.EndOfDataTimeout}, {"sender.quit_timeout", sd.QuitTimeout}} {
		if d.v <= 0 {
			c.add(d.path, "must be positive, got %s", d.v)
		}
	}
	if sd.IdleClose < 0 {
		c.add("sender.idle_close", "must not be negative, got %s", sd.IdleClose)
	}
	if len(sd.Retry) == 0 {
		c.add("sender.retry", "must list at least one wait between attempts")
	}
	for i, d := range sd.Retry {
		if d <= 0 {
			c.add(fmt.Sprintf("sender.retry[%d]", i), "must be positive, got %s", d)
		}
	}
	for i, rt := range sd.Routes {
		if !validDomain(strings.TrimPrefix(rt.Domain, ".")) {
			c.add(fmt.Sprintf("sender.routes[%d].domain", i), "%q is not a domain or .domain", rt.Domain)
		}
	}
}

func (sd Sender) routed(host string) bool {
	for _, rt := range sd.Routes {
		if domain.Matches(rt.Domain, host) {
			return true
		}
	}
	return false
}

// maxMessages bounds a workload: the lab keeps every message's events.
const maxMessages = 1_000_000

func validName(n string) bool {
	if n == "" || n[0] == '.' || n[0] == '-' {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validAddress(a string) bool {
	i := strings.LastIndexByte(a, '@')
	return i > 0 && !strings.ContainsAny(a, " <>\r\n\t") && validDomain(a[i+1:])
}

func validDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// implProblems refuses a real MTA in a role it cannot play, or with a
// setting only the Go model honours.
func (s Scenario) implProblems(add func(path, format string, args ...any)) {
	r, sd := s.Receiver, s.Sender
	switch r.Impl {
	case ImplGo:
		// The Go receiver runs on a read-only root filesystem and writes
		// only its volumes (topology.Writable): its Maildirs are under
		// topology.MailRoot.
		under := func(key, m string) {
			if path.IsAbs(m) && !strings.HasPrefix(path.Clean(m), topology.MailRoot+"/") {
				add(key, "the lab's receiver delivers only under %s (its one writable folder for mail), got %q", topology.MailRoot, m)
			}
		}
		under("receiver.maildir", r.Maildir)
		for i, rule := range r.Rules {
			for j, m := range rule.Maildirs {
				under(fmt.Sprintf("receiver.rules[%d].maildirs[%d]", i, j), m)
			}
		}
	case ImplImage: // imageProblems
	case ImplExternal: // relayProblems
	case ImplCourier, ImplPostfix, ImplExim:
		if len(r.Rules) > 0 {
			add("receiver.rules", "only receiver.impl go has extension rules; a real %s delivers everything to receiver.maildir", r.Impl)
		}
		if r.Filter.Mode != "" {
			add("receiver.filter.mode", "only receiver.impl go has filter modes; a real %s runs with filtering enabled and no filter (the 1999 benchmark's case)", r.Impl)
		}
		for i, bl := range s.DNS.Blacklists {
			if bl.Policy == "mark" || bl.TXT || bl.Message != "" {
				add(fmt.Sprintf("dns.blacklists[%d]", i), "policy mark, txt and message are the Go receiver's; a real %s rejects listed clients with its own text", r.Impl)
			}
		}
		if !strings.HasPrefix(r.Maildir, "/") || path.Dir(path.Clean(r.Maildir)) == "/" {
			add("receiver.maildir", "a real %s delivers into the account's home: the Maildir needs a parent folder (the home), got %q", r.Impl, r.Maildir)
		}
	default:
		add("receiver.impl", "must be go, courier, postfix, exim, image (any local image, described by receiver.image) or external (a server outside Docker, receiver.external), got %q", r.Impl)
	}
	if s.CompareModel && r.Impl == ImplGo && sd.Impl == ImplGo {
		add("compare_model", "compares a real MTA with the Go model: set receiver.impl or sender.impl to a real MTA")
	}
	switch sd.Impl {
	case ImplGo, ImplCourier, ImplPostfix, ImplExim, ImplImage:
	default:
		add("sender.impl", "must be go, courier, postfix, exim or image (any local image, described by sender.image), got %q", sd.Impl)
	}
}
