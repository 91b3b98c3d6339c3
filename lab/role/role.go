// Package role runs one of the lab's Go roles (dns, identd, receiver,
// sender) inside its container: it reads the role's Spec, starts the role's
// server and its HTTP control port, prints a ready line the lab waits for,
// and serves until its context ends.
//
// Control port contract (every role): GET /events (JSON lines), GET
// /status (event counts by kind), GET /metrics (Prometheus); the dns role
// also takes POST /zone; the sender serves GET /queue and GET /queue/size
// and takes POST /inject (the workload's messages, injected with the 1999
// benchmark's loop); the receiver serves GET /maildir (its Maildir as
// tar). A container started with --await serves POST /spec first (Await).
// Handle (handle.go) is the lab's side of this contract.
package role

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/receiver"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// Spec is what one role's container is told: which role, where to listen,
// and that role's configuration (exactly one of the pointers is set).
type Spec struct {
	Role    topology.Role `json:"role"`
	Listen  string        `json:"listen"`  // the service: ":53", ":113", ":25"; unused by sender
	Control string        `json:"control"` // HTTP control address, ":8080"
	// Spool keeps the role's events in this file too, so they survive a
	// kill -9 and a restart (events.Log.Spool); "": memory only.
	Spool    string           `json:"spool,omitempty"`
	DNS      *dnsstub.Config  `json:"dns,omitempty"`
	Identd   *identd.Config   `json:"identd,omitempty"`
	Receiver *receiver.Config `json:"receiver,omitempty"`
	Sender   *sender.Config   `json:"sender,omitempty"`
}

// ReadSpec reads a Spec from a JSON file.
func ReadSpec(path string) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("role spec: %w", err)
	}
	s, err := DecodeSpec(bytes.NewReader(b))
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ReadyLine is printed once the role listens; the lab waits for it.
func ReadyLine(role topology.Role) string { return "smtplab " + string(role) + " ready" }

// Run starts the role in spec and serves until ctx ends.
func Run(ctx context.Context, spec Spec, stdout io.Writer) error {
	log := events.NewLog(spec.Role)
	if spec.Spool != "" {
		if err := log.Spool(spec.Spool); err != nil {
			return err
		}
	}
	var (
		handler http.Handler = log.Handler()
		closer  io.Closer
	)
	switch {
	case spec.Role == topology.DNS && spec.DNS != nil:
		srv, err := dnsstub.New(*spec.DNS, log)
		if err != nil {
			return err
		}
		if _, err := srv.Listen(spec.Listen); err != nil {
			return err
		}
		handler, closer = srv.Handler(), srv
	case spec.Role == topology.Identd && spec.Identd != nil:
		srv := identd.New(*spec.Identd, log)
		if _, err := srv.Listen(spec.Listen); err != nil {
			return err
		}
		closer = srv
	case (spec.Role == topology.Receiver || spec.Role == topology.Final) && spec.Receiver != nil:
		// The final receiver of the relay topology is a receiver too.
		srv, err := receiver.New(*spec.Receiver, log)
		if err != nil {
			return err
		}
		if _, err := srv.Listen(spec.Listen); err != nil {
			return err
		}
		closer = srv
		mux := http.NewServeMux()
		mux.Handle("GET /maildir", maildirHandler(spec.Receiver.Delivery.Maildir))
		mux.Handle("/", handler)
		handler = mux
	case spec.Role == topology.Sender && spec.Sender != nil:
		srv, err := sender.New(*spec.Sender, log)
		if err != nil {
			return err
		}
		if err := srv.Start(); err != nil {
			return err
		}
		closer = srv
		mux := http.NewServeMux()
		mux.Handle("GET /queue", queueHandler(spec.Sender.QueueDir))
		mux.Handle("GET /queue/size", queueSizeHandler(spec.Sender.QueueDir))
		mux.Handle("POST /inject", injectHandler(srv))
		mux.Handle("/", handler)
		handler = mux
	default:
		return fmt.Errorf("role spec: role %q without its configuration", spec.Role)
	}
	defer closer.Close()

	if spec.Role != topology.DNS { // the DNS server serves its own /metrics
		mux := http.NewServeMux()
		mux.Handle("/metrics", eventMetrics(spec.Role, log))
		mux.Handle("/", handler)
		handler = mux
	}
	ln, err := net.Listen("tcp", spec.Control)
	if err != nil {
		return fmt.Errorf("%s control port: %w", spec.Role, err)
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	fmt.Fprintln(stdout, ReadyLine(spec.Role))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
