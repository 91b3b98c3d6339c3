// Package dnsstub is the lab's stub DNS and DNSBL server. In the lab it is
// the whole internet's DNS: it answers authoritatively for the hosts of the
// topology (A and PTR) and for the configured blacklist zones, and NXDOMAIN
// for everything else, so the receiver's pre-greeting checks (PTR of the
// client, A of that name, DNSBL lookups) cost exactly what the lab says they
// cost: QueryDelay per query, held concurrently for every query.
//
// There is no EDNS: like the DNS of 1999 every UDP answer is limited to 512
// bytes and truncated (TC) beyond that, so large answers make the client
// retry over TCP as Courier's resolver did.
package dnsstub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
)

// Blacklist is one DNSBL zone and the IPv4 addresses listed in it.
type Blacklist struct {
	Zone   string   `json:"zone"`   // e.g. "bl1.example.net"
	Listed []string `json:"listed"` // IPv4 addresses listed in it
	Code   string   `json:"code"`   // A answer for listed addresses, default "127.0.0.2"
	Reason string   `json:"reason"` // TXT answer for listed addresses, default "listed in <zone>"
}

// Zone is the host part of the lab's DNS.
type Zone struct {
	A   map[string][]string `json:"a"`   // host name (any case, with or without trailing dot) -> IPv4 addresses
	PTR map[string]string   `json:"ptr"` // IPv4 address -> host name
}

// Config is the whole configuration of a Server.
type Config struct {
	QueryDelay time.Duration `json:"query_delay_ns"` // fixed delay before every answer (a placeholder for the dial-up line model)
	Blacklists []Blacklist   `json:"blacklists"`
	Zone       Zone          `json:"zone"`
}

// Validate reports the first bad value of c: a negative delay, a bad zone or
// host name, an address that is not IPv4, a TXT reason too long for one
// string, or two host names that are the same once case and the trailing
// dot are ignored.
func (c Config) Validate() error {
	if c.QueryDelay < 0 {
		return fmt.Errorf("dnsstub: negative query delay %v", c.QueryDelay)
	}
	if _, err := newBlacklists(c.Blacklists); err != nil {
		return err
	}
	_, err := newTable(c.Zone)
	return err
}

// Server answers DNS queries over UDP and TCP from its Config.
type Server struct {
	delay time.Duration
	bls   []blacklist           // fixed after New; longest zone first
	table atomic.Pointer[table] // swapped whole by SetZone, so queries never see half a zone
	log   *events.Log
	done  chan struct{} // closed by Close; aborts the delays

	closeOnce sync.Once
	mu        sync.Mutex
	servers   []*dns.Server
	waiting   atomic.Int64 // queries sleeping in the delay now; lets tests see concurrency without clocks
}

// table is a validated Zone with names lower-cased and without trailing dot.
type table struct {
	a   map[string][]net.IP
	ptr map[string]string // "4.3.2.1.in-addr.arpa" -> fully qualified target
}

type blacklist struct {
	zone   string
	listed map[string]bool // by net.IP.String()
	code   net.IP
	reason string
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
	t, _ := newTable(cfg.Zone)
	s := &Server{delay: cfg.QueryDelay, bls: bls, log: log, done: make(chan struct{})}
	s.table.Store(t)
	return s, nil
}

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

// normName is the form names are compared in: lower case, no trailing dot.
// dns.CanonicalName first, so an escaped final dot ("a\\.") stays a label.
func normName(name string) string {
	return strings.TrimSuffix(dns.CanonicalName(name), ".")
}

func checkName(what, name string) error {
	if _, ok := dns.IsDomainName(name); !ok || normName(name) == "" {
		return fmt.Errorf("dnsstub: bad %s %q", what, name)
	}
	return nil
}

// parseIPv4 takes dotted quads only, so each address has one spelling and
// two PTR keys cannot name the same address.
func parseIPv4(what, s string) (net.IP, error) {
	ip := net.ParseIP(s).To4()
	if ip == nil || ip.String() != s {
		return nil, fmt.Errorf("dnsstub: bad IPv4 address %q (%s)", s, what)
	}
	return ip, nil
}

func newTable(z Zone) (*table, error) {
	t := &table{a: map[string][]net.IP{}, ptr: map[string]string{}}
	for name, addrs := range z.A {
		if err := checkName("host name", name); err != nil {
			return nil, err
		}
		n := normName(name)
		if _, dup := t.a[n]; dup {
			return nil, fmt.Errorf("dnsstub: host name %q given twice", name)
		}
		ips := make([]net.IP, 0, len(addrs))
		for _, a := range addrs {
			ip, err := parseIPv4("A of "+name, a)
			if err != nil {
				return nil, err
			}
			ips = append(ips, ip)
		}
		t.a[n] = ips
	}
	for addr, name := range z.PTR {
		ip, err := parseIPv4("PTR key", addr)
		if err != nil {
			return nil, err
		}
		if err := checkName("PTR target", name); err != nil {
			return nil, err
		}
		rev, _ := dns.ReverseAddr(ip.String())
		t.ptr[normName(rev)] = dns.Fqdn(name)
	}
	return t, nil
}

