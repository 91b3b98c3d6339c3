package receiver

// couriertcpd's checks before the greeting: IDENT, reverse DNS with
// forward confirmation (ip2host) and the DNSBL zones (check_blocklist,
// docheckblocklist, mkmymsg). Read in github.com/svarshavchik/courier-libs
// tcpd/tcpd.c; the courier-1.0.16 profile's forward lookups follow
// rfc1035/rfc1035qa.c (rfc1035_a).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/resolver"
)

// resolver is the DNS client with the configured schedule.
func (s *Server) resolver() *resolver.Resolver {
	return &resolver.Resolver{Servers: s.cfg.DNSServers, FirstTimeout: s.cfg.DNSTimeout.D(),
		Multiplier: s.cfg.DNSMultiplier, Rounds: s.cfg.DNSRounds}
}

// check is couriertcpd's run(): the checks of one connection, one after
// another in one process, nothing in parallel, in this order:
//  1. IDENT (tcpremoteinfo), unless -noidentlookup;
//  2. the per-IP and per-C limits: over one, run() _exits, so the
//     connection is refused (check returns the reason) after its IDENT
//     query and before any DNS lookup;
//  3. ip2host of the client: PTR, then the forward lookup of the name
//     (A; A and AAAA in the 1.0.16 profile), confirmed when it gives the
//     client's address back; no forward lookup without a PTR name;
//  4. in the 1.0.16 profile, ip2host of the local address the same way;
//  5. each -block zone in order (check_blocklist). A zone whose variable is
//     already set is not asked (docheckblocklist), so after one reject
//     listing the later reject zones cost nothing; in the 1.0.16 profile
//     the IPv4 form is asked first and the nibble form only if the first
//     did not list. A failed lookup counts as not listed.
//
// Each lookup is one Check event (start, duration, result; Via names its
// DNS queries). check returns "" when the session may start.
func (s *Server) check(c *sessionConn) (refused string) {
	raddr, _ := c.RemoteAddr().(*net.TCPAddr)
	laddr, _ := c.LocalAddr().(*net.TCPAddr)
	if raddr == nil || laddr == nil {
		return ""
	}
	k := &checker{s: s, c: c, ctx: s.ctx, res: s.resolver(), modern: s.cfg.Profile == ProfileCourier1016}
	if s.cfg.Ident {
		k.ident(raddr, laddr)
	}
	if reason := s.overLimit(c); reason != "" {
		return reason
	}
	if s.cfg.ReverseDNS {
		c.ptrName, c.confirmed = k.ip2host("", raddr.IP)
		if k.modern {
			k.ip2host("local_", laddr.IP)
		}
	}
	for _, zone := range s.cfg.zones() {
		k.blacklist(zone, raddr.IP)
	}
	return ""
}

// checker is one connection's run of check: what every step needs.
type checker struct {
	s      *Server
	c      *sessionConn
	ctx    context.Context // the server's: ends on Close
	res    *resolver.Resolver
	modern bool // the courier-1.0.16 profile
}

// timed runs one lookup f and logs it as a Check event: start, duration,
// result (f's, else the error's), reason, and in Via the DNS queries f
// made.
func (k *checker) timed(check, host, name, qtype string, f func(ctx context.Context) (string, string, error)) {
	if k.ctx.Err() != nil {
		return // closing: the connection is dropped anyway
	}
	start := time.Now()
	tr := &resolver.Trace{}
	result, reason, err := f(resolver.WithTrace(k.ctx, tr))
	if err != nil && result == "" {
		result = resolver.Result(err)
	}
	var le *resolver.LookupError
	if errors.As(err, &le) && le.NotFound && le.Result() == "NODATA" {
		// NODATA is an answer, not a failure: the name exists without
		// records of the type (an AAAA asked of a name with an A only, as
		// the 1.0.16 profile asks of every name). A lookup with no answer
		// (a timeout, SERVFAIL) and a name that does not exist (NXDOMAIN)
		// stay failed checks.
		err = nil
	}
	e := events.Event{Time: start, Kind: events.Check, Conn: k.c.id, Host: host, Check: check, Name: name, QType: qtype,
		Result: result, Reason: reason, Duration: time.Since(start), Via: tr.Keys()}
	if err != nil {
		e.Error = err.Error()
	}
	k.s.log.Add(e)
}

// ident asks the client's identd who holds the connection from raddr to
// laddr (tcpremoteinfo) and keeps the user it names.
func (k *checker) ident(raddr, laddr *net.TCPAddr) {
	ip := raddr.IP
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(k.s.cfg.IdentPort))
	k.timed("ident", ip.String(), addr, "IDENT", func(ctx context.Context) (string, string, error) {
		rep, err := identd.Query(ctx, addr, raddr.Port, laddr.Port, k.s.cfg.IdentTimeout.D())
		if err != nil {
			return rep.Error, "", err
		}
		k.c.identUser = rep.UserID
		return rep.UserID, "", nil
	})
}

// ip2host is couriertcpd's ip2host of a: PTR, then the forward lookup of
// the name it gives (A; A and AAAA in the 1.0.16 profile), confirmed when
// one of them gives a back. check prefixes the events' Check names
// ("reverse", "forward"; "local_" for the local address).
func (k *checker) ip2host(check string, a net.IP) (name string, confirmed bool) {
	k.timed(check+"reverse", a.String(), reverseName(a, ""), "PTR", func(ctx context.Context) (string, string, error) {
		names, err := k.res.PTR(ctx, a)
		if len(names) > 0 {
			name = names[0]
		}
		return strings.Join(names, ","), "", err
	})
	if name == "" {
		return "", false
	}
	if k.forward(check, a, name, "A", k.res.A) {
		confirmed = true
	}
	if k.modern && k.forward(check, a, name, "AAAA", k.res.AAAA) {
		confirmed = true
	}
	return name, confirmed
}

