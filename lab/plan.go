package lab

import (
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/line"
	"github.com/smtplab/smtplab/lab/receiver"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// Plan is a scenario turned, once and in one place, into what each role
// is given: the Go roles' specs, the real MTAs' scenario, the injection,
// and the DNS stub's zone. The run and the compose runner start roles
// from it; the report reads the same blacklists and line from it.
type Plan struct {
	Scenario  scenario.Scenario
	Injection sender.Injection
	dns       dnsstub.Config
}

// Addrs are the roles' addresses on the lab's network, as far as they are
// known: a role's spec needs only those of the roles it talks to (the
// receiver dns's; the sender the receiver's and dns's).
type Addrs map[topology.Role]string

// NewPlan translates sc, which must be valid.
func NewPlan(sc scenario.Scenario) Plan {
	p := Plan{Scenario: sc, Injection: sender.Injection{Pace: sc.PaceSpec(), Messages: sc.Workload.Messages(),
		Direct: sc.Workload.InjectionOf() == scenario.InjectDirect}}
	bls := make([]dnsstub.Blacklist, len(sc.DNS.Blacklists))
	for i, b := range sc.DNS.Blacklists {
		bls[i] = b.Blacklist
	}
	p.dns = dnsstub.Config{QueryDelay: sc.DNS.QueryDelay.D(), Blacklists: bls, Faults: sc.FaultSpecs(), Seed: sc.Seed,
		Origins: []string{sc.DNS.LabDomain, "example.com"}}
	if sc.DNS.Line.Enabled {
		lc := sc.LineConfig()
		p.dns.Line = &lc
	}
	return p
}

// Impl is what plays role r: scenario.ImplGo, or the real MTA the
// scenario names for the receiver or the sender.
func (p Plan) Impl(r topology.Role) string { return implOf(p.Scenario, r) }

func implOf(sc scenario.Scenario, r topology.Role) string {
	impl := ""
	switch r {
	case topology.Receiver:
		impl = sc.Receiver.Impl
	case topology.Sender:
		impl = sc.Sender.Impl
	}
	if impl == "" {
		return scenario.ImplGo
	}
	return impl
}

// Workload is the injection as JSON, as a sender's loop reads it.
func (p Plan) Workload() []byte {
	b, _ := json.Marshal(p.Injection) // plain data: cannot fail
	return b
}

// Blacklists are the DNSBL zones the dns role serves, in order.
func (p Plan) Blacklists() []string {
	zones := make([]string, len(p.dns.Blacklists))
	for i, b := range p.dns.Blacklists {
		zones[i] = b.Zone
	}
	return zones
}

// Line is the DNS line the dns role runs; nil when there is none.
func (p Plan) Line() *line.Config { return p.dns.Line }

// Spec is the spec of the Go role r, given the addresses of the roles it
// talks to.
func (p Plan) Spec(r topology.Role, a Addrs) role.Spec {
	s, _ := topology.ByName(r)
	spec := role.Spec{Role: r, Listen: s.Listen, Control: ":" + s.Control, Spool: topology.SpoolPath}
	switch r {
	case topology.DNS:
		dns := p.dns
		spec.DNS = &dns
	case topology.Receiver:
		rc := p.receiverConfig(a)
		spec.Receiver = &rc
	case topology.Sender:
		sc := p.senderConfig(a)
		spec.Sender = &sc
	case topology.Identd:
		ic := p.Scenario.IdentdConfig()
		spec.Identd = &ic
	case topology.Final:
		rc := p.finalConfig(a)
		spec.Receiver = &rc
	}
	return spec
}

// finalConfig is the final receiver of the relay topology
// (receiver.evidence relay): the lab's Go receiver with no check and no
// limit the system under test could run into, taking the scenario's local
// domains (the ones the system under test relays) into the Go receiver's
// default Maildir.
func (p Plan) finalConfig(a Addrs) receiver.Config {
	rc := scenario.Default().Receiver.Config
	rc.Hostname = p.FinalName()
	rc.LocalDomains = slices.Clone(p.Scenario.Receiver.LocalDomains)
	rc.ReverseDNS, rc.DNSBL, rc.Ident, rc.BOFHCheckDNS = false, false, false, false
	rc.MaxSessions, rc.MaxPerC, rc.MaxPerIP = 1000, 0, 0
	rc.DNSServers = []string{topology.Addr(a[topology.DNS], topology.DNS)}
	return rc
}

// FinalName is the final receiver's name in the lab's DNS (and
// "final" on the lab network): where the system under test relays.
func (p Plan) FinalName() string { return string(topology.Final) + "." + p.Scenario.DNS.LabDomain }

// receiverConfig is the receiver's part of the scenario with what the
// lab fills in: its DNS server as resolver, the identd's port, and the
// blacklists the DNS stub serves with the scenario's policy for each.
func (p Plan) receiverConfig(a Addrs) receiver.Config {
	rc := p.Scenario.Receiver.Config
	rc.DNSServers = []string{topology.Addr(a[topology.DNS], topology.DNS)}
	rc.IdentPort = port(topology.Identd)
	rc.Blacklists, rc.BlacklistPolicy = nil, map[string]receiver.Block{}
	for _, b := range p.Scenario.DNS.Blacklists {
		rc.Blacklists = append(rc.Blacklists, b.Zone)
		rc.BlacklistPolicy[b.Zone] = b.Block
	}
	return rc
}

// senderConfig is the sender's part of the scenario: its static routes
// lead to the receiver, other domains are looked up (MX, then A) in the
// lab's DNS.
func (p Plan) senderConfig(a Addrs) sender.Config {
	sc := p.Scenario.Sender.Config
	sc.QueueDir = topology.QueueDir
	sc.Routes = slices.Clone(sc.Routes)
	smtpPort := port(topology.Receiver)
	if r := p.Scenario.Receiver; r.Impl == scenario.ImplImage && r.Image != nil {
		smtpPort = r.Image.SMTPPort() // an image listens where its scenario says
	}
	relay := net.JoinHostPort(a[topology.Receiver], strconv.Itoa(smtpPort))
	if e := p.Scenario.Receiver.External; p.Scenario.Receiver.Impl == scenario.ImplExternal && e != nil {
		relay = e.Address // outside Docker: the sender resolves its name itself
		_, port, _ := net.SplitHostPort(relay)
		smtpPort, _ = strconv.Atoi(port)
	}
	for i := range sc.Routes {
		sc.Routes[i].Relay = relay
	}
	sc.DNSServers = []string{topology.Addr(a[topology.DNS], topology.DNS)}
	sc.SMTPPort = smtpPort
	sc.Seed = p.Scenario.Seed // the link's loss and jitter
	return sc
}

// port is the port number of a topology service's own protocol.
func port(r topology.Role) int {
	s, _ := topology.ByName(r)
	n, _ := strconv.Atoi(s.Port())
	return n
}

// Zone is the DNS stub's view of the live topology: A and PTR records for
// the lab's hosts, every workload host name pointing at the receiver, and
// the scenario's own records.
func (p Plan) Zone(a Addrs) dnsstub.Zone {
	return p.ZoneOf(a, nil)
}

// ZoneOf is Zone for several sending hosts (a sender's replicas on a
// swarm): senders are their addresses, a[topology.Sender] among them.
// The sender's host name resolves to every one, and each resolves back to
// it, so the receiver's reverse and forward checks pass for each as for
// one host. nil is the one sender at a[topology.Sender].
func (p Plan) ZoneOf(a Addrs, senders []string) dnsstub.Zone {
	if senders == nil {
		senders = []string{a[topology.Sender]}
	}
	senders = slices.Clone(senders) // the zone's own: records may change apart
	sc := p.Scenario
	zone := dnsstub.Zone{A: map[string][]string{}, PTR: map[string]string{}, Extra: sc.DNS.Records}
	for _, r := range []topology.Role{topology.DNS, topology.Receiver, topology.Sender, topology.Final} {
		if a[r] == "" {
			continue // no final receiver, or a receiver outside Docker
		}
		name := string(r) + "." + sc.DNS.LabDomain
		zone.A[name] = []string{a[r]}
		zone.PTR[a[r]] = name
	}
	zone.A[sc.Sender.Hostname] = senders
	for _, ip := range senders {
		zone.PTR[ip] = sc.Sender.Hostname
	}
	if rcv := a[topology.Receiver]; rcv != "" {
		zone.A[sc.Receiver.Hostname] = []string{rcv}
		zone.PTR[rcv] = sc.Receiver.Hostname
		for _, h := range sc.Workload.Hosts() {
			zone.A[h] = []string{rcv}
		}
	}
	// The envelope sender's domain resolves too (a receiver with
	// BOFHCHECKDNS on asks): to the sending host.
	if from := sc.Workload.From; strings.Contains(from, "@") {
		if d := strings.ToLower(from[strings.LastIndexByte(from, '@')+1:]); zone.A[d] == nil {
			zone.A[d] = senders
		}
	}
	return zone
}
