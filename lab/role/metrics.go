package role

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/topology"
)

// eventMetrics serves a role's live Prometheus metrics, built from its
// event log as events are added: every role's events by kind, the time
// each receiver check took, and each SMTP command's reply time. (The dns
// role has metrics of its own, from lab/dnsstub.)
func eventMetrics(role topology.Role, log *events.Log) http.Handler {
	reg := prometheus.NewRegistry()
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
	log.Observe(func(e events.Event) {
		byKind.WithLabelValues(string(e.Kind)).Inc()
		switch e.Kind {
		case events.Check:
			result := "ok"
			if e.Error != "" {
				result = "error"
			}
			checks.WithLabelValues(e.Check, result).Observe(e.Duration.Seconds())
		case events.Command:
			commands.WithLabelValues(e.Name, codeLabel(e.Code)).Observe(e.Duration.Seconds())
		}
	})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "none"
	}
	return string(rune('0'+code/100)) + "xx"
}
