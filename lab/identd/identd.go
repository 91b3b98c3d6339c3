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
// Scenarios can make the identd misbehave (Config.Mode, Config.Delay): answer
// a configured ERROR, answer late, accept and never answer, or not listen at
// all. Each such behaviour applied to a query is recorded as an
// events.Fault event next to the query's events.IdentQuery event.
//
// Events the Server writes, per request line read (malformed ones included):
//   - zero or more events.Fault events, FaultName and Reason both one of
//     FaultError, FaultDelay, FaultSilent; Name the request line, Seq the
//     query's number (1-based, in arrival order, per Server), Host the
//     client, Duration the configured delay for FaultDelay (0 otherwise);
//   - then one events.IdentQuery event: Name the request line, Result the
//     reply line sent (empty when none was: mode "silent", or a delayed
//     answer cut short by Close), Seq, Host, and Reason ReasonMalformed for
//     a malformed request.
//
// Both event kinds carry the time the request arrived. Every event of a
// query is in the log before its reply is written.
//
// Malformed requests (not "<port> , <port>", or longer than MaxLine) are
// counted twice over, by design the same count: Server.Malformed in-process,
// and IdentQuery events with Reason ReasonMalformed for the lab, which only
// sees the identd's event log. They are answered "0, 0 : ERROR :
// UNKNOWN-ERROR" (not at all in mode "silent"); an over-long line also drops
// its connection. A bad request only ever affects its own connection: each
// connection is served by its own goroutine.
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
	"sync/atomic"
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

// The RFC 1413 error types.
const (
	ErrInvalidPortType = "INVALID-PORT"
	ErrNoUserType      = "NO-USER"
	ErrHiddenUserType  = "HIDDEN-USER"
	ErrUnknownType     = "UNKNOWN-ERROR"
)

// The Server's modes (Config.Mode).
const (
	// ModeUserID answers USERID : <OS> : <User> to every valid query.
	ModeUserID = "userid"
	// ModeError answers ERROR : <Error> to every valid query.
	ModeError = "error"
	// ModeSilent accepts and reads queries but never answers; it holds
	// each connection until the client closes it or the Server is closed
	// (the idle timeout does not apply).
	ModeSilent = "silent"
	// ModeClosed does not listen at all: Listen binds nothing and returns
	// (nil, nil), so a client's query is refused by the host's kernel
	// (connection refused), as from a host that runs no identd.
	ModeClosed = "closed"
)

// Names of the faults the Server records (events.Event FaultName and
// Reason of events.Fault events).
const (
	FaultDelay  = "ident_delay"
	FaultError  = "ident_error"
	FaultSilent = "ident_silent"
)

// ReasonMalformed is the Reason of the IdentQuery event of a malformed
// request.
const ReasonMalformed = "malformed"

var (
	// ErrMalformed marks a line that is not an RFC 1413 request or reply.
	ErrMalformed = errors.New("ident: malformed line")
	// ErrInvalidPort marks a request whose ports are integers outside
	// 1..65535; ParseRequest still returns them so the reply can echo them.
	ErrInvalidPort = errors.New("ident: port out of range")
	// ErrErrorReply marks a Query answered with an ERROR reply.
	ErrErrorReply = errors.New("ident: error reply")
	// ErrNoAnswer marks a Query that got no usable answer: the identd
	// closed the connection without a reply line, or sent an empty,
	// over-long or unparseable line, or a reply for another port pair.
	ErrNoAnswer = errors.New("ident: no answer")
)

// Config is the identd's configuration. The zero value answers every valid
// query ERROR : NO-USER (no User); set User for USERID answers.
type Config struct {
	// User is the USERID answered for every valid query in ModeUserID,
	// e.g. "sender". Empty means every valid query is answered
	// ERROR : NO-USER (recorded as a FaultError, like ModeError).
	User string `json:"user"`
	// OS is the operating-system field of USERID replies; default "UNIX".
	OS string `json:"os"`
	// IdleTimeout closes a connection that sends no line for this long;
	// default DefaultIdleTimeout. Ignored in ModeSilent.
	IdleTimeout time.Duration `json:"idle_timeout_ns,omitempty"`
	// Mode is ModeUserID (the default when empty), ModeError, ModeSilent
	// or ModeClosed.
	Mode string `json:"mode,omitempty"`
	// Charset, if set, follows OS in USERID replies: "UNIX , US-ASCII".
	Charset string `json:"charset,omitempty"`
	// Error is the error type ModeError answers; default ErrNoUserType.
	// It must be one of RFC 1413's INVALID-PORT, NO-USER, HIDDEN-USER,
	// UNKNOWN-ERROR or an "X" token (see ValidErrorType). Unused in
	// other modes.
	Error string `json:"error,omitempty"`
	// Delay holds every answer (in ModeUserID and ModeError, answers to
	// malformed requests included) this long after its request arrives;
	// Close cuts it short, and the request is then not answered. Ignored
	// in ModeSilent and ModeClosed.
	Delay time.Duration `json:"delay_ns,omitempty"`
}

