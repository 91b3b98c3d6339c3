// Package resolver is the receiver's DNS client, modelled on Courier's
// rfc1035 resolver because the benchmark measures what its retry schedule
// costs: every nameserver is tried once per round, the first round waits
// FirstTimeout for each answer, each later round Multiplier times longer
// (5 s, 25 s, 125 s by default), and a truncated UDP answer is asked again
// over TCP. There is no cache: every SMTP connection pays for its lookups,
// as in the 1999 benchmark.
//
// Lookups fail with a *LookupError, which tells "does not exist" (NXDOMAIN,
// or NODATA: the name exists without records of the type) from a temporary
// failure (no server answered, SERVFAIL or another rcode), because an MTA
// rejects for the first and defers (4xx) for the second.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
)

// Resolver asks Servers with Courier's retry schedule. Zero or negative
// FirstTimeout, Multiplier and Rounds take the defaults 5s, 5 and 3
// (RFC1035_DEFAULT_INITIAL_TIMEOUT and RFC1035_DEFAULT_MAXIMUM_BACKOFF in
// courier-libs rfc1035). Courier has no separate multiplier: each round's
// timeout is the last one times the initial timeout in seconds, so 5 s
// gives x5; Multiplier keeps the two apart for what-if runs.
type Resolver struct {
	Servers      []string      // "ip:port"
	FirstTimeout time.Duration // default 5s when zero
	Multiplier   int           // default 5 when zero
	Rounds       int           // default 3 when zero

}

// LookupError is a lookup that gave no usable answer.
type LookupError struct {
	Name  string
	QType uint16
	// Rcode of the reply, or -1 when no server replied (Err says why).
	Rcode int
	// NotFound: the answer says the records do not exist (NXDOMAIN, or
	// NODATA when Rcode is NOERROR). Otherwise the failure is temporary.
	NotFound bool
	Err      error
}

func (e *LookupError) Error() string {
	s := fmt.Sprintf("lookup %s %s: %s", e.Name, dns.Type(e.QType), e.Result())
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *LookupError) Unwrap() error { return e.Err }

// Temporary reports whether asking again later may succeed.
func (e *LookupError) Temporary() bool { return !e.NotFound }

// Result names the failure for reports: an rcode name ("NXDOMAIN",
// "SERVFAIL", ...), "NODATA", "TIMEOUT" (no server answered in time),
// "CANCELED" (the context ended) or "ERROR" (another network error).
func (e *LookupError) Result() string {
	switch {
	case e.Rcode == dns.RcodeSuccess:
		return "NODATA"
	case e.Rcode >= 0:
		return dns.RcodeToString[e.Rcode]
	case errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded):
		return "CANCELED"
	}
	var ne net.Error
	if errors.As(e.Err, &ne) && ne.Timeout() {
		return "TIMEOUT"
	}
	return "ERROR"
}

// Result names any lookup's outcome for reports: "NOERROR" for a nil
// error, LookupError.Result for a DNS failure, and for other errors (an
// IDENT query's, say) "CANCELED", "TIMEOUT" or "ERROR".
func Result(err error) string {
	var le *LookupError
	var ne net.Error
	switch {
	case err == nil:
		return "NOERROR"
	case errors.As(err, &le):
		return le.Result()
	case errors.Is(err, context.Canceled):
		return "CANCELED"
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded):
		return "TIMEOUT"
	}
	return "ERROR"
}

type traceKey struct{}

// Trace collects the queries lookups sent, as events.QueryKey keys (local
// address and query id): the DNS server logs the same key for each query it
// gets, so a check and the queries it cost can be matched.
type Trace struct {
	mu   sync.Mutex
	keys []string
}

// Keys returns the keys collected so far.
func (t *Trace) Keys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.keys...)
}

// WithTrace returns a context whose lookups add their queries to t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func (r *Resolver) schedule() (first time.Duration, mult, rounds int) {
	first, mult, rounds = r.FirstTimeout, r.Multiplier, r.Rounds
	if first <= 0 {
		first = 5 * time.Second
	}
	if mult <= 0 {
		mult = 5
	}
	if rounds <= 0 {
		rounds = 3
	}
	return first, mult, rounds
}

