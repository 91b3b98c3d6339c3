package dnsstub

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/fault"
	"github.com/smtplab/smtplab/lab/line"
)

// Blacklist is one DNSBL zone and the IPv4 addresses listed in it.
type Blacklist struct {
	Zone   string   `yaml:"zone" json:"zone"`               // e.g. "bl1.example.net"
	Listed []string `yaml:"listed" json:"listed,omitempty"` // IPv4 addresses listed in it
	Code   string   `yaml:"code" json:"code,omitempty"`     // A answer for listed addresses, default "127.0.0.2"
	Reason string   `yaml:"reason" json:"reason,omitempty"` // TXT answer for listed addresses, default "listed in <zone>"
}

// MX is one mail exchanger of a name.
type MX struct {
	Pref uint16 `json:"pref"`
	Host string `json:"host"`
}

// Zone is the host part of the lab's DNS. Names are compared without case
// and with or without the trailing dot; every record has TTL 0 unless an
// Extra line gives one.
type Zone struct {
	A    map[string][]string `json:"a"`    // host name -> IPv4 addresses
	AAAA map[string][]string `json:"aaaa"` // host name -> IPv6 addresses
	PTR  map[string]string   `json:"ptr"`  // IPv4 or IPv6 address, as net.IP.String spells it -> host name
	MX   map[string][]MX     `json:"mx"`   // mail domain -> its exchangers
	// Extra are zone-file lines of any type miekg/dns parses ("_smtp._tcp.lab.
	// SRV 0 0 25 mx.lab."); relative names are relative to the root.
	Extra []string `json:"extra"`
}

// Config is the whole configuration of a Server.
type Config struct {
	QueryDelay time.Duration `json:"query_delay_ns"` // fixed delay before every answer, besides the line
	Blacklists []Blacklist   `json:"blacklists"`
	Zone       Zone          `json:"zone"`
	// Origins are the zones whose SOA goes into negative answers for the
	// names below them ("lab.example.net", "example.com"); the closest
	// enclosing one wins, blacklist zones count as origins, and a name under
	// none of them gets the root's SOA.
	Origins []string `json:"origins"`
	// Line is the simulated line every query and answer crosses (lab/line);
	// nil: none, answers leave at once (after QueryDelay).
	Line *line.Config `json:"line,omitempty"`
	// Faults hit chosen queries (lab/fault), decided with Seed.
	Faults []fault.Spec `json:"faults,omitempty"`
	Seed   uint64       `json:"seed"`
}

// Validate reports the first bad value of c: a negative delay, a bad zone,
// origin or host name, an address of the wrong family, a TXT reason too
// long for one string, an Extra line miekg/dns does not parse, or two names
// of one map that are the same once case and the trailing dot are ignored.
func (c Config) Validate() error {
	if c.QueryDelay < 0 {
		return fmt.Errorf("dnsstub: negative query delay %v", c.QueryDelay)
	}
	if _, err := newBlacklists(c.Blacklists); err != nil {
		return err
	}
	if _, err := newApexes(c.Origins, nil); err != nil {
		return err
	}
	_, err := newTable(c.Zone)
	return err
}

// table is a validated Zone: records by lower-case name without trailing
// dot, then by type, owners fully qualified.
type table struct {
	rrs   map[string]map[uint16][]dns.RR
	names map[string]bool // every owner and its ancestors (empty non-terminals)
}

type blacklist struct {
	zone   string
	listed map[string]bool // by net.IP.String()
	a      *dns.A          // the answers for listed addresses, owner to be set
	txt    *dns.TXT
}

// apex is a zone the stub is authoritative for, with its SOA.
type apex struct {
	name string // normalized; "" is the root
	soa  *dns.SOA
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

// parseIPv6 takes any spelling of an address that is not IPv4 (nor
// IPv4-mapped).
func parseIPv6(what, s string) (net.IP, error) {
	ip := net.ParseIP(s)
	if ip == nil || ip.To4() != nil {
		return nil, fmt.Errorf("dnsstub: bad IPv6 address %q (%s)", s, what)
	}
	return ip, nil
}

// ancestors calls f for n and each name above it, down to (excluding) the
// root; dns.Split knows escaped dots.
func ancestors(n string, f func(string)) {
	if n == "" {
		return
	}
	for _, i := range dns.Split(n) {
		f(n[i:])
	}
}

func hdr(owner string, t uint16) dns.RR_Header {
	// TTL 0: every connection in the benchmark must cost its lookups.
	return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET}
}

