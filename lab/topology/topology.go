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

// Service is one container of the lab.
type Service struct {
	Name    string // service name and network alias; also the role
	Listen  string // the role's own service (":53"); "" for the sender
	Control string // its control port
	// NetNSOf names the service whose network namespace this one joins
	// (identd answers on the sender's address, port 113, as the receiver's
	// IDENT query expects).
	NetNSOf string
	// Exposes are extra ports of this service's namespace that a service
	// joining it listens on.
	Exposes []string
}

// Services are the lab's services in start order: a service comes after
// the ones it needs (the receiver resolves through dns; identd joins the
// sender's namespace).
func Services() []Service {
	return []Service{
		{Name: "dns", Listen: ":53", Control: ControlPort},
		{Name: "receiver", Listen: ":25", Control: ControlPort},
		{Name: "sender", Control: ControlPort, Exposes: []string{IdentdControl}},
		{Name: "identd", Listen: ":113", Control: IdentdControl, NetNSOf: "sender"},
	}
}

// ByName returns the service called name.
func ByName(name string) (Service, bool) {
	for _, s := range Services() {
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
func Addr(host, service string) string {
	s, _ := ByName(service)
	return net.JoinHostPort(host, s.Port())
}