// Exchange does one lookup with the retry schedule, as Courier's
// rfc1035_resolve_multiple does it (courier-libs rfc1035/rfc1035resolve.c
// and rfc1035udp.c, svarshavchik/courier-libs): the query is built once, so
// every try carries the same id; each server gets one UDP socket for the
// whole lookup, so an answer to an earlier try that arrives late (during a
// later round's wait) is taken, as Courier takes it; a reply from another
// address or with another id is ignored and the wait goes on; a port that
// refuses (ICMP) is waited on like a silent one, since Courier's
// unconnected socket never sees the error. Any reply is the result,
// whatever its rcode; a truncated one is asked again over TCP, with the
// round's timeout. Only timeouts and network errors move on to the next
// server or round. When every try failed, or ctx ended, the error is a
// *LookupError with Rcode -1 that wraps the last error (or ctx.Err()).
func (r *Resolver) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	q.Id = dns.Id()
	fail := func(err error) error {
		return &LookupError{Name: strings.TrimSuffix(name, "."), QType: qtype, Rcode: -1, Err: err}
	}
	if len(r.Servers) == 0 {
		return nil, fail(errors.New("no nameservers"))
	}
	wire, err := q.Pack()
	if err != nil {
		return nil, fail(err)
	}
	socks := make([]*net.UDPConn, len(r.Servers))
	defer func() {
		for _, c := range socks {
			if c != nil {
				c.Close()
			}
		}
	}()
	// A read does not watch ctx: closing the sockets ends it when ctx ends.
	var mu sync.Mutex
	closed := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		closed = true
		for _, c := range socks {
			if c != nil {
				c.Close()
			}
		}
	})
	defer stop()
	timeout, mult, rounds := r.schedule()
	var last error
	for round := 0; round < rounds; round++ {
		for i, srv := range r.Servers {
			if err := ctx.Err(); err != nil {
				return nil, fail(err)
			}
			mu.Lock()
			if socks[i] == nil && !closed {
				socks[i], last = dialUDP(srv)
			}
			c := socks[i]
			mu.Unlock()
			if c == nil {
				continue
			}
			trace(ctx, c.LocalAddr().String(), q.Id)
			m, err := tryUDP(c, wire, q.Id, timeout)
			if err == nil && m.Truncated {
				m, err = exchange(ctx, "tcp", srv, q, timeout)
			}
			if err == nil {
				return m, nil
			}
			last = err
		}
		timeout *= time.Duration(mult)
	}
	if err := ctx.Err(); err != nil {
		last = err
	}
	return nil, fail(last)
}

func dialUDP(srv string) (*net.UDPConn, error) {
	ra, err := net.ResolveUDPAddr("udp", srv)
	if err != nil {
		return nil, err
	}
	return net.DialUDP("udp", nil, ra)
}

// tryUDP sends the query once on c and waits up to timeout for a reply with
// its id. Other packets (a reply to another query, garbage) are skipped, as
// rfc1035_recv_one_udp_response skips them; a reply with the id that does
// not parse ends the try, as Courier then asks the next server.
func tryUDP(c *net.UDPConn, wire []byte, id uint16, timeout time.Duration) (*dns.Msg, error) {
	if _, err := c.Write(wire); err != nil {
		return nil, err
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := c.Read(buf)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			continue // Courier's unconnected socket never hears of it: wait on
		case err != nil:
			return nil, err
		case n < 3 || uint16(buf[0])<<8|uint16(buf[1]) != id || buf[2]&0x80 == 0:
			continue
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			return nil, fmt.Errorf("bad reply: %w", err)
		}
		return m, nil
	}
}

// trace adds the key of a query sent from local to ctx's Trace, once: every
// try of one lookup to one server has the same key.
func trace(ctx context.Context, local string, id uint16) {
	t, ok := ctx.Value(traceKey{}).(*Trace)
	if !ok {
		return
	}
	k := events.QueryKey(local, id)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, have := range t.keys {
		if have == k {
			return
		}
	}
	t.keys = append(t.keys, k)
}

// exchange sends q to srv once over network and waits up to timeout for
// the reply (the TCP retry of a truncated answer).
func exchange(ctx context.Context, network, srv string, q *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout}
	co, err := c.DialContext(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	trace(ctx, co.LocalAddr().String(), q.Id)
	// miekg/dns obeys a context deadline but not a cancel; closing the
	// socket ends the read whenever ctx ends.
	stop := context.AfterFunc(ctx, func() { co.Close() })
	defer stop()
	m, _, err := c.ExchangeWithConnContext(ctx, q, co)
	return m, err
}

