// Package topology is the lab's shape, written once: which services there
// are, which role each runs, where each listens and which shares whose
// network. `go run ./cmd/lab` starts it with testcontainers-go, and
// docker-compose.yml is generated from it (Compose), so the two cannot
// drift: a test fails when the committed file differs from Compose's.
package topology

import (
	"net"
	"strings"
)

// ControlPort is every Go role's HTTP control port (events, status,
// metrics, spec); identd, sharing the sender's network, uses IdentdControl.
const (
	ControlPort   = "8080"
	IdentdControl = "8113"
)

// Paths inside the roles' containers, and the scenario run by default.
const (
	// SpecPath is where a Go role's container finds its role spec.
	SpecPath = "/etc/smtplab/role.json"
	// SpoolPath is where a Go role keeps its events on disk, to serve them
	// again after a kill -9 and restart.
	SpoolPath = "/var/lib/smtplab/events.jsonl"
	// QueueDir is the Go sender's queue, where `lab sendmail` commits.
	QueueDir = "/var/spool/smtplab"
	// WorkloadPath is the injection (pace and messages) in a real
	// sender's container, read by `lab inject`.
	WorkloadPath = "/etc/smtplab/workload.json"
	// DefaultScenario is what `lab` and `docker-compose up` run by default.
	DefaultScenario = "scenarios/courier-1999.yaml"
)

// Role names one of the lab's roles: its service, its network alias and
// the Role of every event it logs (lab/events).
type Role string

// The lab's roles.
const (
	DNS      Role = "dns"
	Receiver Role = "receiver"
	Sender   Role = "sender"
	Identd   Role = "identd"
	// Final is the lab's own final receiver in the relay topology
	// (receiver.evidence relay): the system under test plays the receiver
	// and relays every message to it, and it checks every Message-ID and
	// times the last hop. It runs only in such a run, so it is not one of
	// Services (nor of docker-compose.yml).
	Final Role = "final"
)

// Roles are the lab's roles in start order (Services).
func Roles() []Role { return []Role{DNS, Receiver, Sender, Identd} }

// Service is one container of the lab.
type Service struct {
	Name    Role   // service name and network alias; also the role
	Listen  string // the role's own service (":53"); "" for the sender
	Control string // its control port
	// NetNSOf names the service whose network namespace this one joins
	// (identd answers on the sender's address, port 113, as the receiver's
	// IDENT query expects).
	NetNSOf Role
	// Exposes are extra ports of this service's namespace that a service
	// joining it listens on.
	Exposes []string
}

// Services are the lab's services in start order: a service comes after
// the ones it needs (the receiver resolves through dns; identd joins the
// sender's namespace).
func Services() []Service {
	return []Service{
		{Name: DNS, Listen: ":53", Control: ControlPort},
		{Name: Receiver, Listen: ":25", Control: ControlPort},
		{Name: Sender, Control: ControlPort, Exposes: []string{IdentdControl}},
		{Name: Identd, Listen: ":113", Control: IdentdControl, NetNSOf: Sender},
	}
}

// FinalService is the final receiver's service: a Go receiver, started
// before the receiver it stands behind.
func FinalService() Service {
	return Service{Name: Final, Listen: ":25", Control: ControlPort}
}

// ByName returns the service called name.
func ByName(name Role) (Service, bool) {
	for _, s := range append(Services(), FinalService()) {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// Port is the port of a service's own protocol ("53" for dns).
func (s Service) Port() string {
	_, port, _ := strings.Cut(s.Listen, ":")
	return port
}

// Addr is host joined with the named service's port: where that service
// answers on host ("10.0.0.2:53").
func Addr(host string, service Role) string {
	s, _ := ByName(service)
	return net.JoinHostPort(host, s.Port())
}
