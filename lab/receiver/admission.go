package receiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/resolver"
)

// Admission is couriertcpd's part: how many sessions at once, from one
// address and from one C block, and the checks made before the greeting.
// What couriertcpd does is read from its source (svarshavchik/courier-libs
// tcpd/tcpd.c, the same in the 2009 and 2013 versions that still had
// IDENT; tcpd/couriertcpd.sgml); the comments below name the function.
type Admission struct {
	// MaxSessions is -maxprocs (MAXDAEMONS): at the limit couriertcpd
	// stops accepting (getfreeslot before accept), so connections wait in
	// the kernel's backlog.
	MaxSessions int `json:"max_sessions"`
	// MaxPerC and MaxPerIP are -maxperc (MAXPERC) and -maxperip
	// (MAXPERIP); 0 is no limit (couriertcpd itself defaults MAXPERIP to 4
	// and MAXPERC to maxprocs). A connection over either is accepted, its
	// IDENT query made, and then closed without a word (see check).
	MaxPerC  int `json:"max_per_c,omitempty"`
	MaxPerIP int `json:"max_per_ip,omitempty"`
	// Profile is the set of lookups made per connection: ProfileCourier1999
	// (the default, "" included) or ProfileCourier1016.
	Profile string `json:"profile,omitempty"`

	DNSServers []string `json:"dns_servers"` // "ip:port"
	// The resolver's schedule (lab/resolver): DNSTimeout the first round
	// (default 5 s), each later round DNSMultiplier times longer (default
	// 5), DNSRounds rounds (default 3); every server is asked once a round.
	DNSTimeout    time.Duration `json:"dns_timeout_ns"`
	DNSMultiplier int           `json:"dns_multiplier,omitempty"`
	DNSRounds     int           `json:"dns_rounds,omitempty"`

	// ReverseDNS off is -nodnslookup: no PTR, no forward confirmation.
	ReverseDNS bool `json:"reverse_dns"`
	// Blacklists are the DNSBL zones, asked in this order, one -block each.
	Blacklists []string `json:"blacklists"`
	// BlacklistPolicy says, by zone, what a listing does; a zone not in it
	// has the zero Blacklist: reject, A query, Courier's default text.
	BlacklistPolicy map[string]Blacklist `json:"blacklist_policy,omitempty"`

	// Ident off is -noidentlookup.
	Ident        bool          `json:"ident"`
	IdentPort    int           `json:"ident_port"`
	IdentTimeout time.Duration `json:"ident_timeout_ns"`
}

// The lookup profiles.
const (
	// ProfileCourier1999 is the benchmark's Courier R: four queries per
	// connection with two blacklists (PTR and A of the client, one A per
	// zone), all IPv4.
	ProfileCourier1999 = "1999"
	// ProfileCourier1016 is Debian's courier-mta 1.0.16 listening on an
	// IPv6 socket, so the client is ::ffff:a.b.c.d: PTR of the client, A
	// and AAAA of its name (rfc1035_a asks both, rfc1035qa.c), PTR of the
	// connection's local address and A and AAAA of that name (ip2host of
	// TCPLOCALHOST), and each zone twice, reversed octets and then the
	// nibbles of the mapped address (check_blocklist): ten queries with two
	// zones, as docs/REAL-MTAS.md records.
	ProfileCourier1016 = "courier-1.0.16"
)

// The DNSBL policies.
const (
	// PolicyReject is -block=zone: a listing sets BLOCK, which makes
	// Courier refuse every RCPT, and later reject zones are not asked.
	PolicyReject = "reject"
	// PolicyMark is -block=zone,VAR with a variable of the zone's own:
	// the listing is only recorded (Courier acts on BLOCK alone).
	PolicyMark = "mark"
)

// Blacklist is one DNSBL zone's settings (couriertcpd's
// -block=zone[,var[,msg]]).
type Blacklist struct {
	Policy string `json:"policy,omitempty"` // PolicyReject (default, "") or PolicyMark
	// TXT asks for TXT records instead of A (-block=zone,BLOCK,*): the
	// zone lists an address when it has a TXT record for it, and the text
	// is the record's.
	TXT bool `json:"txt,omitempty"`
	// Message replaces the text (its first '@' becomes the client's
	// address, as mkmymsg does); with neither TXT nor Message the text is
	// "Blacklisted by <zone>".
	Message string `json:"message,omitempty"`
}

