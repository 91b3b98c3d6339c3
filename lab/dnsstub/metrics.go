package dnsstub

import (
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/smtplab/smtplab/lab/line"
)

// Metrics are a Server's Prometheus metrics, in a registry of its own and
// served at GET /metrics by Handler:
//
//	smtplab_dns_queries_total{qtype,rcode}  every Query event (rcode "DROPPED" when unanswered;
//	                                        qtype "" without a question, "other" for unknown types)
//	smtplab_dns_malformed_total             packets that did not parse or were answered FORMERR
//	smtplab_dns_faults_total{fault}         faults applied, counted when applied (AddFault)
//	smtplab_dns_line_bytes_total{direction} bytes put on the simulated line (AddLineBytes)
//	smtplab_dns_line_queue_depth{direction} packets queued or on the line now, read from
//	                                        the line model at each scrape (only with a line)
//	smtplab_dns_answer_seconds              arrival to answer written, for answered queries
//
// Its methods are safe for concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	queries   *prometheus.CounterVec
	malformed prometheus.Counter
	faults    *prometheus.CounterVec
	lineBytes [2]prometheus.Counter
	answer    prometheus.Histogram

	byKey sync.Map // queryKey -> prometheus.Counter, skipping the label hashing per query
}

type queryKey struct {
	qtype uint16
	known bool // qtype is meaningful (there was a question)
	rcode string
}

func newMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smtplab_dns_queries_total",
			Help: "DNS queries by question type and answer rcode (DROPPED when not answered).",
		}, []string{"qtype", "rcode"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smtplab_dns_malformed_total",
			Help: "DNS packets that did not parse or were answered FORMERR.",
		}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smtplab_dns_faults_total",
			Help: "Faults applied to DNS queries, by fault name.",
		}, []string{"fault"}),
		answer: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "smtplab_dns_answer_seconds",
			Help: "Time from a query's arrival to its answer being written.",
			// 100µs (no delay) to 26s (a long queue on a 28.8k line).
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
	}
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smtplab_dns_line_bytes_total",
		Help: "Bytes carried by the simulated line, by direction.",
	}, []string{"direction"})
	for _, d := range []line.Direction{line.Up, line.Down} {
		m.lineBytes[d] = bytes.WithLabelValues(d.String())
	}
	m.reg.MustRegister(m.queries, m.malformed, m.faults, bytes, m.answer)
	// The Go runtime's and the process's own figures, as every role has
	// (lab/role RegisterRuntime).
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchLine adds the line's live queue depth, read from the model at each
// scrape (now is the line's clock).
func (m *Metrics) watchLine(l *line.Line, now func() time.Time) {
	for _, d := range []line.Direction{line.Up, line.Down} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "smtplab_dns_line_queue_depth",
			Help:        "Packets queued for or being clocked onto the simulated line, by direction.",
			ConstLabels: prometheus.Labels{"direction": d.String()},
		}, func() float64 { return float64(l.Depth(d, now())) }))
	}
}

// Registry is the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// AddLineBytes counts n bytes put on the line in direction d.
func (m *Metrics) AddLineBytes(d line.Direction, n int) {
	if d == line.Up || d == line.Down {
		m.lineBytes[d].Add(float64(n))
	}
}

// AddFault counts one application of the named fault, when it is applied
// (a query stalled for minutes is counted at once).
func (m *Metrics) AddFault(name string) {
	m.faults.WithLabelValues(name).Inc()
}

// query counts one Query event.
func (m *Metrics) query(q *dns.Msg, result string) {
	k := queryKey{rcode: result}
	if q != nil && len(q.Question) > 0 {
		k.qtype, k.known = q.Question[0].Qtype, true
	}
	c, ok := m.byKey.Load(k)
	if !ok {
		qt := ""
		if k.known {
			qt = qtypeLabel(k.qtype)
		}
		c, _ = m.byKey.LoadOrStore(k, m.queries.WithLabelValues(qt, result))
	}
	c.(prometheus.Counter).Inc()
}

// qtypeLabel names known types and lumps the rest together, so hostile
// queries cannot make thousands of series.
func qtypeLabel(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "other"
}

// rcodeName is the rcode's mnemonic; 16 is BADVERS for us (never BADSIG:
// the stub does no TSIG).
func rcodeName(rc int) string {
	if rc == dns.RcodeBadVers {
		return "BADVERS"
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}
