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
package dnsstub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/smtplab/smtplab/lab/fault"
	"github.com/smtplab/smtplab/lab/line"

	"github.com/smtplab/smtplab/lab/events"
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

// EDNS0 limits.
const (
	maxUDPSize  = 1232 // the largest UDP answer, as DNS flag day 2020 advises
	ednsVersion = 0
)

// reply computes the answer to req, before truncation.
func (s *Server) reply(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	opt, optOK := requestOPT(req)
	switch {
	case req.Opcode != dns.OpcodeQuery:
		m.SetRcode(req, dns.RcodeNotImplemented)
	case !optOK || len(req.Question) != 1:
		m.SetRcode(req, dns.RcodeFormatError)
	case opt != nil && opt.Version() > ednsVersion:
		m.SetRcode(req, dns.RcodeBadVers)
	case req.Question[0].Qclass != dns.ClassINET:
		m.SetRcode(req, dns.RcodeRefused)
	case req.Question[0].Qtype == dns.TypeAXFR || req.Question[0].Qtype == dns.TypeIXFR:
		m.SetRcode(req, dns.RcodeNotImplemented)
	default:
		m.SetReply(req)
		q := req.Question[0]
		name := normName(q.Name)
		if !s.lookup(m, name, q.Name, q.Qtype) {
			m.Rcode = dns.RcodeNameError
		}
		m.Authoritative = true
		// Negative (NXDOMAIN, or no data at the name or at the end of its
		// CNAME chain): the SOA of the zone the last name is in.
		last, negative := name, len(m.Answer) == 0
		if n := len(m.Answer); n > 0 && q.Qtype != dns.TypeCNAME && q.Qtype != dns.TypeANY {
			if c, ok := m.Answer[n-1].(*dns.CNAME); ok {
				last, negative = normName(c.Target), true
			}
		}
		if negative {
			m.Ns = append(m.Ns, dns.Copy(s.soaFor(last)))
		}
	}
	if opt != nil && optOK {
		m.SetEdns0(udpSize(opt), opt.Do())
	}
	return m
}

// requestOPT returns the query's OPT record; ok is false when the query has
// more than one, or one outside the additional section (RFC 6891: FORMERR).
func requestOPT(req *dns.Msg) (opt *dns.OPT, ok bool) {
	for _, sec := range [][]dns.RR{req.Answer, req.Ns} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				return nil, false
			}
		}
	}
	for _, rr := range req.Extra {
		if o, is := rr.(*dns.OPT); is {
			if opt != nil {
				return nil, false
			}
			opt = o
		}
	}
	return opt, true
}

// udpSize is the payload size the answer advertises and the UDP answer is
// limited to: the client's, at least 512 (RFC 6891 6.2.5) and at most 1232.
func udpSize(opt *dns.OPT) uint16 {
	return min(max(opt.UDPSize(), dns.MinMsgSize), maxUDPSize)
}

// exchange is one query's way through ServeDNS.
type exchange struct {
	req   *dns.Msg
	tcp   bool
	start time.Time
	// ev is the query's event: ServeDNS fills Time, Host, Name, QType, Seq
	// and SizeIn on arrival and Result, SizeOut and Duration at the end; the
	// fields in between (QueueWait, OnLine, Upstream, FaultName) are for the
	// line and fault code.
	ev   events.Event
	resp *dns.Msg // the answer, once built
	wire []byte   // the packed answer; nil when the query is dropped
}

// ServeDNS answers one query after the configured delay, in three steps:
// arrived (the query is numbered and sized), answer (the reply is built and
// packed, so its size is known) and finish (the event is logged and the
// answer written, or the query dropped). The event is logged before the
// answer is written, so whoever has the answer finds the query in the log;
// a failed write (the client went away) is not logged.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	_, tcp := w.LocalAddr().(*net.TCPAddr)
	x := s.arrived(r, w.RemoteAddr(), tcp)
	eff := s.faults.Decide(fault.Query{Seq: x.ev.Seq, Name: x.ev.Name, QType: x.ev.QType})
	s.logFaults(x, eff)
	switch {
	case eff.Drop: // lost on the way: it took the uplink, then vanished
		s.sendUp(x)
	case eff.Forever: // held at the far side until the server stops
		s.sendUp(x)
		<-s.ctx.Done()
	default:
		s.carry(x, s.delay+eff.Hold+eff.Upstream, eff.Rcode)
	}
	s.finish(w, x)
}