// Validate reports the first bad admission setting.
func (a Admission) Validate() error {
	if a.MaxSessions < 1 {
		return fmt.Errorf("receiver: max sessions must be at least 1, got %d (with none it would never accept)", a.MaxSessions)
	}
	switch a.Profile {
	case "", ProfileCourier1999, ProfileCourier1016:
	default:
		return fmt.Errorf("receiver: unknown lookup profile %q", a.Profile)
	}
	if a.MaxPerC < 0 || a.MaxPerIP < 0 || a.DNSMultiplier < 0 || a.DNSRounds < 0 {
		return fmt.Errorf("receiver: negative limit or DNS schedule")
	}
	for zone, b := range a.BlacklistPolicy {
		if b.Policy != "" && b.Policy != PolicyReject && b.Policy != PolicyMark {
			return fmt.Errorf("receiver: blacklist %s: unknown policy %q", zone, b.Policy)
		}
		if b.TXT && b.Message != "" {
			return fmt.Errorf("receiver: blacklist %s: a TXT query and a message exclude each other", zone)
		}
		if !slices.Contains(a.Blacklists, zone) {
			return fmt.Errorf("receiver: policy for %s, which is not in blacklists", zone)
		}
	}
	return nil
}

// admit is couriertcpd's accept loop (doit): take a slot, accept, check,
// hand to SMTP. Like getfreeslot, it accepts only with a slot free.
func (s *Server) admit() {
	defer s.wg.Done()
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			return
		}
		c, err := s.ln.Accept()
		if err != nil {
			<-s.slots
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off and go on
			// accepting rather than leave the port dead.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-s.done:
				return
			}
			continue
		}
		sc := &sessionConn{Conn: c, id: "r" + strconv.FormatInt(s.ids.Add(1), 10), s: s}
		ip := tcpIP(c.RemoteAddr())
		s.mu.Lock()
		// The child's view of its siblings is the one it forks with: the
		// connections holding a slot now, their checks and refusals
		// included (run() counts pids[] and addrs[] as of the fork).
		for o := range s.live {
			oip := tcpIP(o.RemoteAddr())
			if ip.Equal(oip) {
				sc.sameIP++
			}
			if sameCBlock(ip, oip) {
				sc.sameC++
			}
		}
		s.live[sc] = struct{}{}
		s.mu.Unlock()
		s.log.Add(events.Event{Kind: events.ConnOpen, Conn: sc.id, Host: c.RemoteAddr().String()})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if reason := s.check(sc); reason != "" {
				s.refuse(sc, reason)
				return
			}
			select {
			case s.conns <- sc:
			case <-s.done:
				sc.Close()
			}
		}()
	}
}

// refuse turns a connection away as couriertcpd does when a per-IP or
// per-C limit is reached: the child _exits, so the client sees the
// connection closed with nothing written (run() in tcpd.c; -denymsg is for
// the access file only). Its slot is free again at once.
func (s *Server) refuse(c *sessionConn, reason string) {
	s.log.Add(events.Event{Kind: events.Refused, Conn: c.id, Host: c.RemoteAddr().String(), Reason: reason})
	c.closeReason = "refused: " + reason
	c.Close()
}

// sessionConn is an accepted connection with what the checks found. When
// closed it logs ConnClose and then gives its admission slot back, so the
// log never shows more than MaxSessions connections open at once.
type sessionConn struct {
	net.Conn
	id    string
	s     *Server
	once  sync.Once
	count atomic.Int64 // messages accepted on this connection

	// sameIP and sameC count the other connections holding a slot when
	// this one was accepted, from its address and from its C block.
	sameIP, sameC int
	closeReason   string // set when refused: ConnClose's reason wins over what was seen

	// What the connection showed of its end, for ConnClose's reason.
	endMu        sync.Mutex
	sawQuit      bool  // the server answered 221 (QUIT)
	readErr      error // the first error reading from the client
	serverClosed bool  // the server shut down with the session open

	ptrName   string // "" when reverse DNS found nothing
	confirmed bool   // the PTR name's A (or AAAA) records contain the client
	identUser string
	// block, when not empty, is the text every RCPT is refused with (550),
	// as couriertcpd -block does: set by the checks, read by the session.
	block string
	// marks are the listings of mark-only zones, "zone: text" each, for
	// the Received: header or the report.
	marks []string
}