func newTable(z Zone) (*table, error) {
	t := &table{rrs: map[string]map[uint16][]dns.RR{}, names: map[string]bool{}}
	add := func(rr dns.RR) {
		n := normName(rr.Header().Name)
		if t.rrs[n] == nil {
			t.rrs[n] = map[uint16][]dns.RR{}
		}
		t.rrs[n][rr.Header().Rrtype] = append(t.rrs[n][rr.Header().Rrtype], rr)
		ancestors(n, func(a string) { t.names[a] = true })
	}
	// hosts checks the names of one map and returns them fully qualified.
	hosts := func(what string, names []string) (map[string]string, error) {
		seen := map[string]string{}
		for _, name := range names {
			if err := checkName(what, name); err != nil {
				return nil, err
			}
			n := normName(name)
			if _, dup := seen[n]; dup {
				return nil, fmt.Errorf("dnsstub: %s %q given twice", what, name)
			}
			seen[n] = dns.Fqdn(n)
		}
		return seen, nil
	}
	fq, err := hosts("host name", sortedKeys(z.A))
	if err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(z.A) {
		for _, a := range z.A[name] {
			ip, err := parseIPv4("A of "+name, a)
			if err != nil {
				return nil, err
			}
			add(&dns.A{Hdr: hdr(fq[normName(name)], dns.TypeA), A: ip})
		}
		if len(z.A[name]) == 0 { // a host without addresses still exists
			ancestors(normName(name), func(a string) { t.names[a] = true })
		}
	}
	if fq, err = hosts("AAAA host name", sortedKeys(z.AAAA)); err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(z.AAAA) {
		for _, a := range z.AAAA[name] {
			ip, err := parseIPv6("AAAA of "+name, a)
			if err != nil {
				return nil, err
			}
			add(&dns.AAAA{Hdr: hdr(fq[normName(name)], dns.TypeAAAA), AAAA: ip})
		}
		ancestors(normName(name), func(a string) { t.names[a] = true })
	}
	for _, addr := range sortedKeys(z.PTR) {
		ip := net.ParseIP(addr)
		if ip == nil || ip.String() != addr {
			return nil, fmt.Errorf("dnsstub: bad address %q (PTR key; IPv4 as a dotted quad, IPv6 as net.IP.String spells it)", addr)
		}
		if err := checkName("PTR target", z.PTR[addr]); err != nil {
			return nil, err
		}
		rev, _ := dns.ReverseAddr(addr)
		add(&dns.PTR{Hdr: hdr(rev, dns.TypePTR), Ptr: dns.Fqdn(z.PTR[addr])})
	}
	if fq, err = hosts("MX domain", sortedKeys(z.MX)); err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(z.MX) {
		for _, mx := range z.MX[name] {
			if err := checkName("MX host of "+name, mx.Host); err != nil {
				return nil, err
			}
			add(&dns.MX{Hdr: hdr(fq[normName(name)], dns.TypeMX), Preference: mx.Pref, Mx: dns.Fqdn(mx.Host)})
		}
		ancestors(normName(name), func(a string) { t.names[a] = true })
	}
	for i, line := range z.Extra {
		rr, err := parseExtra(line)
		if err != nil {
			return nil, fmt.Errorf("dnsstub: extra record %d %q: %v", i+1, line, err)
		}
		add(rr)
	}
	return t, nil
}

// parseExtra parses one zone-file line the way dns.NewRR does, except that
// the default TTL is 0 like every other record of the lab.
func parseExtra(line string) (dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(line+"\n"), ".", "")
	zp.SetDefaultTTL(0)
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		return nil, err
	}
	switch {
	case !ok || rr == nil:
		return nil, fmt.Errorf("no record")
	case rr.Header().Class != dns.ClassINET:
		return nil, fmt.Errorf("class %s, only IN is served", dns.Class(rr.Header().Class))
	case rr.Header().Rrtype == dns.TypeOPT:
		return nil, fmt.Errorf("OPT is not a zone record")
	}
	if _, more := zp.Next(); more {
		return nil, fmt.Errorf("more than one record")
	}
	return rr, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func newBlacklists(in []Blacklist) ([]blacklist, error) {
	var out []blacklist
	for _, b := range in {
		if err := checkName("blacklist zone", b.Zone); err != nil {
			return nil, err
		}
		bl := blacklist{zone: normName(b.Zone), listed: map[string]bool{}}
		code := b.Code
		if code == "" {
			code = "127.0.0.2"
		}
		ip, err := parseIPv4("code of "+b.Zone, code)
		if err != nil {
			return nil, err
		}
		bl.a = &dns.A{Hdr: hdr("", dns.TypeA), A: ip}
		reason := b.Reason
		if reason == "" {
			reason = "listed in " + bl.zone
		}
		if len(reason) > 255 { // one TXT string; longer would need splitting
			return nil, fmt.Errorf("dnsstub: reason of %q longer than 255 bytes", b.Zone)
		}
		bl.txt = &dns.TXT{Hdr: hdr("", dns.TypeTXT), Txt: []string{reason}}
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
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].zone) > len(out[j].zone) })
	return out, nil
}