// carry takes a query to the far side and its answer back: over the line
// when there is one (queued, clocked out, delayed), else after hold alone.
// hold is what the far side adds (the fixed delay, stalls, a slow
// upstream); rcode, when not 0, replaces the answer's. A server that closes
// meanwhile leaves x unanswered.
func (s *Server) carry(x *exchange, hold time.Duration, rcode int) {
	build := func() int {
		s.answer(x)
		if rcode != 0 && x.resp != nil {
			s.replaceRcode(x, rcode)
		}
		return len(x.wire)
	}
	if s.line == nil {
		if s.sleep(hold) {
			build()
		}
		return
	}
	trip, err := s.line.Carry(s.ctx, s.clock, x.start, x.ev.Name, x.ev.SizeIn, hold, build)
	x.ev.QueueWait, x.ev.OnLine, x.ev.Upstream = trip.Wait(), trip.OnLine(), trip.Upstream
	s.metrics.AddLineBytes(line.Up, trip.Up.Bytes)
	s.metrics.AddLineBytes(line.Down, trip.Down.Bytes)
	if err != nil {
		x.resp, x.wire = nil, nil
	}
}

// sendUp puts a query that will get no answer on the uplink all the same:
// it took its place in the queue and its bytes on the line.
func (s *Server) sendUp(x *exchange) {
	if s.line == nil {
		return
	}
	tr := s.line.Send(line.Up, x.start, x.ev.SizeIn)
	x.ev.QueueWait, x.ev.OnLine = tr.Wait, tr.OnLine
	s.metrics.AddLineBytes(line.Up, tr.Bytes)
}

// replaceRcode turns x's answer into an empty one with rcode (a fault).
func (s *Server) replaceRcode(x *exchange, rcode int) {
	m := new(dns.Msg).SetRcode(x.req, rcode)
	if wire, err := m.Pack(); err == nil {
		x.resp, x.wire = m, wire
	}
}

// logFaults records every fault that hit x, as an event of its own and on
// the query's event.
func (s *Server) logFaults(x *exchange, eff fault.Effect) {
	for _, name := range eff.Applied {
		s.metrics.AddFault(name)
		s.log.Add(events.Event{Kind: events.Fault, Time: x.start, Seq: x.ev.Seq, Name: x.ev.Name, QType: x.ev.QType,
			FaultName: name, Reason: name, Duration: eff.Hold, Host: x.ev.Host, Via: x.ev.Via})
	}
	x.ev.FaultName = strings.Join(eff.Applied, ",")
}

// arrived is where a query enters: it gets its sequence number and its
// size on the wire. The size is the query repacked, which is its size
// unless the client compressed names miekg/dns would not (a query has one
// name; only odd queries with more records can differ).
func (s *Server) arrived(r *dns.Msg, remote net.Addr, tcp bool) *exchange {
	x := &exchange{req: r, tcp: tcp, start: s.now()}
	x.ev = events.Event{Kind: events.Query, Time: x.start, Host: remote.String(),
		Seq: int(s.seq.Add(1)), Result: "DROPPED", Via: []string{events.QueryKey(remote.String(), r.Id)}}
	if len(r.Question) > 0 {
		x.ev.Name = normName(r.Question[0].Name)
		x.ev.QType = dns.Type(r.Question[0].Qtype).String()
	}
	r.Compress = true
	x.ev.SizeIn = r.Len()
	return x
}

// answer builds the answer and packs it, truncated to what the transport
// carries; x.wire is what will be written and len(x.wire) its size.
func (s *Server) answer(x *exchange) {
	m := s.reply(x.req)
	limit := dns.MaxMsgSize
	if !x.tcp {
		limit = dns.MinMsgSize
		if opt, ok := requestOPT(x.req); ok && opt != nil {
			limit = int(udpSize(opt))
		}
	}
	m.Truncate(limit)
	m.Compress = true
	wire, err := m.Pack()
	if err != nil { // cannot happen for what reply builds; FuzzServe looks for it
		m = new(dns.Msg).SetRcode(x.req, dns.RcodeServerFailure)
		m.Question = nil // the question itself may be what does not pack
		if wire, err = m.Pack(); err != nil {
			return
		}
	}
	x.resp, x.wire = m, wire
}

// finish is where a query leaves, answered (x.wire set) or dropped: its
// event is logged and counted, then the answer written to w (nil writes
// nothing: FuzzServe).
func (s *Server) finish(w dns.ResponseWriter, x *exchange) {
	if x.resp != nil {
		x.ev.Result = rcodeName(x.resp.Rcode)
		x.ev.SizeOut = len(x.wire)
		if x.resp.Rcode == dns.RcodeFormatError {
			s.metrics.malformed.Inc()
		}
	}
	x.ev.Duration = s.now().Sub(x.start)
	s.log.Add(x.ev)
	s.metrics.query(x.req, x.ev.Result)
	if x.wire != nil {
		s.metrics.answer.Observe(x.ev.Duration.Seconds())
		if w != nil {
			_, _ = w.Write(x.wire)
		}
	}
}

// sleep holds a query for d; false when the server closed meanwhile.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
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
