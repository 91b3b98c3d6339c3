package dnsstub

// A query's way through the server: numbered and sized on arrival, hit by
// the faults (lab/fault), carried over the simulated line (lab/line) or
// held for the fixed delay, answered (answer.go), logged and written.

import (
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/fault"
	"github.com/smtplab/smtplab/lab/line"
)

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
	eff := s.faults.Decide(fault.Query{Seq: x.ev.Seq, Name: x.ev.Name, QType: x.ev.QType, Key: x.ev.Via[0], At: x.start})
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
	if len(eff.Applied) > 0 {
		s.pend(x.ev) // with the fault that holds it
	}
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
	s.pend(x.ev)
	return x
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
	s.unpend(x.ev.Seq)
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
