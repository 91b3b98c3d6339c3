package role

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/maildir"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// Handle drives one running Go role over its control port (the contract
// in role.go's package comment): what a run asks of every role, answered
// over HTTP. The lab's run and its compose runner both hold one per Go
// role; they differ only in how they learned the control port's address.
type Handle struct {
	client *Client
	// injected is how many messages the sender's injection reported, once
	// Inject has returned.
	injected int
}

// NewHandle is the handle of the Go role called name whose control port
// answers at base ("http://host:port"). locate, when set, finds the port
// again after a restart or reconnection gave it a new address (Client).
func NewHandle(name topology.Role, base string, locate func(context.Context) (string, error)) *Handle {
	c := NewClient(string(name), base)
	c.Locate = locate
	return &Handle{client: c}
}

// Role is the role's name.
func (h *Handle) Role() topology.Role { return topology.Role(h.client.Role) }

// Events is the role's event log so far (GET /events).
func (h *Handle) Events(ctx context.Context) ([]events.Event, error) {
	b, err := h.client.Get(ctx, "/events")
	if err != nil {
		return nil, err
	}
	evs, err := events.ReadJSONL(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", h.client.Role, err)
	}
	return evs, nil
}

// EachEvent calls each with every event of the role's log so far, in
// the log's order, streamed from GET /events: the log is never held
// whole, whatever its size.
func (h *Handle) EachEvent(ctx context.Context, each func(events.Event) error) error {
	return h.client.Stream(ctx, "/events", func(r io.Reader) error { return events.EachJSONL(r, each) })
}

// Counts are the role's events so far by kind (GET /status).
func (h *Handle) Counts(ctx context.Context) (map[events.Kind]int, error) {
	b, err := h.client.Get(ctx, "/status")
	if err != nil {
		return nil, err
	}
	var m map[events.Kind]int
	return m, json.Unmarshal(b, &m)
}

// FullLog is true: a Go role logs every kind of event the report counts.
func (h *Handle) FullLog() bool { return true }

// Settle is 1: a Go role's state is final as soon as it reads idle (the
// receiver delivers before it answers 250; the sender's queue is its disk).
func (h *Handle) Settle() int { return 1 }

// Idle says whether the role holds no message in transit. The sender is
// idle once every injected message was queued and its queue is empty
// (each left delivered or failed for good; one waiting for a retry is
// still in it); every other Go role always is.
func (h *Handle) Idle(ctx context.Context) (bool, error) {
	if h.Role() != topology.Sender {
		return true, nil
	}
	counts, err := h.Counts(ctx)
	if err != nil || counts[events.Queued] < h.injected {
		return false, err
	}
	n, err := h.QueueSize(ctx)
	return err == nil && n == 0, err
}

// QueueSize is how many messages the sender's queue holds now (GET
// /queue/size).
func (h *Handle) QueueSize(ctx context.Context) (int, error) {
	b, err := h.client.Get(ctx, "/queue/size")
	if err != nil {
		return 0, err
	}
	var size struct {
		Queued int `json:"queued"`
	}
	err = json.Unmarshal(b, &size)
	return size.Queued, err
}

// Queue is every message still in the sender's queue, oldest first (GET
// /queue).
func (h *Handle) Queue(ctx context.Context) ([]sender.Envelope, error) {
	b, err := h.client.Get(ctx, "/queue")
	if err != nil {
		return nil, err
	}
	var envs []sender.Envelope
	if err := json.Unmarshal(b, &envs); err != nil {
		return nil, fmt.Errorf("sender control port: %w", err)
	}
	return envs, nil
}

// State is the receiver's progress: messages delivered, sessions open.
func (h *Handle) State(ctx context.Context) (delivered, open int, err error) {
	counts, err := h.Counts(ctx)
	if err != nil {
		return 0, 0, err
	}
	return counts[events.Delivered], max(counts[events.ConnOpen]-counts[events.ConnClose], 0), nil
}

// LineDepth is the DNS line's queue now, both directions (the dns role's
// GET /metrics, smtplab_dns_line_queue_depth); false without a line.
func (h *Handle) LineDepth(ctx context.Context) (int, bool) {
	b, err := h.client.Get(ctx, "/metrics")
	if err != nil {
		return 0, false
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return 0, false
	}
	f, ok := fams["smtplab_dns_line_queue_depth"]
	if !ok {
		return 0, false
	}
	n := 0.0
	for _, m := range f.GetMetric() {
		n += m.GetGauge().GetValue()
	}
	return int(n), true
}

// SetZone gives the dns role the live topology's records (POST /zone).
func (h *Handle) SetZone(ctx context.Context, z dnsstub.Zone) error {
	body, err := json.Marshal(z)
	if err != nil {
		return err
	}
	if _, err := h.client.Post(ctx, "/zone", body); err != nil {
		return fmt.Errorf("give dns the topology: %w", err)
	}
	return nil
}

// Inject runs the workload's injection loop in the sender's container
// (POST /inject) and returns what it did; ending ctx ends the loop.
func (h *Handle) Inject(ctx context.Context, inj sender.Injection) sender.InjectResult {
	var res sender.InjectResult
	body, err := json.Marshal(inj)
	if err == nil {
		var b []byte
		if b, err = h.client.Post(ctx, "/inject", body); err == nil {
			err = json.Unmarshal(b, &res)
		}
	}
	if err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("injection loop failed: %v", err))
	}
	h.injected = res.Injected
	return res
}

// StopInjection has nothing to do: the loop ends with Inject's context.
func (h *Handle) StopInjection(context.Context) error { return nil }

// Injected is empty: every Queued event of a Go sender is in its own log.
func (h *Handle) Injected(context.Context) ([]events.Event, error) { return nil, nil }

// Keep copies the role's evidence into the run's folder dir: the
// receiver's Maildir (GET /maildir) into dir/maildir. The other roles'
// evidence is their events.
func (h *Handle) Keep(ctx context.Context, dir string) error {
	if h.Role() != topology.Receiver && h.Role() != topology.Final {
		return nil
	}
	tarball, err := h.client.Get(ctx, "/maildir")
	if err != nil {
		return err
	}
	return maildir.Extract(bytes.NewReader(tarball), filepath.Join(dir, "maildir"))
}

// Configure gives a role started with --await its spec (POST /spec) and
// waits until it runs: GET /status answers 503 while a role awaits its
// spec and 200 once it runs. A role that answers 200 before it was given
// one was configured by an earlier run: that is an error at once.
func (h *Handle) Configure(ctx context.Context, spec Spec) error {
	if err := h.awaitStatus(ctx, 503); err != nil {
		return err
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if _, err := h.client.Post(ctx, "/spec", body); err != nil {
		return err
	}
	return h.awaitStatus(ctx, 200)
}

func (h *Handle) awaitStatus(ctx context.Context, code int) error {
	last := 0
	for {
		got, err := h.client.Status(ctx, "/status")
		if err == nil && got == code {
			return nil
		}
		if err == nil && code == 503 && got == 200 {
			return fmt.Errorf("%s is already configured by an earlier run: docker-compose down -v, then up", h.client.Role)
		}
		if err == nil {
			last = got
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: GET /status answered %d, want %d", h.client.Role, last, code)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