// Close may be called more than once and from several goroutines (go-smtp
// closes on QUIT, on server Close and when its handler ends); the first
// call logs and releases.
func (c *sessionConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		reason := c.endReason()
		c.s.log.Add(events.Event{Kind: events.ConnClose, Conn: c.id, Count: int(c.count.Load()), Reason: reason})
		c.s.mu.Lock()
		delete(c.s.live, c)
		c.s.mu.Unlock()
		<-c.s.slots
	})
	return err
}

// Read notes how the client's side ended: a timeout, the client closing,
// or an error.
func (c *sessionConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.endMu.Lock()
		if c.readErr == nil {
			c.readErr = err
		}
		c.endMu.Unlock()
	}
	return n, err
}

// Write notes the 221 that answers QUIT (no other reply has that code).
func (c *sessionConn) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, []byte("221 ")) || bytes.Contains(p, []byte("\r\n221 ")) {
		c.endMu.Lock()
		c.sawQuit = true
		c.endMu.Unlock()
	}
	return c.Conn.Write(p)
}

// endReason is ConnClose's reason: refused (and why), quit, timeout,
// server closed, client closed, error, or closed when nothing was seen.
func (c *sessionConn) endReason() string {
	if c.closeReason != "" {
		return c.closeReason
	}
	c.endMu.Lock()
	defer c.endMu.Unlock()
	var ne net.Error
	switch {
	case c.sawQuit:
		return "quit"
	case c.serverClosed:
		return "server closed"
	case c.readErr == nil:
		return "closed"
	case errors.As(c.readErr, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(c.readErr, io.EOF):
		return "client closed"
	case errors.Is(c.readErr, net.ErrClosed):
		return "closed"
	}
	return "error: " + c.readErr.Error()
}

// resolver is the DNS client with the configured schedule.
func (s *Server) resolver() *resolver.Resolver {
	return &resolver.Resolver{Servers: s.cfg.DNSServers, FirstTimeout: s.cfg.DNSTimeout,
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
	ctx := s.ctx
	raddr, _ := c.RemoteAddr().(*net.TCPAddr)
	laddr, _ := c.LocalAddr().(*net.TCPAddr)
	if raddr == nil || laddr == nil {
		return ""
	}
	ip, lip := raddr.IP, laddr.IP
	modern := s.cfg.Profile == ProfileCourier1016
	res := s.resolver()
	timed := func(check, host, name, qtype string, f func(ctx context.Context) (string, string, error)) {
		if ctx.Err() != nil {
			return // closing: the connection is dropped anyway
		}
		start := time.Now()
		tr := &resolver.Trace{}
		result, reason, err := f(resolver.WithTrace(ctx, tr))
		if err != nil && result == "" {
			result = resolver.Result(err)
		}
		e := events.Event{Time: start, Kind: events.Check, Conn: c.id, Host: host, Check: check, Name: name, QType: qtype,
			Result: result, Reason: reason, Duration: time.Since(start), Via: tr.Keys()}
		if err != nil {
			e.Error = err.Error()
		}
		s.log.Add(e)
	}

	if s.cfg.Ident {
		addr := net.JoinHostPort(ip.String(), strconv.Itoa(s.cfg.IdentPort))
		timed("ident", ip.String(), addr, "IDENT", func(ctx context.Context) (string, string, error) {
			rep, err := identd.Query(ctx, addr, raddr.Port, laddr.Port, s.cfg.IdentTimeout)
			if err != nil {
				return rep.Error, "", err
			}
			c.identUser = rep.UserID
			return rep.UserID, "", nil
		})
	}
	switch {
	case s.cfg.MaxPerIP > 0 && c.sameIP >= s.cfg.MaxPerIP:
		return "max_per_ip"
	case s.cfg.MaxPerC > 0 && c.sameC >= s.cfg.MaxPerC:
		return "max_per_c"
	}

	// ip2host: PTR, then forward confirmation of the name.
	ip2host := func(check string, a net.IP) (name string, confirmed bool) {
		timed(check+"reverse", a.String(), reverseName(a, ""), "PTR", func(ctx context.Context) (string, string, error) {
			names, err := res.PTR(ctx, a)
			if len(names) > 0 {
				name = names[0]
			}
			return strings.Join(names, ","), "", err
		})
		if name == "" {
			return "", false
		}
		forward := func(qtype string, lookup func(context.Context, string) ([]net.IP, error)) {
			timed(check+"forward", a.String(), strings.ToLower(name), qtype, func(ctx context.Context) (string, string, error) {
				ips, err := lookup(ctx, name)
				var got []string
				for _, x := range ips {
					got = append(got, x.String())
					confirmed = confirmed || x.Equal(a)
				}
				return strings.Join(got, ","), "", err
			})
		}
		forward("A", res.A)
		if modern {
			forward("AAAA", res.AAAA)
		}
		return name, confirmed
	}
	if s.cfg.ReverseDNS {
		c.ptrName, c.confirmed = ip2host("", ip)
		if modern {
			ip2host("local_", lip)
		}
	}

	for _, zone := range s.cfg.Blacklists {
		bl := s.cfg.BlacklistPolicy[zone]
		if bl.Policy != PolicyMark && c.block != "" {
			continue // BLOCK is set: couriertcpd skips the lookup
		}
		var names []string
		if v4 := ip.To4(); v4 != nil {
			names = append(names, reverseName(v4, zone))
		}
		if modern || ip.To4() == nil {
			names = append(names, nibbleName(ip, zone))
		}
		qtype := dns.TypeA
		if bl.TXT {
			qtype = dns.TypeTXT
		}
		for _, name := range names {
			listed := false
			timed("dnsbl", ip.String(), name, dns.TypeToString[qtype], func(ctx context.Context) (string, string, error) {
				ok, answer, err := res.Listed(ctx, name, qtype)
				if err != nil {
					return "", "", err // a failed lookup is not "not listed"
				}
				if !ok {
					return "not listed", "", nil
				}
				listed = true
				text := blockText(zone, bl, answer, envRemoteIP(ip, modern))
				result := "listed"
				if !bl.TXT {
					result += " " + answer
				}
				if bl.Policy == PolicyMark {
					c.marks = append(c.marks, zone+": "+text)
					return result, PolicyMark + ": " + text, nil
				}
				c.block = text
				return result, PolicyReject + ": " + text, nil
			})
			if listed {
				break // the zone's variable is set: its other form is not asked
			}
		}
	}
	return ""
}

// blockText is the text a listing sets the zone's variable to
// (docheckblocklist): the -block message with its first '@' replaced by
// the client's address, else the TXT record's text for a TXT list, else
// "Blacklisted by <zone>". For BLOCK, Courier's submit answers every RCPT
// with this text (checkrcpt in courier/submit.C), coded 511 unless the text
// begins with a code of its own between 400 and 599 (getrcpts).
func blockText(zone string, bl Blacklist, answer, remote string) string {
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

// chanListener hands checked connections to go-smtp's Serve.
type chanListener struct{ s *Server }

func (l chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.s.conns:
		// go-smtp writes the 220 as soon as it has the connection.
		if sc, ok := c.(*sessionConn); ok {
			l.s.log.Add(events.Event{Kind: events.Greeting, Conn: sc.id})
		}
		return c, nil
	case <-l.s.done:
		return nil, net.ErrClosed
	}
}
func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return l.s.ln.Addr() }

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

// tcpIP is the IP of a TCP address (nil for anything else).
func tcpIP(a net.Addr) net.IP {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP
	}
	return nil
}

// sameCBlock reports whether a and b are in one C block as run() counts it:
// the 16-byte (IPv4-mapped) addresses agree but for the last byte, which
// for IPv4 is the /24.
func sameCBlock(a, b net.IP) bool {
	a16, b16 := a.To16(), b.To16()
	return a16 != nil && b16 != nil && a16[:15].Equal(b16[:15])
}
