package sender

// Routing: a recipient host's static route (Courier's esmtproutes, read by
// smtproutes in courier/module.esmtp/smtproutes.c), else its MX and A
// records (rfc1035_mxlist_create_x in Courier's rfc1035 library).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/domain"
	"github.com/smtplab/smtplab/lab/resolver"
)

// routeError is a host the sender could not find a server for; permanent
// says whether asking again later is pointless (NXDOMAIN, no address at
// all) or not (a timeout, SERVFAIL).
type routeError struct {
	permanent bool
	err       error
}

func (e *routeError) Error() string { return e.err.Error() }
func (e *routeError) Unwrap() error { return e.err }

// resolveMX finds the servers for mail to domain through the lab's DNS, as
// RFC 5321 section 5.1 says and Courier's rfc1035_mxlist_create_x does:
// the MX records, lowest preference first, then the A records of each MX
// host; a domain with no MX record is its own exchanger (its A records).
// NXDOMAIN for the domain is permanent, as is a null MX (RFC 7505) or no
// address for any exchanger; a timeout or SERVFAIL is temporary. An MX
// host whose A lookup fails is skipped when another one has an address
// (Courier's RFC1035_MX_IGNORESOFTERR).
func (s *Sender) resolveMX(ctx context.Context, domain string) ([]string, error) {
	temp := func(err error) error { return &routeError{err: fmt.Errorf("dns: %w", err)} }
	perm := func(format string, a ...any) error {
		return &routeError{permanent: true, err: fmt.Errorf("dns: "+format, a...)}
	}
	m, err := s.res.Exchange(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, temp(err)
	}
	switch m.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, perm("%s: no such domain (NXDOMAIN for MX)", domain)
	default:
		return nil, temp(fmt.Errorf("lookup %s MX: %s", domain, dns.RcodeToString[m.Rcode]))
	}
	type mx struct {
		pref uint16
		host string
	}
	var mxs []mx
	for _, rr := range m.Answer {
		if r, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, mx{r.Preference, strings.TrimSuffix(r.Mx, ".")})
		}
	}
	if len(mxs) == 0 {
		mxs = []mx{{0, domain}} // the implicit MX
	}
	if len(mxs) == 1 && mxs[0].host == "" {
		return nil, perm("%s: null MX, the domain accepts no mail (RFC 7505)", domain)
	}
	// Equal preferences keep the answer's order: RFC 5321 asks for a
	// random pick among them, and the lab's randomness must be seeded;
	// the stub answers in a fixed order, so this is reproducible.
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].pref < mxs[j].pref })
	port := strconv.Itoa(s.cfg.SMTPPort)
	var addrs []string
	var soft error
	for _, x := range mxs {
		ips, err := s.res.A(ctx, x.host)
		var le *resolver.LookupError
		switch {
		case err == nil:
		case errors.As(err, &le) && le.NotFound:
			continue
		default:
			soft = err
			continue
		}
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip.String(), port))
		}
	}
	if len(addrs) == 0 {
		if soft != nil {
			return nil, temp(soft)
		}
		names := make([]string, len(mxs))
		for i, x := range mxs {
			names[i] = x.host
		}
		return nil, perm("%s: no address for its mail exchangers %v", domain, names)
	}
	return addrs, nil
}

// groupByHost splits a message's recipients by host (lower case): one
// job, one transaction, per host.
func groupByHost(rcpts []string) map[string][]string {
	out := map[string][]string{}
	for _, r := range rcpts {
		h := strings.ToLower(r[strings.LastIndexByte(r, '@')+1:])
		out[h] = append(out[h], r)
	}
	return out
}

// route finds the static route for host (Config.Routes, the first that
// matches), as Courier's esmtproutes gives one; false: none, so MX routing.
func (s *Sender) route(host string) (string, bool) {
	for _, rt := range s.cfg.Routes {
		if domain.Matches(rt.Domain, host) {
			return rt.Relay, true
		}
	}
	return "", false
}