// Validate reports the first field of c that is not a valid configuration,
// naming it. It is stricter than New, which silently cleans User, OS,
// Charset and Error of characters that would break the reply line.
func (c Config) Validate() error {
	if err := c.checkBehaviour(); err != nil {
		return err
	}
	switch {
	case strings.ContainsAny(c.User, "\r\n\x00"):
		return fieldErr("User", c.User, "contains CR, LF or NUL")
	case len(c.User) > 512:
		return fieldErr("User", trunc(c.User), "is longer than RFC 1413's 512 octets")
	case c.OS != "" && !isToken(c.OS, 64, ","):
		return fieldErr("OS", c.OS, "must be 1-64 printable ASCII characters without space, ':' or ','")
	case c.Charset != "" && !isToken(c.Charset, 64, ","):
		return fieldErr("Charset", c.Charset, "must be 1-64 printable ASCII characters without space, ':' or ','")
	case c.IdleTimeout < 0:
		return fieldErr("IdleTimeout", c.IdleTimeout.String(), "is negative")
	}
	return nil
}

// checkBehaviour checks the fields New cannot repair; Listen refuses a
// Server whose (cleaned) configuration fails it.
func (c Config) checkBehaviour() error {
	switch c.Mode {
	case "", ModeUserID, ModeError, ModeSilent, ModeClosed:
	default:
		return fieldErr("Mode", c.Mode, "must be one of userid, error, silent, closed")
	}
	if c.Error != "" && !ValidErrorType(c.Error) {
		return fieldErr("Error", trunc(c.Error),
			"must be INVALID-PORT, NO-USER, HIDDEN-USER, UNKNOWN-ERROR or \"X\" and 1-63 token characters")
	}
	if c.Delay < 0 {
		return fieldErr("Delay", c.Delay.String(), "is negative")
	}
	return nil
}

func fieldErr(field, value, why string) error {
	return fmt.Errorf("identd config: %s %q %s", field, value, why)
}

// ValidErrorType reports whether s is an error type a server may send per
// RFC 1413: one of the four standard types (exact, upper case) or an
// <error-token>, "X" followed by 1-63 token characters (printable ASCII but
// space and ':').
func ValidErrorType(s string) bool {
	switch s {
	case ErrInvalidPortType, ErrNoUserType, ErrHiddenUserType, ErrUnknownType:
		return true
	}
	return len(s) >= 2 && s[0] == 'X' && isToken(s, 64, "")
}

// isToken: 1..max RFC 1413 token characters (printable ASCII without space
// and ':'), none of them in also.
func isToken(s string, max int, also string) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == ':' || strings.IndexByte(also, s[i]) >= 0 {
			return false
		}
	}
	return true
}

