package lab

import (
	"strings"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/topology"
)

// addrs are the lab's services' addresses on its network.
type addrs struct{ dns, receiver, sender string }

// roleSpecs are the four Go roles' specs for sc, given the services'
// addresses: the one description of each role's configuration, whether
// testcontainers-go starts the roles or docker compose does.
func roleSpecs(sc scenario.Scenario, a addrs) map[string]role.Spec {
	specs := map[string]role.Spec{}
	for _, s := range topology.Services() {
		specs[s.Name] = role.Spec{Role: s.Name, Listen: s.Listen, Control: ":" + s.Control}
	}
	bls := make([]dnsstub.Blacklist, len(sc.DNS.Blacklists))
	for i, b := range sc.DNS.Blacklists {
		bls[i] = dnsstub.Blacklist{Zone: b.Zone, Listed: b.Listed, Code: b.Code, Reason: b.Reason}
	}
	dcfg := &dnsstub.Config{QueryDelay: sc.DNS.QueryDelay.D(), Blacklists: bls, Faults: sc.FaultSpecs(), Seed: sc.Seed,
		Origins: []string{sc.DNS.LabDomain, "example.com"}}
	if sc.DNS.Line.Enabled {
		lc := sc.LineConfig()
		dcfg.Line = &lc
	}
	set := func(name string, f func(*role.Spec)) {
		s := specs[name]
		f(&s)
		specs[name] = s
	}
	set(role.DNS, func(s *role.Spec) { s.DNS = dcfg })
	set(role.Receiver, func(s *role.Spec) { s.Receiver = ptr(receiverConfig(sc, a.dns)) })
	set(role.Sender, func(s *role.Spec) { s.Sender = ptr(senderConfig(sc, a.receiver, a.dns)) })
	set(role.Identd, func(s *role.Spec) { s.Identd = ptr(sc.IdentdConfig()) })
	return specs
}

// zoneFor is the DNS stub's view of the live topology: A and PTR records
// for the lab's hosts, every workload host name pointing at the receiver,
// and the scenario's own records.
func zoneFor(sc scenario.Scenario, a addrs) dnsstub.Zone {
	zone := dnsstub.Zone{A: map[string][]string{}, PTR: map[string]string{}, Extra: sc.DNS.Records}
	for _, h := range []struct{ role, ip string }{{role.DNS, a.dns}, {role.Receiver, a.receiver}, {role.Sender, a.sender}} {
		name := h.role + "." + sc.DNS.LabDomain
		zone.A[name] = []string{h.ip}
		zone.PTR[h.ip] = name
	}
	zone.A[sc.Receiver.Hostname] = []string{a.receiver}
	zone.A[sc.Sender.Hostname] = []string{a.sender}
	zone.PTR[a.receiver] = sc.Receiver.Hostname
	zone.PTR[a.sender] = sc.Sender.Hostname
	for _, h := range sc.Workload.Hosts() {
		zone.A[h] = []string{a.receiver}
	}
	// The envelope sender's domain resolves too (a receiver with
	// BOFHCHECKDNS on asks): to the sending host.
	if from := sc.Workload.From; strings.Contains(from, "@") {
		if d := strings.ToLower(from[strings.LastIndexByte(from, '@')+1:]); zone.A[d] == nil {
			zone.A[d] = []string{a.sender}
		}
	}
	return zone
}
