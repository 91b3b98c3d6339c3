package scenario

import (
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/smtplab/smtplab/lab/topology"
)

// ImplExternal is a receiver outside Docker, at a host and port the lab's
// sender can reach (receiver.external): the lab starts nothing for it and
// knows nothing of it, so its evidence is the relay topology.
const ImplExternal = "external"

// What receiver.evidence can name: how the lab knows what arrived.
const (
	// EvidenceMaildir reads the receiver's Maildir (the default).
	EvidenceMaildir = "maildir"
	// EvidenceMbox reads an image's mbox (receiver.mbox), copied out
	// and split into messages (lab/maildir's FromMbox).
	EvidenceMbox = "mbox"
	// EvidenceRelay puts the system under test in the middle: the lab's
	// sender delivers to it, it relays every message to the lab's own
	// final receiver (topology.Final, a Go receiver with no checks),
	// which checks every Message-ID exactly once and times the last hop.
	// It works for any MTA without knowing how it stores mail.
	EvidenceRelay = "relay"
)

// External is a receiver outside Docker (receiver.impl external).
type External struct {
	// Address is where the lab's sender delivers, as host:port seen from
	// the lab's containers. host.docker.internal is the machine running
	// Docker (its bridge gateway): a server there must listen on that
	// address or on all addresses, not on loopback only.
	Address string `yaml:"address" json:"address"`
	// Final is where the lab publishes its final receiver's SMTP port on
	// the machine running Docker, for the server to relay every message
	// to: "127.0.0.1:2626" for a server on that machine, "0.0.0.0:2626"
	// for one elsewhere.
	Final string `yaml:"final" json:"final"`
}

// HostDockerInternal names the machine running Docker from its
// containers; the lab maps it for the sender when receiver.external's
// address uses it (Docker's host-gateway).
const HostDockerInternal = "host.docker.internal"

// Relay says whether the run uses the relay topology
// (receiver.evidence relay, which receiver.impl external implies).
func (r Receiver) Relay() bool {
	return r.Evidence == EvidenceRelay || (r.Evidence == "" && r.Impl == ImplExternal)
}

// EvidenceKind is how the lab knows what arrived: EvidenceMaildir,
// EvidenceMbox or EvidenceRelay, the default made explicit.
func (r Receiver) EvidenceKind() string {
	switch {
	case r.Relay():
		return EvidenceRelay
	case r.Evidence == "":
		return EvidenceMaildir
	}
	return r.Evidence
}

// relayProblems checks receiver.evidence and receiver.external.
func (s Scenario) relayProblems(add func(path, format string, args ...any)) {
	r := s.Receiver
	switch r.Evidence {
	case "", EvidenceMaildir, EvidenceRelay:
	case EvidenceMbox:
		if r.Impl != ImplImage {
			add("receiver.evidence", "mbox is for an image (receiver.impl image); the lab's own %s delivers to a Maildir", implOf(r.Impl))
		} else if !path.IsAbs(r.Mbox) {
			add("receiver.mbox", "the image's evidence is the mbox it delivers to: an absolute path in its container, got %q", r.Mbox)
		}
	default:
		add("receiver.evidence", "must be maildir (the receiver's own Maildir), mbox (an image's mbox, receiver.mbox) or relay (it relays every message to the lab's final receiver), got %q", r.Evidence)
	}
	if r.Mbox != "" && r.Evidence != EvidenceMbox {
		add("receiver.mbox", "is read only with receiver.evidence mbox")
	}
	if r.Evidence == EvidenceRelay && r.Impl != ImplImage && r.Impl != ImplExternal {
		add("receiver.evidence", "relay is for a server the lab does not configure (receiver.impl image or external); the lab reads its own %s directly", implOf(r.Impl))
	}
	if r.Impl != ImplExternal {
		if r.External != nil {
			add("receiver.external", "is for receiver.impl external, not %q", implOf(r.Impl))
		}
		return
	}
	if r.Evidence == EvidenceMaildir {
		add("receiver.evidence", "a server outside Docker has no Maildir the lab can read: its evidence is relay")
	}
	if r.Image != nil {
		add("receiver.image", "is for receiver.impl image; receiver.impl external names receiver.external.address")
	}
	if sd := s.Sender.Impl; sd != ImplGo && sd != "" {
		add("sender.impl", "a server outside Docker is reached by the Go sender (its routes lead there); sender.impl %s cannot be pointed outside yet", sd)
	}
	if len(r.Rules) > 0 {
		add("receiver.rules", "only receiver.impl go has extension rules; a server outside Docker delivers as it is configured")
	}
	if r.Filter.Mode != "" {
		add("receiver.filter.mode", "only receiver.impl go has filter modes")
	}
	for i, o := range s.Faults {
		if o.Role == topology.Receiver {
			add("faults["+strconv.Itoa(i)+"].role", "the lab cannot kill, pause or cut off a server outside Docker")
		}
	}
	e := r.External
	if e == nil {
		add("receiver.external", "receiver.impl external needs receiver.external.address (host:port where the lab's sender delivers) and receiver.external.final (where the lab publishes its final receiver for your server to relay to)")
		return
	}
	if host, port, ok := hostPort(e.Address); !ok {
		add("receiver.external.address", "must be host:port (port 1-65535), got %q", e.Address)
	} else if loopback(host) {
		add("receiver.external.address", "%s is the container's own loopback, not the machine running Docker: have the server listen on the Docker bridge (or all addresses) and give %s:%s", host, HostDockerInternal, port)
	}
	if host, _, ok := hostPort(e.Final); !ok {
		add("receiver.external.final", "must be ip:port (port 1-65535) on the machine running Docker, got %q", e.Final)
	} else if _, err := netip.ParseAddr(host); err != nil {
		add("receiver.external.final", "the host must be an IP address of the machine running Docker (127.0.0.1, or 0.0.0.0 for all), got %q", host)
	}
}

func hostPort(s string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", "", false
	}
	n, err := strconv.Atoi(port)
	return host, port, err == nil && n >= 1 && n <= 65535
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
