package lab

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/topology"
)

// With several sending hosts (a sender's replicas on a swarm), the
// receiver's reverse and forward checks pass for each as for one host:
// the sender's host name has every host's address, each address names the
// sender's host, and the envelope sender's domain resolves to them all.
// The other roles are as with one sender, and Zone is ZoneOf one host.
func TestZoneOfSeveralSenders(t *testing.T) {
	sc, err := scenario.Load("../scenarios/swarm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlan(sc)
	a := Addrs{topology.DNS: "10.0.9.2", topology.Receiver: "10.0.9.3", topology.Sender: "10.0.9.4"}
	senders := []string{"10.0.9.4", "10.0.9.7"}
	z := p.ZoneOf(a, senders)

	host := sc.Sender.Hostname
	if !slices.Equal(z.A[host], senders) {
		t.Errorf("A %s: %v, want both sending hosts %v", host, z.A[host], senders)
	}
	for _, ip := range senders {
		if z.PTR[ip] != host {
			t.Errorf("PTR %s: %q, want the sender's host name %q", ip, z.PTR[ip], host)
		}
	}
	from := sc.Workload.From
	domain := strings.ToLower(from[strings.LastIndexByte(from, '@')+1:])
	if domain == host {
		t.Fatalf("the envelope sender's domain is the sender's host name (%s): the test tells nothing apart", domain)
	}
	if !slices.Equal(z.A[domain], senders) {
		t.Errorf("A %s (the envelope sender's domain): %v, want both sending hosts %v", domain, z.A[domain], senders)
	}
	// The receiver and the workload's hosts are the receiver's, once.
	rcv := a[topology.Receiver]
	if !slices.Equal(z.A[sc.Receiver.Hostname], []string{rcv}) || z.PTR[rcv] != sc.Receiver.Hostname {
		t.Errorf("receiver: A %v, PTR %q; want %s and back", z.A[sc.Receiver.Hostname], z.PTR[rcv], rcv)
	}
	for _, h := range sc.Workload.Hosts() {
		if !slices.Equal(z.A[h], []string{rcv}) {
			t.Errorf("A %s: %v, want the receiver %s", h, z.A[h], rcv)
		}
	}
	dnsName := "dns." + sc.DNS.LabDomain
	if !slices.Equal(z.A[dnsName], []string{a[topology.DNS]}) || z.PTR[a[topology.DNS]] != dnsName {
		t.Errorf("dns: A %v, PTR %q", z.A[dnsName], z.PTR[a[topology.DNS]])
	}
	// No address but the lab's roles' resolves back.
	if len(z.PTR) != 4 {
		t.Errorf("PTR records %v, want the DNS stub's, the receiver's and the two senders'", z.PTR)
	}

	// One sender: Zone is ZoneOf with none given, and ZoneOf with the
	// one sender's address given.
	one := p.Zone(a)
	if !reflect.DeepEqual(one, p.ZoneOf(a, nil)) || !reflect.DeepEqual(one, p.ZoneOf(a, []string{a[topology.Sender]})) {
		t.Errorf("Zone %+v\nis not ZoneOf one sender", one)
	}
	if !slices.Equal(one.A[host], []string{a[topology.Sender]}) || !slices.Equal(one.A[domain], []string{a[topology.Sender]}) {
		t.Errorf("one sender: A %s %v, A %s %v; want %s", host, one.A[host], domain, one.A[domain], a[topology.Sender])
	}
	if _, ok := one.PTR["10.0.9.7"]; ok {
		t.Errorf("one sender: the other address resolves back: %v", one.PTR)
	}
}

// The default scenario, whose sender's host name is not the lab's own
// name for the sender, gives every sending host the same name too.
func TestZoneOfDefaultScenario(t *testing.T) {
	sc := scenario.Default()
	sc.Sender.Hostname = "mail.sender.example"
	p := NewPlan(sc)
	a := Addrs{topology.DNS: "10.0.0.2", topology.Receiver: "10.0.0.3", topology.Sender: "10.0.0.4"}
	senders := []string{"10.0.0.4", "10.0.0.5", "10.0.0.6"}
	z := p.ZoneOf(a, senders)
	if !slices.Equal(z.A["mail.sender.example"], senders) {
		t.Errorf("A mail.sender.example: %v, want %v", z.A["mail.sender.example"], senders)
	}
	for _, ip := range senders {
		if z.PTR[ip] != "mail.sender.example" {
			t.Errorf("PTR %s: %q, want mail.sender.example", ip, z.PTR[ip])
		}
	}
	if !slices.Equal(z.A["example.com"], senders) {
		t.Errorf("A example.com (the envelope sender's domain): %v, want %v", z.A["example.com"], senders)
	}
}