func newBlacklists(in []Blacklist) ([]blacklist, error) {
	var out []blacklist
	for _, b := range in {
		if err := checkName("blacklist zone", b.Zone); err != nil {
			return nil, err
		}
		bl := blacklist{zone: normName(b.Zone), listed: map[string]bool{}, reason: b.Reason}
		code := b.Code
		if code == "" {
			code = "127.0.0.2"
		}
		var err error
		if bl.code, err = parseIPv4("code of "+b.Zone, code); err != nil {
			return nil, err
		}
		if bl.reason == "" {
			bl.reason = "listed in " + bl.zone
		}
		if len(bl.reason) > 255 { // one TXT string; longer would need splitting
			return nil, fmt.Errorf("dnsstub: reason of %q longer than 255 bytes", b.Zone)
		}
		for _, a := range b.Listed {
			ip, err := parseIPv4("listed in "+b.Zone, a)
			if err != nil {
				return nil, err
			}
			bl.listed[ip.String()] = true
		}
		out = append(out, bl)
	}
	// Longest zone first, so a zone nested in another answers for its names.
	sort.Slice(out, func(i, j int) bool { return len(out[i].zone) > len(out[j].zone) })
	return out, nil
}

// reversedIPv4 turns "d.c.b.a" into a.b.c.d; anything else is not an address.
func reversedIPv4(labels string) (net.IP, bool) {
	l := strings.Split(labels, ".")
	if len(l) != 4 {
		return nil, false
	}
	ip := net.ParseIP(l[3] + "." + l[2] + "." + l[1] + "." + l[0]).To4()
	return ip, ip != nil
}

// lookup returns the records of type qtype at name (normalized) and whether
// the name exists at all; owner is the question's spelling of the name.
func (s *Server) lookup(name, owner string, qtype uint16) ([]dns.RR, bool) {
	hdr := func(t uint16) dns.RR_Header {
		// TTL 0: every connection in the benchmark must cost its lookups.
		return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET}
	}
	for _, bl := range s.bls {
		if name != bl.zone && !strings.HasSuffix(name, "."+bl.zone) {
			continue
		}
		ip, ok := reversedIPv4(strings.TrimSuffix(name, "."+bl.zone))
		if !ok || !bl.listed[ip.String()] {
			return nil, false
		}
		switch qtype {
		case dns.TypeA:
			return []dns.RR{&dns.A{Hdr: hdr(dns.TypeA), A: bl.code}}, true
		case dns.TypeTXT:
			return []dns.RR{&dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{bl.reason}}}, true
		}
		return nil, true
	}
	t := s.table.Load()
	var rrs []dns.RR
	ips, isHost := t.a[name]
	if isHost && qtype == dns.TypeA {
		for _, ip := range ips {
			rrs = append(rrs, &dns.A{Hdr: hdr(dns.TypeA), A: ip})
		}
	}
	target, isPTR := t.ptr[name]
	if isPTR && qtype == dns.TypePTR {
		rrs = append(rrs, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: target})
	}
	return rrs, isHost || isPTR
}

// reply computes the answer to req, before truncation.
func (s *Server) reply(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	switch {
	case req.Opcode != dns.OpcodeQuery:
		return m.SetRcode(req, dns.RcodeNotImplemented)
	case len(req.Question) != 1:
		return m.SetRcode(req, dns.RcodeFormatError)
	case req.Question[0].Qclass != dns.ClassINET:
		return m.SetRcode(req, dns.RcodeRefused)
	}
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	rrs, exists := s.lookup(normName(q.Name), q.Name, q.Qtype)
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	m.Answer = rrs
	return m
}

// ServeDNS answers one query after the configured delay. The event is
// logged before the answer is written, so whoever has the answer finds the
// query in the log; a failed write (the client went away) is not logged.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	ev := events.Event{Kind: events.Query, Host: w.RemoteAddr().String(), Result: "DROPPED"}
	if len(r.Question) > 0 {
		ev.Name = normName(r.Question[0].Name)
		ev.QType = dns.Type(r.Question[0].Qtype).String()
	}
	var m *dns.Msg
	if s.wait() {
		m = s.reply(r)
		if _, tcp := w.LocalAddr().(*net.TCPAddr); !tcp {
			m.Truncate(dns.MinMsgSize)
		}
		ev.Result = dns.RcodeToString[m.Rcode]
	}
	ev.Duration = time.Since(start)
	s.log.Add(ev)
	if m != nil {
		_ = w.WriteMsg(m)
	}
}

// wait holds a query for the delay; false when the server closed meanwhile.
func (s *Server) wait() bool {
	if s.delay <= 0 {
		return true
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	t := time.NewTimer(s.delay)
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

// invalid logs a packet that did not parse; miekg/dns answers FORMERR when
// it got as far as the header, and drops it otherwise.
func (s *Server) invalid(m []byte, err error) {
	res := "FORMERR"
	if len(m) < 12 {
		res = "DROPPED"
	}
	s.log.Add(events.Event{Kind: events.Query, Result: res, Error: err.Error()})
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
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown()
}

// Handler serves POST /zone (a JSON Zone, replacing the host zone: 204, or
// 400 with the reason) and the event log's GET /events and GET /status.
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
