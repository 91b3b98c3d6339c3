// Package topology is the lab's shape, written once: which services there
// are, which role each runs, where each listens and which shares whose
// network. `go run ./cmd/lab` starts it with testcontainers-go, and
// docker-compose.yml is generated from it (Compose), so the two cannot
// drift: a test fails when the committed file differs from Compose's.
package topology

import (
	"net"
	"path"
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
	// MailRoot holds the Go receiver's Maildirs (receiver.maildir and
	// its rules' maildirs are under it): the only place it delivers.
	MailRoot = "/var/mail"
	// RoleUser is who a Go role runs as: nobody, with no capability and a
	// read-only root filesystem, writing only in Writable.
	RoleUser = "65534:65534"
	// DefaultMemoryMB and DefaultPids bound each role's container unless
	// the scenario's limits say otherwise (and always in Compose, whose
	// scenario is chosen only when its runner starts).
	DefaultMemoryMB = 2048
	DefaultPids     = 4096
	// DefaultScenario is what `lab` and `docker-compose up` run by default.
	DefaultScenario = "scenarios/courier-1999.yaml"
)

// UnprivilegedPortStart is the network namespace's sysctl under which
// binding a port needs a capability (Documentation/networking/
// ip-sysctl.rst in the Linux source): 0 lets a role running as RoleUser
// bind 25, 53 and 113 with none.
const UnprivilegedPortStart = "net.ipv4.ip_unprivileged_port_start"

// Writable are the folders a Go role writes, each a volume of its own
// (its root filesystem is read-only): its spec and workload, its event
// spool, the sender's queue and the receiver's Maildirs. The lab's image
// (images/lab/Dockerfile) holds each, owned by RoleUser, so that a fresh
// volume is the role's to write.
func Writable() []string {
	return []string{path.Dir(SpecPath), path.Dir(SpoolPath), QueueDir, MailRoot}
}

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

// Sharing are s and, after it, the services that join its network
// namespace (NetNSOf s): what one host of s serves in one process where
// they are not containers of their own (a swarm service's task, a
// Kubernetes pod).
func (s Service) Sharing() []Service {
	out := []Service{s}
	for _, o := range Services() {
		if o.NetNSOf == s.Name {
			out = append(out, o)
		}
	}
	return out
}

// AwaitCommand is the lab's command that serves s and every service
// sharing its network namespace in one process, each awaiting its spec on
// its control port, s's first: `role --await :8080 --await :8113` for the
// sender, which serves its identd (role.AwaitAll). A swarm service
// (lab/swarm.go) cannot share a network namespace with another; the
// Kubernetes manifests (kube.go) run the same one process per pod.
func (s Service) AwaitCommand() []string {
	cmd := []string{"role"}
	for _, o := range s.Sharing() {
		cmd = append(cmd, "--await", ":"+o.Control)
	}
	return cmd
}
