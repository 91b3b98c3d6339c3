package role

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/topology"
)

// eventMetrics serves a role's live Prometheus metrics, built from its
// event log as events are added: every role's events by kind (the
// identd's queries among them), the time each receiver check took, each
// SMTP command's reply time, the sender's queue (messages queued and not
// yet sent or failed) and each message's time from queued to sent, and
// the Go runtime's and the process's own figures. (The dns role has
// metrics of its own, from lab/dnsstub, with the same runtime and
// process figures.)
func eventMetrics(role topology.Role, log *events.Log) http.Handler {
	reg := prometheus.NewRegistry()
	RegisterRuntime(reg)
	byKind := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smtplab_events_total", Help: "Events the role logged, by kind.",
		ConstLabels: prometheus.Labels{"role": string(role)},
	}, []string{"kind"})
	checks := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "smtplab_check_seconds", Help: "Time each pre-greeting check took (receiver).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 18), // 1 ms to about 2 min
	}, []string{"check", "result"})
	commands := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "smtplab_command_seconds", Help: "Time from an SMTP command to its reply (receiver).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
	}, []string{"command", "code"})
	reg.MustRegister(byKind, checks, commands)
	var queue *senderQueue
	if role == topology.Sender {
		queue = newSenderQueue(reg)
	}
	// The log calls its observers one at a time (under its lock), so these
	// caches of the vectors' children need no lock of their own: a look-up
	// by label values hashes them every time, on every event.
	kindCount := map[events.Kind]prometheus.Counter{}
	type pair struct{ a, b string }
	checkTime := map[pair]prometheus.Observer{}
	commandTime := map[pair]prometheus.Observer{}
	child := func(m map[pair]prometheus.Observer, v *prometheus.HistogramVec, a, b string) prometheus.Observer {
		o, ok := m[pair{a, b}]
		if !ok {
			o = v.WithLabelValues(a, b)
			m[pair{a, b}] = o
		}
		return o
	}
	log.Observe(func(e events.Event) {
		c, ok := kindCount[e.Kind]
		if !ok {
			c = byKind.WithLabelValues(string(e.Kind))
			kindCount[e.Kind] = c
		}
		c.Inc()
		switch e.Kind {
		case events.Check:
			result := "ok"
			if e.Error != "" {
				result = "error"
			}
			child(checkTime, checks, e.Check, result).Observe(e.Duration.Seconds())
		case events.Command:
			child(commandTime, commands, e.Name, codeLabel(e.Code)).Observe(e.Duration.Seconds())
		}
		queue.observe(e)
	})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// RegisterRuntime adds the Go runtime's collector (goroutines, heap, GC)
// and the process's (CPU, resident memory, open files) to reg: what an
// operator graphs beside a role's own figures.
func RegisterRuntime(reg *prometheus.Registry) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// senderQueue follows the sender's queue in its events: a message is in
// it from queued until every recipient was sent or it failed. It holds
// only the messages in the queue, so its memory is bounded by the queue's.
type senderQueue struct {
	mu       sync.Mutex
	inQueue  map[string]queued // by queue id
	depth    prometheus.Gauge
	delivery prometheus.Histogram
}

type queued struct {
	at    time.Time
	rcpts int // recipients not yet sent
}

func newSenderQueue(reg *prometheus.Registry) *senderQueue {
	q := &senderQueue{inQueue: map[string]queued{},
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smtplab_sender_queue_messages", Help: "Messages in the sender's queue: queued, not yet sent to every recipient or failed.",
		}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "smtplab_sender_delivery_seconds", Help: "Time from a message queued to its recipients sent (the receiver's 2xx to the end of data), per send.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 20), // 1 ms to about 9 min
		}),
	}
	reg.MustRegister(q.depth, q.delivery)
	return q
}

func (q *senderQueue) observe(e events.Event) {
	if q == nil || e.QueueID == "" {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	switch e.Kind {
	case events.Queued:
		q.inQueue[e.QueueID] = queued{at: e.Time, rcpts: max(1, len(e.Rcpts))}
	case events.Sent:
		m, ok := q.inQueue[e.QueueID]
		if !ok {
			return
		}
		q.delivery.Observe(e.Time.Sub(m.at).Seconds())
		if m.rcpts -= max(1, len(e.Rcpts)); m.rcpts > 0 {
			q.inQueue[e.QueueID] = m
		} else {
			delete(q.inQueue, e.QueueID)
		}
	case events.Failed:
		delete(q.inQueue, e.QueueID)
	}
	q.depth.Set(float64(len(q.inQueue)))
}

func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "none"
	}
	return string(rune('0'+code/100)) + "xx"
}