// Fixed SOA values: the serial never changes (the zone is not transferred)
// and the minimum is 0, so negative answers are not cached either.
const (
	soaSerial  = 1999
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 86400
)

// newApexes returns the origins and blacklist zones, longest first, then
// the root. Nobody delegates the root to the lab, so its SOA names a
// synthetic primary and mailbox under the reserved TLD .invalid.
func newApexes(origins []string, bls []blacklist) ([]apex, error) {
	seen := map[string]bool{}
	var out []apex
	soa := func(n, mname, rname string) *dns.SOA {
		return &dns.SOA{Hdr: hdr(dns.Fqdn(n), dns.TypeSOA), Ns: mname, Mbox: rname,
			Serial: soaSerial, Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: 0}
	}
	addApex := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, apex{name: n, soa: soa(n, "ns."+dns.Fqdn(n), "hostmaster."+dns.Fqdn(n))})
		}
	}
	for _, o := range origins {
		if err := checkName("origin", o); err != nil {
			return nil, err
		}
		addApex(normName(o))
	}
	for _, bl := range bls {
		addApex(bl.zone)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].name) > len(out[j].name) })
	return append(out, apex{name: "", soa: soa("", "ns.smtplab.invalid.", "hostmaster.smtplab.invalid.")}), nil
}

// under reports whether name is zone or below it; the root holds everything.
func under(name, zone string) bool {
	return zone == "" || name == zone || strings.HasSuffix(name, "."+zone)
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

// maxChain bounds how many CNAMEs an answer follows.
const maxChain = 8

// lookup fills m's answer for the question (name normalized, owner its
// spelling in the question) and returns whether the last name looked up
// exists at all. Records found at a CNAME are followed within the stub.
func (s *Server) lookup(m *dns.Msg, name, owner string, qtype uint16) bool {
	t := s.table.Load()
	for range maxChain {
		rrs, exists := s.records(t, name, qtype)
		if !exists {
			return false
		}
		if len(rrs) == 0 && qtype != dns.TypeCNAME && qtype != dns.TypeANY {
			rrs = t.rrs[name][dns.TypeCNAME]
		}
		for _, rr := range rrs {
			rr = dns.Copy(rr)
			rr.Header().Name = owner
			m.Answer = append(m.Answer, rr)
		}
		if len(rrs) != 1 || rrs[0].Header().Rrtype != dns.TypeCNAME || qtype == dns.TypeCNAME {
			return true
		}
		owner = rrs[0].(*dns.CNAME).Target
		name = normName(owner)
	}
	return true
}

// records returns the records of type qtype at name (all of them for ANY)
// and whether the name exists (has records of any type, is an empty
// non-terminal, or is an apex).
func (s *Server) records(t *table, name string, qtype uint16) ([]dns.RR, bool) {
	var out []dns.RR
	exists := t.names[name] || s.fixed[name] || name == ""
	for _, bl := range s.bls {
		if !under(name, bl.zone) || name == bl.zone {
			continue
		}
		if ip, ok := reversedIPv4(strings.TrimSuffix(name, "."+bl.zone)); ok && bl.listed[ip.String()] {
			if qtype == dns.TypeA || qtype == dns.TypeANY {
				out = append(out, bl.a)
			}
			if qtype == dns.TypeTXT || qtype == dns.TypeANY {
				out = append(out, bl.txt)
			}
		}
		break
	}
	if qtype == dns.TypeSOA || qtype == dns.TypeANY {
		for _, ap := range s.apexes {
			if ap.name == name {
				out = append(out, ap.soa)
			}
		}
	}
	if qtype == dns.TypeANY {
		types := make([]int, 0, len(t.rrs[name]))
		for typ := range t.rrs[name] {
			types = append(types, int(typ))
		}
		sort.Ints(types)
		for _, typ := range types {
			out = append(out, t.rrs[name][uint16(typ)]...)
		}
	} else {
		out = append(out, t.rrs[name][qtype]...)
	}
	return out, exists
}

// soaFor is the SOA of the closest apex enclosing name.
func (s *Server) soaFor(name string) *dns.SOA {
	for _, ap := range s.apexes {
		if under(name, ap.name) {
			return ap.soa
		}
	}
	panic("dnsstub: no root apex") // newApexes always ends with the root
}
