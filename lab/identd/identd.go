// Package identd is the lab's RFC 1413 identification server and client.
//
// The 1999 benchmark's receiving MTA asks the connecting host's port 113 who
// owns every incoming SMTP connection before it greets, so the sending host
// must run an identd or every connection waits out the receiver's ident
// timeout. The lab does not care who really owns a socket: the Server answers
// one configured USERID for every well-formed query, which is what a real
// identd on a single-user sending host would say. Query is the receiver's
// side of the same exchange.
//
// Both parsers read text from the network, so they bound what they accept
// and never panic; the Server caps line length so a hostile client cannot
// make it buffer without limit.
package identd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smtplab/smtplab/lab/events"
)

// MaxLine is the longest request or reply line, CRLF included, either side
// reads. RFC 1413 lines are short (a 512-octet user-id is the longest field),
// so 1000 bytes is generous without letting a peer grow our buffers.
const MaxLine = 1000

// DefaultIdleTimeout is how long the Server keeps an idle connection open;
// RFC 1413 suggests 60-180 s, but the lab's receiver asks once per
// connection, so a shorter wait frees sockets sooner.
const DefaultIdleTimeout = 30 * time.Second

// The RFC 1413 error types the Server sends.
const (
	ErrInvalidPortType = "INVALID-PORT"
	ErrNoUserType      = "NO-USER"
	ErrUnknownType     = "UNKNOWN-ERROR"
)

var (
	// ErrMalformed marks a line that is not an RFC 1413 request or reply.
	ErrMalformed = errors.New("ident: malformed line")
	// ErrInvalidPort marks a request whose ports are integers outside
	// 1..65535; ParseRequest still returns them so the reply can echo them.
	ErrInvalidPort = errors.New("ident: port out of range")
	// ErrErrorReply marks a Query answered with an ERROR reply.
	ErrErrorReply = errors.New("ident: error reply")
)

// Config is the identd's configuration.
type Config struct {
	// User is the USERID answered for every valid query, e.g. "sender".
	// Empty means every valid query is answered ERROR : NO-USER.
	User string `json:"user"`
	// OS is the operating-system field of USERID replies; default "UNIX".
	OS string `json:"os"`
	// IdleTimeout closes a connection that sends no line for this long;
	// default DefaultIdleTimeout.
	IdleTimeout time.Duration `json:"idle_timeout_ns,omitempty"`
}

// Server answers RFC 1413 queries on any number of listeners until Close.
type Server struct {
	cfg Config
	log *events.Log

	mu     sync.Mutex
	closed bool
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// New returns a Server answering as cfg says and recording each answered
// query in log (which may be nil). Characters that would break the reply
// line (CR, LF, NUL, and ':' in OS) are removed from cfg.
func New(cfg Config, log *events.Log) *Server {
	cfg.User = strings.Trim(clean(cfg.User, "\r\n\x00"), " \t")
	cfg.OS = strings.Trim(clean(cfg.OS, "\r\n\x00:"), " \t")
	if cfg.OS == "" {
		cfg.OS = "UNIX"
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	return &Server{cfg: cfg, log: log, conns: map[net.Conn]struct{}{}}
}

func clean(s, bad string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(bad, r) {
			return -1
		}
		return r
	}, s)
}

// Listen starts serving TCP on addr (e.g. ":113" or "127.0.0.1:0") and
// returns the bound address; serving continues until Close.
func (s *Server) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("identd listen %s: %w", addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return nil, fmt.Errorf("identd listen %s: %w", addr, net.ErrClosed)
	}
	s.lns = append(s.lns, ln)
	s.wg.Add(1)
	go s.accept(ln)
	return ln.Addr(), nil
}

// Close stops every listener, drops open connections and waits for their
// goroutines, so no event is added after it returns.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var err error
	for _, ln := range s.lns {
		if e := ln.Close(); e != nil && err == nil {
			err = e
		}
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off rather than spin.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// serve answers one request per line until the client closes, idles out, or
// sends a line longer than MaxLine (after which the stream cannot be trusted
// to resynchronise, so it is answered once and dropped).
func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	host := c.RemoteAddr().String()
	r := bufio.NewReaderSize(c, MaxLine)
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		raw, err := r.ReadSlice('\n')
		tooLong := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !tooLong && len(raw) == 0 {
			return
		}
		line := strings.Trim(string(raw), " \t\r\n")
		reply := s.answer(line)
		// Log before answering so that a client holding the reply can rely
		// on the event being in the log already.
		s.log.Add(events.Event{Kind: events.IdentQuery, Host: host, Name: line, Result: reply})
		c.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
		_, werr := io.WriteString(c, reply+"\r\n")
		if werr != nil || err != nil {
			return
		}
	}
}

// answer is the reply line (without CRLF) for one request line.
func (s *Server) answer(line string) string {
	sp, cp, err := ParseRequest(line)
	switch {
	case errors.Is(err, ErrInvalidPort):
		return Reply{ServerPort: sp, ClientPort: cp, Error: ErrInvalidPortType}.String()
	case err != nil:
		return Reply{Error: ErrUnknownType}.String()
	case s.cfg.User == "":
		return Reply{ServerPort: sp, ClientPort: cp, Error: ErrNoUserType}.String()
	}
	return Reply{ServerPort: sp, ClientPort: cp, UserID: s.cfg.User, OS: s.cfg.OS}.String()
}

// ParseRequest parses an RFC 1413 request "6193, 23" (spaces and tabs
// optional, trailing CRLF allowed). Integer ports outside 1..65535 are
// returned with an error wrapping ErrInvalidPort; anything else that is not
// two decimal integers is an error wrapping ErrMalformed.
func ParseRequest(line string) (serverPort, clientPort int, err error) {
	sp, cp, ok := parsePair(strings.TrimRight(line, "\r\n"))
	if !ok {
		return 0, 0, fmt.Errorf("%w: request %q", ErrMalformed, trunc(line))
	}
	if !validPort(sp) || !validPort(cp) {
		return sp, cp, fmt.Errorf("%w: %d, %d", ErrInvalidPort, sp, cp)
	}
	return sp, cp, nil
}

func validPort(p int) bool { return p >= 1 && p <= 65535 }

// parsePair reads "<int> , <int>". Atoi rejects values that overflow, so
// huge numbers count as malformed rather than being echoed wrapped.
func parsePair(s string) (a, b int, ok bool) {
	l, r, found := strings.Cut(s, ",")
	if !found {
		return 0, 0, false
	}
	a, err1 := strconv.Atoi(strings.Trim(l, " \t"))
	b, err2 := strconv.Atoi(strings.Trim(r, " \t"))
	return a, b, err1 == nil && err2 == nil
}

// trunc keeps error messages short when a peer sends a huge line.
func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
