package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/role"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// RunCompose runs sc on roles that docker compose started (docker-compose.yml,
// generated from lab/topology): each service waits, with `lab role
// --await`, for its spec. RunCompose finds the services by name on the
// compose network, gives each the spec Run would give it (roleSpecs) and
// the DNS stub its zone, injects the workload over the sender's control
// port, waits for delivery, collects the events and the Maildir over the
// control ports, and writes the result as Run does. It leaves the
// containers to compose (docker-compose down -v).
func RunCompose(ctx context.Context, sc scenario.Scenario, opt Options) (res *Result, err error) {
	start := time.Now()
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	if sc.Receiver.Impl != scenario.ImplGo || sc.Sender.Impl != scenario.ImplGo {
		return nil, fmt.Errorf("scenario %s: docker compose runs the Go roles only (receiver.impl %q, sender.impl %q); run real MTAs with go run ./cmd/lab", sc.Name, sc.Receiver.Impl, sc.Sender.Impl)
	}
	res = newResult(sc, start, opt.ResultsDir, report.Environment{LabVersion: "compose", Image: topology.ComposeImage, Network: "compose"})
	var lastDelivery time.Time
	defer func() { err = writeResult(res, lastDelivery, err) }()

	r, err := configureCompose(ctx, sc, opt.say)
	if err != nil {
		return res, err
	}
	r.workload, err = json.Marshal(sender.Injection{Pace: sc.PaceSpec(), Messages: sc.Workload.Messages()})
	if err != nil {
		return res, err
	}
	lastDelivery, err = drive(ctx, r, sc, opt, res, start, func(ctx context.Context, mdir string) error {
		tarball, err := r.receiver.Client().Get(ctx, "/maildir")
		if err != nil {
			return err
		}
		return maildir.Extract(bytes.NewReader(tarball), mdir)
	})
	return res, err
}

// configureCompose finds the compose services, waits until each awaits its
// spec, and gives it: dns first (with its zone last, once every address is
// known), then receiver, sender and identd, in topology order.
func configureCompose(ctx context.Context, sc scenario.Scenario, say func(string, ...any)) (running, error) {
	var r running
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ips := map[string]string{}
	for _, s := range topology.Services() {
		host := s.Name
		if s.NetNSOf != "" {
			host = s.NetNSOf
		}
		lctx, lcancel := context.WithTimeout(ctx, 30*time.Second) // depends_on: the services are started
		ip, err := lookup(lctx, host)
		lcancel()
		if err != nil {
			return r, err
		}
		ips[s.Name] = ip
	}
	a := addrs{dns: ips[role.DNS], receiver: ips[role.Receiver], sender: ips[role.Sender]}
	say("compose: dns %s, receiver %s, sender %s (identd in its network)", a.dns, a.receiver, a.sender)
	cs := map[string]*stack.Container{}
	for _, s := range topology.Services() {
		c := &stack.Container{Role: s.Name, IP: ips[s.Name], Control: "http://" + net.JoinHostPort(ips[s.Name], s.Control)}
		cs[s.Name] = c
		if err := awaitStatus(ctx, c, 503); err != nil {
			return r, err
		}
		body, _ := json.Marshal(roleSpec(sc, s.Name, a))
		if _, err := c.Client().Post(ctx, "/spec", body); err != nil {
			return r, err
		}
		if err := awaitStatus(ctx, c, 200); err != nil {
			return r, err
		}
	}
	r = running{dns: cs[role.DNS], receiver: cs[role.Receiver], sender: cs[role.Sender], identd: cs[role.Identd]}
	zone, _ := json.Marshal(zoneFor(sc, a))
	if _, err := r.dns.Client().Post(ctx, "/zone", zone); err != nil {
		return r, fmt.Errorf("give dns the topology: %w", err)
	}
	return r, nil
}

// lookup resolves a compose service's name (Docker's DNS), waiting while
// compose is still creating it.
func lookup(ctx context.Context, host string) (string, error) {
	for {
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", host)
		if err == nil && len(ips) > 0 {
			return ips[0].String(), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("compose service %s: no address (%v); is it defined and up?", host, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// awaitStatus waits until c's GET /status answers code. A role that
// answers 200 while it should await its spec (503) was configured by an
// earlier run: that is an error at once.
func awaitStatus(ctx context.Context, c *stack.Container, code int) error {
	last := 0
	for {
		got, err := c.Client().Status(ctx, "/status")
		if err == nil && got == code {
			return nil
		}
		if err == nil && code == 503 && got == 200 {
			return fmt.Errorf("compose service %s is already configured by an earlier run: docker-compose down -v, then up", c.Role)
		}
		if err == nil {
			last = got
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("compose service %s: GET /status answered %d, want %d", c.Role, last, code)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
