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
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
)

// Resolver asks Servers with Courier's retry schedule. Zero or negative
// FirstTimeout, Multiplier and Rounds take the defaults 5s, 5 and 3.
type Resolver struct {
	Servers      []string      // "ip:port"
	FirstTimeout time.Duration // default 5s when zero
	Multiplier   int           // default 5 when zero
	Rounds       int           // default 3 when zero

	// Log, when set, gets one events.Check per PTR, A and DNSBL call
	// (Check "reverse", "forward", "dnsbl"), with Conn from WithConn.
	Log *events.Log
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

// Result is "NOERROR" for a nil error, and LookupError.Result otherwise.
func Result(err error) string {
	var le *LookupError
	switch {
	case err == nil:
		return "NOERROR"
	case errors.As(err, &le):
		return le.Result()
	}
	return "ERROR"
}

type connKey struct{}

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

// WithConn returns a context whose lookups log Check events for connection
// conn, so the report can tie a check to the SMTP connection that paid it.
func WithConn(ctx context.Context, conn string) context.Context {
	return context.WithValue(ctx, connKey{}, conn)
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

// Exchange does one lookup with the retry schedule. Any reply is the result,
// whatever its rcode; only timeouts and network errors move on to the next
// server or round. When every try failed, or ctx ended, the error is a
// *LookupError with Rcode -1 that wraps the last error (or ctx.Err()).
func (r *Resolver) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	fail := func(err error) error {
		return &LookupError{Name: strings.TrimSuffix(name, "."), QType: qtype, Rcode: -1, Err: err}
	}
	if len(r.Servers) == 0 {
		return nil, fail(errors.New("no nameservers"))
	}
	timeout, mult, rounds := r.schedule()
	var last error
	for round := 0; round < rounds; round++ {
		for _, srv := range r.Servers {
			if err := ctx.Err(); err != nil {
				return nil, fail(err)
			}
			q.Id = dns.Id() // a late answer to an earlier try is not taken for this one
			m, err := exchange(ctx, "udp", srv, q, timeout)
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

// exchange sends q to srv once and waits up to timeout for the reply.
func exchange(ctx context.Context, network, srv string, q *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout}
	co, err := c.DialContext(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	if t, ok := ctx.Value(traceKey{}).(*Trace); ok {
		t.mu.Lock()
		t.keys = append(t.keys, events.QueryKey(co.LocalAddr().String(), q.Id))
		t.mu.Unlock()
	}
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
	start := time.Now()
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return nil, &LookupError{Name: ip.String(), QType: dns.TypePTR, Rcode: -1, Err: err}
	}
	defer func() { r.check(ctx, "reverse", rev, dns.TypePTR, ip.String(), start, Result(err), "") }()
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
	start := time.Now()
	defer func() { r.check(ctx, "forward", name, dns.TypeA, "", start, Result(err), "") }()
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

// DNSBL asks zone about the IPv4 address ip (an A query of the reversed
// octets under zone). Not listed (NXDOMAIN or NODATA) is (false, "", nil);
// listed gives the first A answer as code; err is left for failures, which
// are temporary, and for an ip that is not IPv4.
func (r *Resolver) DNSBL(ctx context.Context, ip net.IP, zone string) (listed bool, code string, err error) {
	start := time.Now()
	v4 := ip.To4()
	if v4 == nil {
		return false, "", fmt.Errorf("dnsbl: %v is not an IPv4 address", ip)
	}
	name := fmt.Sprintf("%d.%d.%d.%d.%s", v4[3], v4[2], v4[1], v4[0], strings.TrimSuffix(zone, "."))
	var res string // the lookup's result, since a not-found is no error here
	defer func() { r.check(ctx, "dnsbl", name, dns.TypeA, v4.String(), start, res, code) }()
	m, err := r.Exchange(ctx, name, dns.TypeA)
	if err != nil {
		res = Result(err)
		return false, "", err
	}
	as, err := answers[*dns.A](m, name, dns.TypeA)
	res = Result(err)
	var le *LookupError
	if errors.As(err, &le) && le.NotFound {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	return true, as[0].A.String(), nil
}

// check logs one events.Check: Result as from Result ("NOERROR",
// "NXDOMAIN", "NODATA", "TIMEOUT", ...), Reason the DNSBL code when listed.
func (r *Resolver) check(ctx context.Context, check, name string, qtype uint16, host string, start time.Time, res, reason string) {
	conn, _ := ctx.Value(connKey{}).(string)
	r.Log.Add(events.Event{
		Kind: events.Check, Check: check, Conn: conn, Host: host,
		Name: strings.ToLower(strings.TrimSuffix(name, ".")), QType: dns.Type(qtype).String(),
		Result: res, Reason: reason, Duration: time.Since(start),
	})
}
