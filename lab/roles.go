package lab

import (
	"strconv"
	"time"

	"github.com/smtplab/smtplab/lab/receiver"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// receiverConfig is the receiver's part of the scenario, with the lab's
// DNS server as its resolver.
func receiverConfig(sc scenario.Scenario, dnsIP string) receiver.Config {
	rc := sc.Receiver
	var zones []string
	policy := map[string]receiver.Blacklist{}
	if rc.DNSBL {
		for _, b := range sc.DNS.Blacklists {
			zones = append(zones, b.Zone)
			policy[b.Zone] = receiver.Blacklist{Policy: b.Policy, TXT: b.TXT, Message: b.Message}
		}
	}
	rules := make([]receiver.Rule, len(rc.Rules))
	for i, r := range rc.Rules {
		rules[i] = receiver.Rule{File: r.File, Maildirs: r.Maildirs}
	}
	return receiver.Config{
		Hostname: rc.Hostname,
		Admission: receiver.Admission{
			MaxSessions: rc.MaxSessions, MaxPerC: rc.MaxPerC, MaxPerIP: rc.MaxPerIP, Profile: rc.Profile,
			DNSServers: []string{topology.Addr(dnsIP, role.DNS)}, DNSTimeout: rc.DNSTimeout.D(),
			DNSMultiplier: rc.DNSMultiplier, DNSRounds: rc.DNSRounds,
			ReverseDNS: rc.ReverseDNS, Blacklists: zones, BlacklistPolicy: policy,
			Ident: rc.Ident, IdentPort: port(role.Identd), IdentTimeout: rc.IdentTimeout.D(),
		},
		SMTP: receiver.SMTP{
			MaxMessage: rc.MaxMessage, CommandTimeout: rc.CommandTimeout.D(), DataTimeout: rc.DataTimeout.D(),
			BOFHCheckDNS: rc.BOFHCheckDNS,
			Filter: receiver.Filter{Mode: rc.Filter.Mode, Command: rc.Filter.Command,
				Delay: rc.Filter.Delay.D(), Timeout: rc.Filter.Timeout.D()},
		},
		Delivery: receiver.Delivery{LocalDomains: rc.LocalDomains, Account: rc.Account, Maildir: rc.Maildir, Rules: rules},
	}
}

// senderConfig is the sender's part of the scenario: its static routes
// lead to the receiver, other domains are looked up (MX, then A) in the
// lab's DNS.
func senderConfig(sc scenario.Scenario, receiverIP, dnsIP string) sender.Config {
	sd := sc.Sender
	routes := make([]sender.Route, len(sd.Routes))
	for i, rt := range sd.Routes {
		routes[i] = sender.Route{Domain: rt.Domain, Relay: topology.Addr(receiverIP, role.Receiver)}
	}
	retry := make([]time.Duration, len(sd.Retry))
	for i, d := range sd.Retry {
		retry[i] = d.D()
	}
	return sender.Config{
		Hostname: sd.Hostname, QueueDir: queueDir,
		MaxConnections: sd.MaxConnections, MaxPerHost: sd.MaxPerHost,
		IdleClose: sd.IdleClose.D(), Retry: retry, MaxAttempts: sd.MaxAttempts, Routes: routes,
		DNSServers: []string{topology.Addr(dnsIP, role.DNS)}, SMTPPort: port(role.Receiver),
		Bounce: sd.Bounce, MaxInMemory: sd.MaxInMemory, MaxPerConnection: sd.MaxPerConnection,
		ConnectTimeout: sd.ConnectTimeout.D(), GreetingTimeout: sd.GreetingTimeout.D(), HeloTimeout: sd.HeloTimeout.D(),
		MailTimeout: sd.MailTimeout.D(), RcptTimeout: sd.RcptTimeout.D(), DataTimeout: sd.DataTimeout.D(),
		EndOfDataTimeout: sd.EndOfDataTimeout.D(), QuitTimeout: sd.QuitTimeout.D(),
	}
}

// port is the port number of a topology service's own protocol.
func port(service string) int {
	s, _ := topology.ByName(service)
	n, _ := strconv.Atoi(s.Port())
	return n
}