// Server answers RFC 1413 queries on any number of listeners until Close.
type Server struct {
	cfg Config
	log *events.Log

	seq       atomic.Int64
	malformed atomic.Int64
	done      chan struct{} // closed by Close; ends held answers

	mu     sync.Mutex
	closed bool
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// New returns a Server answering as cfg says and recording each query in
// log (which may be nil). Characters that would break the reply line (CR,
// LF, NUL; and ':' and ',' in OS and Charset) are removed from cfg, and
// defaults are filled in. New does not check Mode, Error or Delay; Listen
// does.
func New(cfg Config, log *events.Log) *Server {
	cfg.User = strings.Trim(clean(cfg.User, "\r\n\x00"), " \t")
	cfg.OS = strings.Trim(clean(cfg.OS, "\r\n\x00:,"), " \t")
	cfg.Charset = strings.Trim(clean(cfg.Charset, "\r\n\x00:,"), " \t")
	cfg.Error = strings.Trim(clean(cfg.Error, "\r\n\x00"), " \t")
	if cfg.OS == "" {
		cfg.OS = "UNIX"
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeUserID
	}
	if cfg.Mode == ModeError && cfg.Error == "" {
		cfg.Error = ErrNoUserType
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	return &Server{cfg: cfg, log: log, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
}

func clean(s, bad string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(bad, r) {
			return -1
		}
		return r
	}, s)
}

// Malformed is the number of malformed request lines read so far (the
// same requests whose IdentQuery event has Reason ReasonMalformed).
func (s *Server) Malformed() int { return int(s.malformed.Load()) }

// Listen starts serving TCP on addr (e.g. ":113" or "127.0.0.1:0") and
// returns the bound address; serving continues until Close. It refuses a
// configuration whose Mode, Error or Delay Validate rejects.
//
// In ModeClosed Listen binds nothing and returns (nil, nil): the role then
// runs without an identd, and queries to addr are refused by the kernel.
// Callers must not use the nil address.
func (s *Server) Listen(addr string) (net.Addr, error) {
	if err := s.cfg.checkBehaviour(); err != nil {
		return nil, err
	}
	if s.cfg.Mode == ModeClosed {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return nil, fmt.Errorf("identd listen %s: %w", addr, net.ErrClosed)
		}
		return nil, nil
	}
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

// Close stops every listener, drops open connections (held or silent ones
// included, unanswered) and waits for their goroutines, so no event is
// added after it returns.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
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
			select {
			case <-s.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
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
	silent := s.cfg.Mode == ModeSilent
	r := bufio.NewReaderSize(c, MaxLine)
	for {
		if silent {
			c.SetReadDeadline(time.Time{})
		} else {
			c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		raw, err := r.ReadSlice('\n')
		tooLong := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !tooLong && len(raw) == 0 {
			return
		}
		arrived := time.Now()
		line := strings.Trim(string(raw), " \t\r\n")
		seq := int(s.seq.Add(1))
		reply, malformed, errFault := s.answer(line, tooLong)

		q := events.Event{Kind: events.IdentQuery, Time: arrived, Host: host, Name: line, Seq: seq, Result: reply}
		if malformed {
			s.malformed.Add(1)
			q.Reason = ReasonMalformed
		}
		fault := func(name string, d time.Duration) {
			s.log.Add(events.Event{Kind: events.Fault, Time: arrived, Host: host, Name: line, Seq: seq,
				Reason: name, FaultName: name, Duration: d})
		}
		if silent {
			q.Result = ""
			fault(FaultSilent, 0)
			s.log.Add(q)
			if err != nil {
				return
			}
			continue
		}
		if errFault {
			fault(FaultError, 0)
		}
		if s.cfg.Delay > 0 {
			fault(FaultDelay, s.cfg.Delay)
			if !s.hold() {
				q.Result = ""
				s.log.Add(q)
				return
			}
		}
		// Log before answering so that a client holding the reply can rely
		// on the event being in the log already.
		s.log.Add(q)
		c.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
		_, werr := io.WriteString(c, reply+"\r\n")
		if werr != nil || err != nil {
			return
		}
	}
}

// hold waits out Config.Delay; false if Close came first.
func (s *Server) hold() bool {
	t := time.NewTimer(s.cfg.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// answer is the reply line (without CRLF) for one request line, whether the
// request was malformed, and whether the reply is the configured error
// (ModeError, or ModeUserID without a User) rather than a USERID.
func (s *Server) answer(line string, tooLong bool) (reply string, malformed, errFault bool) {
	if tooLong {
		return Reply{Error: ErrUnknownType}.String(), true, false
	}
	sp, cp, err := ParseRequest(line)
	switch {
	case errors.Is(err, ErrInvalidPort):
		return Reply{ServerPort: sp, ClientPort: cp, Error: ErrInvalidPortType}.String(), false, false
	case err != nil:
		return Reply{Error: ErrUnknownType}.String(), true, false
	case s.cfg.Mode == ModeError:
		return Reply{ServerPort: sp, ClientPort: cp, Error: s.cfg.Error}.String(), false, true
	case s.cfg.User == "":
		return Reply{ServerPort: sp, ClientPort: cp, Error: ErrNoUserType}.String(), false, true
	}
	return Reply{ServerPort: sp, ClientPort: cp, UserID: s.cfg.User, OS: s.cfg.OS, Charset: s.cfg.Charset}.String(), false, false
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