// forward looks name up with lookup (its qtype) and reports whether the
// answer contains a.
func (k *checker) forward(check string, a net.IP, name, qtype string, lookup func(context.Context, string) ([]net.IP, error)) (confirmed bool) {
	k.timed(check+"forward", a.String(), strings.ToLower(name), qtype, func(ctx context.Context) (string, string, error) {
		ips, err := lookup(ctx, name)
		var got []string
		for _, x := range ips {
			got = append(got, x.String())
			confirmed = confirmed || x.Equal(a)
		}
		return strings.Join(got, ","), "", err
	})
	return confirmed
}

// blacklist asks one -block zone about ip (check_blocklist): its IPv4
// form, and the nibble form for an IPv6 client or in the 1.0.16 profile,
// stopping at the first listing. A reject zone is not asked once BLOCK is
// set.
func (k *checker) blacklist(zone string, ip net.IP) {
	bl := k.s.cfg.BlacklistPolicy[zone]
	if bl.Policy != PolicyMark && k.c.block != "" {
		return // BLOCK is set: couriertcpd skips the lookup
	}
	var names []string
	if v4 := ip.To4(); v4 != nil {
		names = append(names, reverseName(v4, zone))
	}
	if k.modern || ip.To4() == nil {
		names = append(names, nibbleName(ip, zone))
	}
	qtype := dns.TypeA
	if bl.TXT {
		qtype = dns.TypeTXT
	}
	for _, name := range names {
		if k.listed(zone, bl, ip, name, qtype) {
			break // the zone's variable is set: its other form is not asked
		}
	}
}

// listed makes one DNSBL query, name of type qtype, and reports whether
// it lists the client. A listing sets the connection's BLOCK text (a
// reject zone) or adds to its marks (a mark zone).
func (k *checker) listed(zone string, bl Block, ip net.IP, name string, qtype uint16) (listed bool) {
	k.timed("dnsbl", ip.String(), name, dns.TypeToString[qtype], func(ctx context.Context) (string, string, error) {
		ok, answer, err := k.res.Listed(ctx, name, qtype)
		if err != nil {
			return "", "", err // a failed lookup is not "not listed"
		}
		if !ok {
			return "not listed", "", nil
		}
		listed = true
		text := blockText(zone, bl, answer, envRemoteIP(ip, k.modern))
		result := "listed"
		if !bl.TXT {
			result += " " + answer
		}
		if bl.Policy == PolicyMark {
			k.c.marks = append(k.c.marks, zone+": "+text)
			return result, PolicyMark + ": " + text, nil
		}
		k.c.block = text
		return result, PolicyReject + ": " + text, nil
	})
	return listed
}

// blockText is the text a listing sets the zone's variable to
// (docheckblocklist): the -block message with its first '@' replaced by
// the client's address, else the TXT record's text for a TXT list, else
// "Blacklisted by <zone>". For BLOCK, Courier's submit answers every RCPT
// with this text (checkrcpt in courier/submit.C), coded 511 unless the text
// begins with a code of its own between 400 and 599 (getrcpts).
func blockText(zone string, bl Block, answer, remote string) string {
	switch {
	case bl.Message != "":
		return strings.Replace(bl.Message, "@", remote, 1)
	case bl.TXT && answer != "":
		return answer
	}
	return "Blacklisted by " + zone
}

// envRemoteIP is the client's address as couriertcpd writes it (TCPREMOTEIP):
// a 1.0.16 receiver listens on an IPv6 socket and sees ::ffff:a.b.c.d.
func envRemoteIP(ip net.IP, modern bool) string {
	if modern && ip.To4() != nil {
		return "::ffff:" + ip.String()
	}
	return ip.String()
}

// reverseName is the name a reverse or DNSBL lookup of ip asks for, as the
// DNS server logs it: under zone ("4.0.18.172.bl1.example.net"), or with
// zone "" the PTR name (in-addr.arpa; ip6.arpa for an address that is not
// IPv4 or IPv4-mapped, as rfc1035_ptr_x does). The check events name the
// query so, so the two can be matched.
func reverseName(ip net.IP, zone string) string {
	v4 := ip.To4()
	switch {
	case v4 == nil && zone == "":
		return nibbleName(ip, "ip6.arpa")
	case v4 == nil:
		return nibbleName(ip, zone)
	case zone == "":
		zone = "in-addr.arpa"
	}
	return strings.ToLower(fmt.Sprintf("%d.%d.%d.%d.%s", v4[3], v4[2], v4[1], v4[0], strings.TrimSuffix(zone, ".")))
}

// nibbleName is the IPv6 DNS-list name of ip under zone: the 32 nibbles of
// its 16 bytes, last first (check_blocklist); an IPv4 address is taken as
// ::ffff:a.b.c.d, as a 1.0.16 receiver on an IPv6 socket sees it.
func nibbleName(ip net.IP, zone string) string {
	b := ip.To16()
	var sb strings.Builder
	for i := len(b) - 1; i >= 0; i-- {
		fmt.Fprintf(&sb, "%x.%x.", b[i]&0x0f, b[i]>>4)
	}
	return strings.ToLower(sb.String() + strings.TrimSuffix(zone, "."))
}
