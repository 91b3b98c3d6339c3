package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/identd"
	"github.com/smtplab/smtplab/lab/resolver"
)

// Admission is couriertcpd's part: how many sessions at once, and the
// checks made before the greeting.
type Admission struct {
	MaxSessions  int           `json:"max_sessions"`
	DNSServers   []string      `json:"dns_servers"` // "ip:port"
	DNSTimeout   time.Duration `json:"dns_timeout_ns"`
	ReverseDNS   bool          `json:"reverse_dns"`
	Blacklists   []string      `json:"blacklists"` // DNSBL zones checked per connection
	Ident        bool          `json:"ident"`
	IdentPort    int           `json:"ident_port"`
	IdentTimeout time.Duration `json:"ident_timeout_ns"`
}

// admit is couriertcpd: take a slot, accept, check, hand to SMTP.
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
		s.mu.Lock()
		s.live[sc] = struct{}{}
		s.mu.Unlock()
		s.log.Add(events.Event{Kind: events.ConnOpen, Conn: sc.id, Host: c.RemoteAddr().String()})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.check(sc)
			select {
			case s.conns <- sc:
			case <-s.done:
				sc.Close()
			}
		}()
	}
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

	ptrName   string // "" when reverse DNS found nothing
	confirmed bool   // the PTR name's A records contain the client
	identUser string
	// block, when not empty, is the text every RCPT is refused with (550),
	// as couriertcpd -block does: set by the checks, read by the session.
	block string
}

// Close may be called more than once and from several goroutines (go-smtp
// closes on QUIT, on server Close and when its handler ends); the first
// call logs and releases.
func (c *sessionConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.log.Add(events.Event{Kind: events.ConnClose, Conn: c.id, Count: int(c.count.Load()), Reason: "closed"})
		c.s.mu.Lock()
		delete(c.s.live, c)
		c.s.mu.Unlock()
		<-c.s.slots
	})
	return err
}

// check runs the pre-greeting checks in couriertcpd's order.
func (s *Server) check(c *sessionConn) {
	ctx := s.ctx
	raddr, _ := c.RemoteAddr().(*net.TCPAddr)
	if raddr == nil {
		return
	}
	ip := raddr.IP
	timed := func(check, name, qtype string, f func(ctx context.Context) (string, error)) {
		if ctx.Err() != nil {
			return // closing: the connection is dropped anyway
		}
		start := time.Now()
		tr := &resolver.Trace{}
		result, err := f(resolver.WithTrace(ctx, tr))
		if err != nil && result == "" {
			result = failure(err)
		}
		e := events.Event{Time: start, Kind: events.Check, Conn: c.id, Host: ip.String(), Check: check, Name: name, QType: qtype, Result: result, Duration: time.Since(start), Via: tr.Keys()}
		if err != nil {
			e.Error = err.Error()
		}
		s.log.Add(e)
	}
	if s.cfg.ReverseDNS {
		timed("reverse", reverseName(ip, "in-addr.arpa"), "PTR", func(ctx context.Context) (string, error) {
			names, err := s.res.PTR(ctx, ip)
			if len(names) > 0 {
				c.ptrName = names[0]
			}
			return strings.Join(names, ","), err
		})
		if c.ptrName != "" {
			timed("forward", c.ptrName, "A", func(ctx context.Context) (string, error) {
				ips, err := s.res.A(ctx, c.ptrName)
				var got []string
				for _, a := range ips {
					got = append(got, a.String())
					if a.Equal(ip) {
						c.confirmed = true
					}
				}
				return strings.Join(got, ","), err
			})
		}
	}
	for _, zone := range s.cfg.Blacklists {
		timed("dnsbl", reverseName(ip, zone), "A", func(ctx context.Context) (string, error) {
			listed, code, err := s.res.DNSBL(ctx, ip, zone)
			if err != nil {
				return "", err // a failed lookup is not "not listed"
			}
			if listed && c.block == "" {
				c.block = "Blocked by " + zone + "."
			}
			if !listed {
				return "not listed", nil
			}
			return "listed " + code, nil
		})
	}
	if s.cfg.Ident {
		laddr, _ := c.LocalAddr().(*net.TCPAddr)
		addr := net.JoinHostPort(ip.String(), strconv.Itoa(s.cfg.IdentPort))
		timed("ident", addr, "IDENT", func(ctx context.Context) (string, error) {
			rep, err := identd.Query(ctx, addr, raddr.Port, laddr.Port, s.cfg.IdentTimeout)
			if err != nil {
				return rep.Error, err
			}
			c.identUser = rep.UserID
			return rep.UserID, nil
		})
	}
}

// failure names a failed check for the log: the resolver's result
// ("NXDOMAIN", "TIMEOUT", ...) or, for ident, "TIMEOUT" or "ERROR".
func failure(err error) string {
	var le *resolver.LookupError
	if errors.As(err, &le) {
		return le.Result()
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "CANCELED"
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded):
		return "TIMEOUT"
	}
	return "ERROR"
}

// chanListener hands checked connections to go-smtp's Serve.
type chanListener struct{ s *Server }

func (l chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.s.conns:
		return c, nil
	case <-l.s.done:
		return nil, net.ErrClosed
	}
}
func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return l.s.ln.Addr() }

// reverseName is the name a reverse or DNSBL lookup of ip asks for under
// zone ("4.0.18.172.bl1.example.net"): the check events name the query as
// the DNS server logs it, so the two can be matched.
func reverseName(ip net.IP, zone string) string {
	v4 := ip.To4()
	if v4 == nil {
		return ip.String() + "." + zone
	}
	return fmt.Sprintf("%d.%d.%d.%d.%s", v4[3], v4[2], v4[1], v4[0], strings.TrimSuffix(zone, "."))
}