// answers returns the records of type T in the answer section of m, or the
// *LookupError for the reply's rcode or for an empty answer (NODATA). All
// records of the type count, whatever their owner, so a CNAME chain
// followed by a recursive server is accepted.
func answers[T dns.RR](m *dns.Msg, name string, qtype uint16) ([]T, error) {
	name = strings.TrimSuffix(name, ".")
	if m.Rcode != dns.RcodeSuccess {
		return nil, &LookupError{Name: name, QType: qtype, Rcode: m.Rcode, NotFound: m.Rcode == dns.RcodeNameError}
	}
	var out []T
	for _, rr := range m.Answer {
		if t, ok := rr.(T); ok && rr.Header().Rrtype == qtype {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, &LookupError{Name: name, QType: qtype, Rcode: dns.RcodeSuccess, NotFound: true}
	}
	return out, nil
}

// PTR returns the names of ip, without trailing dot. NXDOMAIN and NODATA
// are a *LookupError with NotFound, not (nil, nil): a caller that forgets
// to check the error must not take "no name" for a name.
func (r *Resolver) PTR(ctx context.Context, ip net.IP) (names []string, err error) {
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return nil, &LookupError{Name: ip.String(), QType: dns.TypePTR, Rcode: -1, Err: err}
	}
	m, err := r.Exchange(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	ptrs, err := answers[*dns.PTR](m, rev, dns.TypePTR)
	for _, p := range ptrs {
		names = append(names, strings.TrimSuffix(p.Ptr, "."))
	}
	return names, err
}

// A returns the IPv4 addresses of name; not found is a *LookupError with
// NotFound, as for PTR.
func (r *Resolver) A(ctx context.Context, name string) (ips []net.IP, err error) {
	m, err := r.Exchange(ctx, name, dns.TypeA)
	if err != nil {
		return nil, err
	}
	as, err := answers[*dns.A](m, name, dns.TypeA)
	for _, a := range as {
		ips = append(ips, a.A)
	}
	return ips, err
}

// AAAA returns the IPv6 addresses of name; not found is a *LookupError
// with NotFound, as for A.
func (r *Resolver) AAAA(ctx context.Context, name string) (ips []net.IP, err error) {
	m, err := r.Exchange(ctx, name, dns.TypeAAAA)
	if err != nil {
		return nil, err
	}
	as, err := answers[*dns.AAAA](m, name, dns.TypeAAAA)
	for _, a := range as {
		ips = append(ips, a.AAAA)
	}
	return ips, err
}

// DNSBL asks zone about the IPv4 address ip (an A query of the reversed
// octets under zone). Not listed (NXDOMAIN or NODATA) is (false, "", nil);
// listed gives the first A answer as code; err is left for failures, which
// are temporary, and for an ip that is not IPv4.
func (r *Resolver) DNSBL(ctx context.Context, ip net.IP, zone string) (listed bool, code string, err error) {
	v4 := ip.To4()
	if v4 == nil {
		return false, "", fmt.Errorf("dnsbl: %v is not an IPv4 address", ip)
	}
	name := fmt.Sprintf("%d.%d.%d.%d.%s", v4[3], v4[2], v4[1], v4[0], strings.TrimSuffix(zone, "."))
	return r.Listed(ctx, name, dns.TypeA)
}

// Listed asks a DNS list about name, already in its list form (reversed
// octets or nibbles under the zone), with an A query, or a TXT query for
// lists that answer TXT only. Not listed (NXDOMAIN or NODATA) is
// (false, "", nil); listed gives the first answer: the A record's address,
// or the TXT record's text (its strings joined).
func (r *Resolver) Listed(ctx context.Context, name string, qtype uint16) (listed bool, answer string, err error) {
	m, err := r.Exchange(ctx, name, qtype)
	if err != nil {
		return false, "", err
	}
	switch qtype {
	case dns.TypeTXT:
		var ts []*dns.TXT
		ts, err = answers[*dns.TXT](m, name, qtype)
		if len(ts) > 0 {
			answer = strings.Join(ts[0].Txt, "")
		}
	default:
		var as []*dns.A
		as, err = answers[*dns.A](m, name, qtype)
		if len(as) > 0 {
			answer = as[0].A.String()
		}
	}
	var le *LookupError
	if errors.As(err, &le) && le.NotFound {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	return true, answer, nil
}
