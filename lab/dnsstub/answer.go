package dnsstub

// The answer to one query: the checks on the query's form (RFC 1035, and
// RFC 6891 for EDNS0), the lookup in the zone (zone.go), the SOA of
// negative answers (RFC 2308), and truncation to what the transport
// carries (RFC 1035 4.2.1, RFC 6891 6.2.5).

import "github.com/miekg/dns"

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
