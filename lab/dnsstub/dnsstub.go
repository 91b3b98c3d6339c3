// Package dnsstub is the lab's stub DNS and DNSBL server. In the lab it is
// the whole internet's DNS: it answers authoritatively for the hosts of the
// topology (A, AAAA, PTR, MX and any extra records the scenario lists) and
// for the configured blacklist zones, and NXDOMAIN for every name that does
// not exist, so the receiver's pre-greeting checks (PTR of the client, A of
// that name, DNSBL lookups) cost exactly what the lab says they cost:
// QueryDelay per query, held concurrently for every query.
//
// Negative answers (NXDOMAIN, and NOERROR without data for names that exist
// with other types or as empty non-terminals) carry the SOA of the closest
// enclosing origin or blacklist zone, else the root's. Every TTL, and the
// SOA minimum, is 0.
//
// UDP answers are limited to 512 bytes, or with EDNS0 to the client's
// payload size up to 1232, and truncated (TC) beyond that, so large answers
// make the client retry over TCP.
//
// This file holds the Server, its listeners and its HTTP handler; serve.go
// a query's way through it, answer.go the answer, zone.go the zone and its
// lookups, metrics.go the metrics.
package dnsstub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/fault"
	"github.com/smtplab/smtplab/lab/line"
	"github.com/smtplab/smtplab/lab/topology"
)

// Server answers DNS queries over UDP and TCP from its Config.
type Server struct {
	delay   time.Duration
	bls     []blacklist           // fixed after New; longest zone first
	apexes  []apex                // fixed after New; longest first, the root last
	fixed   map[string]bool       // names that exist whatever the zone: apexes, listed DNSBL names, their ancestors
	table   atomic.Pointer[table] // swapped whole by SetZone, so queries never see half a zone
	log     *events.Log
	metrics *Metrics
	seq     atomic.Int64  // queries (and unparseable packets) so far
	done    chan struct{} // closed by Close; aborts the delays

	// The dial-up line and the faults; nil when the scenario has none.
	line   *line.Line
	clock  line.Clock
	faults *fault.Set
	ctx    context.Context // ends on Close: aborts holds and trips on the line
	cancel context.CancelFunc

	closeOnce sync.Once
	mu        sync.Mutex
	servers   []*dns.Server
	waiting   atomic.Int64 // queries sleeping in the delay now; lets tests see concurrency without clocks

	pmu     sync.Mutex
	pending map[int]events.Event // queries not yet answered nor dropped, by Seq
}

// New returns a server for cfg that adds a Query event to log for every
// query (a nil log gets a fresh one for role "dns", so Handler always works).
func New(cfg Config, log *events.Log) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = events.NewLog("dns")
	}
	bls, _ := newBlacklists(cfg.Blacklists)
	apexes, _ := newApexes(cfg.Origins, bls)
	t, err := newTable(cfg.Zone)
	if err != nil {
		return nil, err
	}
	s := &Server{delay: cfg.QueryDelay, bls: bls, apexes: apexes, fixed: map[string]bool{},
		log: log, metrics: newMetrics(), done: make(chan struct{})}
	mark := func(n string) { s.fixed[n] = true }
	for _, ap := range apexes {
		ancestors(ap.name, mark)
	}
	for _, bl := range bls {
		for a := range bl.listed {
			rev, _ := dns.ReverseAddr(a)
			ancestors(normName(rev[:len(rev)-len("in-addr.arpa.")]+bl.zone), mark)
		}
	}
	s.table.Store(t)
	if cfg.Line != nil {
		if s.line, err = line.New(*cfg.Line); err != nil {
			return nil, fmt.Errorf("dnsstub: %w", err)
		}
		s.clock = line.RealClock{}
		s.metrics.watchLine(s.line, s.now)
	}
	if s.faults, err = fault.New(cfg.Faults, cfg.Seed); err != nil {
		return nil, fmt.Errorf("dnsstub: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Metrics returns the server's metrics, for the line and fault code to add to.
func (s *Server) Metrics() *Metrics { return s.metrics }

// SetZone validates z and replaces the host zone; queries already past
// their delay answer from the old zone, later ones from z.
func (s *Server) SetZone(z Zone) error {
	t, err := newTable(z)
	if err != nil {
		return err
	}
	s.table.Store(t)
	return nil
}

// accept lets every request through to ServeDNS (the default rejects some
// before the handler sees them, and those would go unlogged); only replies
// are ignored, since answering them could start a loop.
func accept(dh dns.Header) dns.MsgAcceptAction {
	if dh.Bits&(1<<15) != 0 { // QR
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// invalid logs and counts a packet that did not parse; miekg/dns answers
// FORMERR when it got as far as the header, and drops it otherwise. It
// does not tell us who sent it.
func (s *Server) invalid(m []byte, err error) {
	res := "FORMERR"
	if len(m) < 12 {
		res = "DROPPED"
	}
	s.log.Add(events.Event{Kind: events.Query, Result: res, Error: err.Error(),
		Seq: int(s.seq.Add(1)), SizeIn: len(m)})
	s.metrics.malformed.Inc()
	s.metrics.query(nil, res)
}

// Listen starts serving UDP and TCP on the same port. With port 0 the
// kernel picks the UDP port and TCP takes the same one, retrying up to 100
// times: on a busy host (thousands of sockets in TIME-WAIT) the port the
// kernel picked for UDP is often refused for TCP.
func (s *Server) Listen(addr string) (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return nil, errors.New("dnsstub: server closed")
	default:
	}
	if s.servers != nil {
		return nil, errors.New("dnsstub: already listening")
	}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for try := 0; try < 100; try++ {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	for _, srv := range []*dns.Server{{PacketConn: pc}, {Listener: ln}} {
		srv.Handler, srv.MsgAcceptFunc, srv.MsgInvalidFunc = s, accept, s.invalid
		if err := start(srv); err != nil {
			pc.Close()
			ln.Close()
			s.shutdown()
			return nil, err
		}
		s.servers = append(s.servers, srv)
	}
	return pc.LocalAddr(), nil
}

// start runs srv and returns once it serves, so a Close right after Listen
// finds it started. miekg/dns runs each UDP packet and each TCP connection
// in a goroutine of its own, so delays overlap; queries pipelined on one TCP
// connection are answered in turn (clients like Courier's open one
// connection per query).
func start(srv *dns.Server) error {
	started := make(chan struct{})
	errc := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return nil
	case err := <-errc:
		return err
	}
}

func (s *Server) shutdown() error {
	var errs []error
	for _, srv := range s.servers {
		errs = append(errs, srv.Shutdown())
	}
	s.servers = nil
	return errors.Join(errs...)
}

// Close stops serving and aborts the queries still in their delay (they are
// logged as DROPPED). It waits for the handlers to return.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.cancel()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown()
}

// Handler serves POST /zone (a JSON Zone, replacing the host zone: 204, or
// 400 with the reason), GET /metrics (Prometheus, the server's own
// registry) and the event log's GET /events and GET /status.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /zone", func(w http.ResponseWriter, r *http.Request) {
		z, err := decodeZone(http.MaxBytesReader(w, r.Body, 16<<20))
		if err == nil {
			err = s.SetZone(z)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		// The log, then the queries still held (a stalled one the run
		// ended on), so that no query is missing from the evidence.
		w.Header().Set("Content-Type", "application/x-ndjson")
		if err := s.log.Stream(w); err == nil {
			_ = events.WriteJSONL(w, s.Pending())
		}
	})
	mux.Handle("/", s.log.Handler())
	return mux
}

// decodeZone reads one JSON Zone. Unknown fields and trailing data are
// errors: a misspelt key would otherwise silently empty the zone.
func decodeZone(r io.Reader) (Zone, error) {
	var z Zone
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&z); err != nil {
		return Zone{}, fmt.Errorf("dnsstub: zone JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Zone{}, errors.New("dnsstub: zone JSON: data after the zone")
	}
	return z, nil
}

// now is the time on the line's clock (the wall clock but in tests).
func (s *Server) now() time.Time {
	if s.clock != nil {
		return s.clock.Now()
	}
	return time.Now()
}

// Pending are the queries not answered (nor dropped) yet, as Query events
// with Result "PENDING" and Duration how long they have waited so far, in
// arrival order.
func (s *Server) Pending() []events.Event {
	now := s.now()
	s.pmu.Lock()
	out := make([]events.Event, 0, len(s.pending))
	for _, e := range s.pending {
		// Stamped as the log stamps the events it holds: the report
		// counts a role's queries by it.
		e.Role = topology.DNS
		e.Result, e.Duration = "PENDING", now.Sub(e.Time)
		out = append(out, e)
	}
	s.pmu.Unlock()
	slices.SortFunc(out, func(a, b events.Event) int { return a.Seq - b.Seq })
	return out
}

// pend notes a query as held until unpend.
func (s *Server) pend(e events.Event) {
	s.pmu.Lock()
	if s.pending == nil {
		s.pending = map[int]events.Event{}
	}
	s.pending[e.Seq] = e
	s.pmu.Unlock()
}

func (s *Server) unpend(seq int) {
	s.pmu.Lock()
	delete(s.pending, seq)
	s.pmu.Unlock()
}
