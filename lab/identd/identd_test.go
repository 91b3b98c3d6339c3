package identd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// hang is how long a test waits for something that must happen before it
// calls it a hang and fails. Nothing asserts how long anything took.
const hang = 10 * time.Second

func start(t *testing.T, cfg Config) (*Server, *events.Log, string) {
	t.Helper()
	log := events.NewLog("identd")
	s := New(cfg, log)
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, log, addr.String()
}

// rawConn sends lines by hand so tests can say things Query never would.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A generous deadline only so a broken server fails the test instead of
	// hanging it; nothing asserts how long anything took.
	c.SetDeadline(time.Now().Add(hang))
	return &rawConn{t, c, bufio.NewReader(c)}
}

func (rc *rawConn) send(line string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, line); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawConn) ask(line string) string {
	rc.t.Helper()
	rc.send(line)
	got, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("reading reply to %q: %v", line, err)
	}
	if !strings.HasSuffix(got, "\r\n") {
		rc.t.Errorf("reply %q does not end in CRLF", got)
	}
	return strings.TrimSuffix(got, "\r\n")
}

// expectNoReply checks the server neither answers nor hangs up: a short
// read must end in a timeout because nothing arrives.
func (rc *rawConn) expectNoReply() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	b, err := rc.r.ReadByte()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		rc.t.Errorf("want no reply and an open connection; read %q, %v", b, err)
	}
	rc.c.SetReadDeadline(time.Now().Add(hang))
}

// expectDropped checks the server closed the connection without a reply.
func (rc *rawConn) expectDropped() {
	rc.t.Helper()
	got, err := rc.r.ReadString('\n')
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || got != "" {
		rc.t.Errorf("want the connection closed without a reply; read %q, %v", got, err)
	}
}

func ofKind(log *events.Log, kind events.Kind) []events.Event {
	var out []events.Event
	for _, e := range log.Events() {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// closeReturns runs s.Close and fails if it hangs.
func closeReturns(t *testing.T, s *Server) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(hang):
		t.Fatal("Close hung with a connection open")
	}
}

func TestServerReplies(t *testing.T) {
	s, log, addr := start(t, Config{User: "sender"})
	rc := dialRaw(t, addr)
	cases := []struct {
		req, want string
		malformed bool
	}{
		{"6193, 23\r\n", "6193, 23 : USERID : UNIX : sender", false},
		{"6193,23\r\n", "6193, 23 : USERID : UNIX : sender", false},
		{" 1 ,\t65535 \n", "1, 65535 : USERID : UNIX : sender", false},
		{"0, 25\r\n", "0, 25 : ERROR : INVALID-PORT", false},
		{"70000, 25\r\n", "70000, 25 : ERROR : INVALID-PORT", false},
		{"-1, 25\r\n", "-1, 25 : ERROR : INVALID-PORT", false},
		{"hello\r\n", "0, 0 : ERROR : UNKNOWN-ERROR", true},
		{"1.5, 25\r\n", "0, 0 : ERROR : UNKNOWN-ERROR", true},
		{"\r\n", "0, 0 : ERROR : UNKNOWN-ERROR", true},
		{"99999999999999999999999, 1\r\n", "0, 0 : ERROR : UNKNOWN-ERROR", true},
		{"1, 2, 3\r\n", "0, 0 : ERROR : UNKNOWN-ERROR", true},
		{"7, 8\r\n", "7, 8 : USERID : UNIX : sender", false},
	}
	nMalformed := 0
	for _, c := range cases {
		if got := rc.ask(c.req); got != c.want {
			t.Errorf("request %q: got %q, want %q", c.req, got, c.want)
		}
		if c.malformed {
			nMalformed++
		}
	}
	rc.c.Close()

	if got := s.Malformed(); got != nMalformed {
		t.Errorf("Malformed() = %d, want %d", got, nMalformed)
	}
	evs := log.Events()
	if len(evs) != len(cases) {
		t.Fatalf("got %d events, want %d (plain answers add no fault): %+v", len(evs), len(cases), evs)
	}
	for i, e := range evs {
		if e.Kind != events.IdentQuery || e.Role != "identd" {
			t.Errorf("event %d: kind %q role %q", i, e.Kind, e.Role)
		}
		if want := strings.Trim(cases[i].req, " \t\r\n"); e.Name != want {
			t.Errorf("event %d: name %q, want %q", i, e.Name, want)
		}
		if e.Result != cases[i].want {
			t.Errorf("event %d: result %q, want %q", i, e.Result, cases[i].want)
		}
		if e.Host != rc.c.LocalAddr().String() {
			t.Errorf("event %d: host %q, want %q", i, e.Host, rc.c.LocalAddr())
		}
		if e.Seq != i+1 {
			t.Errorf("event %d: seq %d, want %d", i, e.Seq, i+1)
		}
		if want := map[bool]string{true: ReasonMalformed}[cases[i].malformed]; e.Reason != want {
			t.Errorf("event %d (%q): reason %q, want %q", i, cases[i].req, e.Reason, want)
		}
	}
}

func TestServerConfig(t *testing.T) {
	_, log, addr := start(t, Config{User: " bob\r\n", OS: "OTHER:x"})
	if got, want := dialRaw(t, addr).ask("5, 6\r\n"), "5, 6 : USERID : OTHERx : bob"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if n := len(ofKind(log, events.Fault)); n != 0 {
		t.Errorf("plain USERID logged %d faults", n)
	}

	_, _, addr = start(t, Config{User: "u", OS: "UNIX", Charset: "US-ASCII"})
	if got, want := dialRaw(t, addr).ask("5, 6\r\n"), "5, 6 : USERID : UNIX , US-ASCII : u"; got != want {
		t.Errorf("charset: got %q, want %q", got, want)
	}
	r, err := Query(context.Background(), addr, 5, 6, hang)
	if want := (Reply{ServerPort: 5, ClientPort: 6, UserID: "u", OS: "UNIX", Charset: "US-ASCII"}); err != nil || r != want {
		t.Errorf("charset query: %+v, %v; want %+v", r, err, want)
	}

	// No user: NO-USER, which is an error behaviour and logged as one.
	_, log, addr = start(t, Config{})
	if got, want := dialRaw(t, addr).ask("5, 6\r\n"), "5, 6 : ERROR : NO-USER"; got != want {
		t.Errorf("empty user: got %q, want %q", got, want)
	}
	if f := ofKind(log, events.Fault); len(f) != 1 || f[0].FaultName != FaultError {
		t.Errorf("empty user: faults %+v, want one %s", f, FaultError)
	}
}

func TestServerLongLine(t *testing.T) {
	s, log, addr := start(t, Config{User: "sender"})
	rc := dialRaw(t, addr)
	// Write in the background: the server stops reading after MaxLine bytes,
	// so a blocking write of the whole line could deadlock on small buffers.
	// "1, 2" first: a line that starts well is still malformed if too long.
	go io.WriteString(rc.c, "1, 2"+strings.Repeat(" ", 64*1024)+"\r\n")
	got, err := rc.r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if want := "0, 0 : ERROR : UNKNOWN-ERROR\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// The connection is dropped rather than resynchronised.
	if _, err := rc.r.ReadString('\n'); err == nil {
		t.Error("connection still open after over-long line")
	}
	evs := log.Events()
	if len(evs) != 1 || len(evs[0].Name) > MaxLine || evs[0].Reason != ReasonMalformed {
		t.Fatalf("events: %+v", evs)
	}
	if s.Malformed() != 1 {
		t.Errorf("Malformed() = %d, want 1", s.Malformed())
	}
	// The server still serves everyone else.
	if _, err := Query(context.Background(), addr, 1, 2, hang); err != nil {
		t.Errorf("query after an over-long line: %v", err)
	}
}

func TestServerIdleClose(t *testing.T) {
	_, log, addr := start(t, Config{User: "sender", IdleTimeout: 50 * time.Millisecond})
	rc := dialRaw(t, addr)
	// Say nothing: the server must hang up on its own (the raw deadline of
	// 10 s turns a hang into a failure, not a pass). No query is sent first,
	// so a slow machine cannot make the idle timer fire mid-exchange.
	_, err := rc.r.ReadByte()
	if !errors.Is(err, io.EOF) {
		t.Errorf("after idle: got %v, want EOF", err)
	}
	if n := log.Counts()[events.IdentQuery]; n != 0 {
		t.Errorf("got %d events, want 0", n)
	}
}

func TestServerEOFPartialLine(t *testing.T) {
	_, _, addr := start(t, Config{User: "sender"})
	rc := dialRaw(t, addr)
	io.WriteString(rc.c, "9, 10")
	rc.c.(*net.TCPConn).CloseWrite()
	got, err := rc.r.ReadString('\n')
	if err != nil || got != "9, 10 : USERID : UNIX : sender\r\n" {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestModeError(t *testing.T) {
	for _, typ := range []string{"", ErrInvalidPortType, ErrNoUserType, ErrHiddenUserType, ErrUnknownType, "X-LAB", "XY"} {
		t.Run(typ, func(t *testing.T) {
			_, log, addr := start(t, Config{Mode: ModeError, Error: typ, User: "ignored"})
			want := typ
			if want == "" {
				want = ErrNoUserType
			}
			r, err := Query(context.Background(), addr, 40000, 25, hang)
			if !errors.Is(err, ErrErrorReply) || errors.Is(err, ErrNoAnswer) {
				t.Fatalf("got %v, want ErrErrorReply only", err)
			}
			if r != (Reply{ServerPort: 40000, ClientPort: 25, Error: want}) {
				t.Errorf("reply %+v, want error %q", r, want)
			}
			f, q := ofKind(log, events.Fault), ofKind(log, events.IdentQuery)
			if len(f) != 1 || len(q) != 1 {
				t.Fatalf("faults %+v, queries %+v", f, q)
			}
			if f[0].FaultName != FaultError || f[0].Reason != FaultError || f[0].Seq != 1 || q[0].Seq != 1 ||
				f[0].Name != "40000, 25" || f[0].Host != q[0].Host || f[0].Duration != 0 {
				t.Errorf("fault %+v beside query %+v", f[0], q[0])
			}
		})
	}

	// Bad requests still get the protocol's own errors, not the fault.
	_, log, addr := start(t, Config{Mode: ModeError, Error: ErrHiddenUserType})
	rc := dialRaw(t, addr)
	if got, want := rc.ask("0, 25\r\n"), "0, 25 : ERROR : INVALID-PORT"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := rc.ask("junk\r\n"), "0, 0 : ERROR : UNKNOWN-ERROR"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := rc.ask("3, 4\r\n"), "3, 4 : ERROR : HIDDEN-USER"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if f := ofKind(log, events.Fault); len(f) != 1 || f[0].Seq != 3 {
		t.Errorf("faults %+v, want one, for query 3", f)
	}
}

func TestModeDelay(t *testing.T) {
	const delay = 20 * time.Millisecond
	_, log, addr := start(t, Config{User: "sender", Delay: delay})
	r, err := Query(context.Background(), addr, 1, 2, hang)
	if err != nil || r.UserID != "sender" {
		t.Fatalf("got %+v, %v", r, err)
	}
	evs := log.Events()
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	f, q := evs[0], evs[1]
	if f.Kind != events.Fault || f.FaultName != FaultDelay || f.Duration != delay || f.Seq != 1 || f.Name != "1, 2" {
		t.Errorf("fault %+v", f)
	}
	if q.Kind != events.IdentQuery || q.Seq != 1 || q.Result != "1, 2 : USERID : UNIX : sender" {
		t.Errorf("query %+v", q)
	}

	// Delay and error together: both faults.
	_, log, addr = start(t, Config{Mode: ModeError, Delay: delay})
	if _, err := Query(context.Background(), addr, 1, 2, hang); !errors.Is(err, ErrErrorReply) {
		t.Fatalf("got %v", err)
	}
	names := map[string]int{}
	for _, e := range ofKind(log, events.Fault) {
		names[e.FaultName] = e.Seq
	}
	if len(names) != 2 || names[FaultDelay] != 1 || names[FaultError] != 1 {
		t.Errorf("faults by name (seq) %v", names)
	}
}

func TestModeDelayTimeout(t *testing.T) {
	s, log, addr := start(t, Config{User: "sender", Delay: time.Hour})
	_, err := Query(context.Background(), addr, 1, 2, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNoAnswer) || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("got %v, want only context.DeadlineExceeded", err)
	}
	labtest.Events(t, log, events.Fault, 1)
	closeReturns(t, s)
	// The held query is logged, unanswered, by the time Close returns.
	q := ofKind(log, events.IdentQuery)
	if len(q) != 1 || q[0].Result != "" || q[0].Seq != 1 {
		t.Errorf("queries %+v, want one unanswered", q)
	}
}

func TestCloseDuringDelay(t *testing.T) {
	s, log, addr := start(t, Config{User: "sender", Delay: time.Hour})
	rc := dialRaw(t, addr)
	rc.send("1, 2\r\n")
	labtest.Events(t, log, events.Fault, 1) // the server is holding the answer
	closeReturns(t, s)
	rc.expectDropped()
}

func TestModeSilent(t *testing.T) {
	// An idle timeout that would otherwise hang up at once: silent holds
	// regardless.
	s, log, addr := start(t, Config{Mode: ModeSilent, User: "sender", IdleTimeout: time.Nanosecond})
	a := dialRaw(t, addr)
	a.send("1, 2\r\n")
	labtest.Events(t, log, events.IdentQuery, 1)
	a.expectNoReply()

	// A second client is read and logged while the first is held, malformed
	// requests included, and is not answered either.
	b := dialRaw(t, addr)
	b.send("3, 4\r\nnonsense\r\n")
	q := labtest.Events(t, log, events.IdentQuery, 3)
	b.expectNoReply()
	a.send("5, 6\r\n")
	q = labtest.Events(t, log, events.IdentQuery, 4)
	a.expectNoReply()

	f := ofKind(log, events.Fault)
	if len(f) != 4 {
		t.Fatalf("faults %+v, want 4", f)
	}
	hosts := map[string]bool{}
	for i := range q {
		hosts[q[i].Host] = true
		if q[i].Result != "" || q[i].Seq != i+1 {
			t.Errorf("query %d: %+v", i, q[i])
		}
		if f[i].FaultName != FaultSilent || f[i].Seq != q[i].Seq || f[i].Name != q[i].Name {
			t.Errorf("fault %d: %+v beside %+v", i, f[i], q[i])
		}
	}
	if len(hosts) != 2 || q[2].Reason != ReasonMalformed || s.Malformed() != 1 {
		t.Errorf("hosts %v, query 3 %+v, malformed %d", hosts, q[2], s.Malformed())
	}

	// Query sees a timeout, not "no answer".
	if _, err := Query(context.Background(), addr, 1, 2, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNoAnswer) {
		t.Errorf("query: got %v, want DeadlineExceeded", err)
	}

	// Close returns with silent connections open and drops them.
	closeReturns(t, s)
	a.expectDropped()
	b.expectDropped()
}

func TestModeSilentClientCloses(t *testing.T) {
	s, log, addr := start(t, Config{Mode: ModeSilent})
	rc := dialRaw(t, addr)
	rc.send("1, 2\r\n")
	labtest.Events(t, log, events.IdentQuery, 1)
	rc.c.Close()
	// The server notices and frees the connection by itself.
	deadline := time.Now().Add(hang)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("silent server kept a connection its client closed")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// One stuck client, on this server or another, never blocks others.
func TestStuckClientBlocksNoOne(t *testing.T) {
	_, log, addr := start(t, Config{User: "sender"})
	// Half a request, never finished.
	stuck := dialRaw(t, addr)
	stuck.send("1, ")
	// A held answer on a delayed server and a held connection on a silent
	// one, in the same process.
	_, dlog, daddr := start(t, Config{User: "late", Delay: time.Hour})
	dialRaw(t, daddr).send("1, 2\r\n")
	_, slog, saddr := start(t, Config{Mode: ModeSilent})
	dialRaw(t, saddr).send("1, 2\r\n")
	labtest.Events(t, dlog, events.Fault, 1)
	labtest.Events(t, slog, events.IdentQuery, 1)

	r, err := Query(context.Background(), addr, 7, 25, hang)
	if err != nil || r.UserID != "sender" {
		t.Errorf("got %+v, %v", r, err)
	}
	// The stuck client can still finish its request and be answered.
	if got, want := stuck.ask("2\r\n"), "1, 2 : USERID : UNIX : sender"; got != want {
		t.Errorf("stuck client: got %q, want %q", got, want)
	}
	if n := len(ofKind(log, events.IdentQuery)); n != 2 {
		t.Errorf("%d queries logged, want 2", n)
	}
}

func TestModeClosed(t *testing.T) {
	// Find a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	log := events.NewLog("identd")
	s := New(Config{Mode: ModeClosed, User: "sender"}, log)
	got, err := s.Listen(addr)
	if got != nil || err != nil {
		t.Fatalf("Listen = %v, %v; want nil, nil", got, err)
	}
	// Nothing was bound: the address is still free.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("closed mode bound %s: %v", addr, err)
	}
	ln.Close()
	_, err = Query(context.Background(), addr, 1, 2, hang)
	if !errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, ErrNoAnswer) {
		t.Errorf("query: got %v, want connection refused", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := s.Listen(addr); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen after Close: %v", err)
	}
	if n := len(log.Events()); n != 0 {
		t.Errorf("%d events", n)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string // "" for valid
	}{
		{Config{User: "sender"}, ""},
		{Config{}, ""}, // answers NO-USER, as before Mode existed
		{Config{Mode: ModeUserID, User: "a b:c", OS: "OTHER", Charset: "US-ASCII", Delay: time.Second, IdleTimeout: time.Minute}, ""},
		{Config{Mode: ModeError}, ""},
		{Config{Mode: ModeError, Error: "INVALID-PORT"}, ""},
		{Config{Mode: ModeError, Error: "NO-USER"}, ""},
		{Config{Mode: ModeError, Error: "HIDDEN-USER"}, ""},
		{Config{Mode: ModeError, Error: "UNKNOWN-ERROR"}, ""},
		{Config{Mode: ModeError, Error: "X-LAB,1!"}, ""},
		{Config{Mode: ModeError, Error: "X" + strings.Repeat("y", 63)}, ""},
		{Config{Mode: ModeSilent}, ""},
		{Config{Mode: ModeClosed}, ""},

		{Config{Mode: "USERID"}, "Mode"},
		{Config{Mode: "drop"}, "Mode"},
		{Config{Mode: ModeError, Error: "no-user"}, "Error"},
		{Config{Mode: ModeError, Error: "HIDDEN-ERROR"}, "Error"},
		{Config{Mode: ModeError, Error: "X"}, "Error"},
		{Config{Mode: ModeError, Error: "X" + strings.Repeat("y", 64)}, "Error"},
		{Config{Mode: ModeError, Error: "X:Y"}, "Error"},
		{Config{Mode: ModeError, Error: "X Y"}, "Error"},
		{Config{Mode: ModeError, Error: "XÿY"}, "Error"},
		{Config{Mode: ModeError, Error: "OOPS"}, "Error"},
		{Config{Error: "NO-USER\r\n"}, "Error"},
		{Config{User: "a\r\nb"}, "User"},
		{Config{User: "a\x00"}, "User"},
		{Config{User: strings.Repeat("u", 513)}, "User"},
		{Config{User: "u", OS: "UNIX , US-ASCII"}, "OS"},
		{Config{User: "u", OS: "UN:IX"}, "OS"},
		{Config{User: "u", OS: "Windows NT"}, "OS"},
		{Config{User: "u", OS: strings.Repeat("o", 65)}, "OS"},
		{Config{User: "u", Charset: "US ASCII"}, "Charset"},
		{Config{User: "u", Charset: "a,b"}, "Charset"},
		{Config{User: "u", Delay: -time.Second}, "Delay"},
		{Config{User: "u", IdleTimeout: -time.Second}, "IdleTimeout"},
	} {
		err := c.cfg.Validate()
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.field != "" && err == nil:
			t.Errorf("%+v: valid, want an error naming %s", c.cfg, c.field)
		case c.field != "" && !strings.Contains(err.Error(), "identd config: "+c.field+" "):
			t.Errorf("%+v: %q does not name %s", c.cfg, err, c.field)
		}
	}
}

// Listen refuses what New cannot repair, and only that.
func TestListenChecksConfig(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Mode: "bogus", User: "u"}, "Mode"},
		{Config{Mode: ModeError, Error: "OOPS"}, "Error"},
		{Config{User: "u", Delay: -1}, "Delay"},
		{Config{Mode: ModeClosed, Error: "OOPS"}, "Error"},
	} {
		s := New(c.cfg, nil)
		addr, err := s.Listen("127.0.0.1:0")
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: Listen = %v, %v; want an error naming %s", c.cfg, addr, err, c.field)
		}
		s.Close()
	}
	// Text New cleans is no reason to refuse.
	_, _, addr := start(t, Config{Mode: ModeError, Error: " X-A\r\n", OS: "Windows NT"})
	if got, want := dialRaw(t, addr).ask("1, 2\r\n"), "1, 2 : ERROR : X-A"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestQuery(t *testing.T) {
	_, log, addr := start(t, Config{User: "sender", OS: "UNIX"})
	ctx := context.Background()
	r, err := Query(ctx, addr, 40000, 25, hang)
	if err != nil {
		t.Fatal(err)
	}
	want := Reply{ServerPort: 40000, ClientPort: 25, UserID: "sender", OS: "UNIX"}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	// Several queries, each on its own connection, all counted.
	for i := 1; i <= 5; i++ {
		if _, err := Query(ctx, addr, 1000+i, 25, hang); err != nil {
			t.Fatal(err)
		}
	}
	if n := log.Counts()[events.IdentQuery]; n != 6 {
		t.Errorf("got %d events, want 6", n)
	}

	if _, err := Query(ctx, addr, 0, 25, time.Second); !errors.Is(err, ErrInvalidPort) {
		t.Errorf("port 0: got %v, want ErrInvalidPort", err)
	}
	if n := log.Counts()[events.IdentQuery]; n != 6 {
		t.Errorf("invalid port was sent: %d events", n)
	}
}

func TestQueryErrorReply(t *testing.T) {
	_, _, addr := start(t, Config{})
	r, err := Query(context.Background(), addr, 1, 2, hang)
	if !errors.Is(err, ErrErrorReply) {
		t.Fatalf("got %v, want ErrErrorReply", err)
	}
	if !strings.Contains(err.Error(), "ident "+addr) || !strings.Contains(err.Error(), "NO-USER") {
		t.Errorf("error %q should name ident, the address and the error", err)
	}
	if r.Error != "NO-USER" || r.ServerPort != 1 || r.ClientPort != 2 {
		t.Errorf("reply %+v", r)
	}
}

func TestQueryDialFailure(t *testing.T) {
	// Bind then close to get a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Query(context.Background(), addr, 1, 2, hang)
	if err == nil || !strings.Contains(err.Error(), "ident "+addr) || errors.Is(err, ErrNoAnswer) {
		t.Errorf("got %v, want an ident dial error naming %s", err, addr)
	}
}

func TestQueryTimeout(t *testing.T) {
	_, _, addr := start(t, Config{Mode: ModeSilent})
	_, err := Query(context.Background(), addr, 1, 2, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want DeadlineExceeded", err)
	}
	// The caller's own deadline counts the same.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Query(ctx, addr, 1, 2, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx deadline: got %v, want DeadlineExceeded", err)
	}
}

func TestQueryCancel(t *testing.T) {
	_, log, addr := start(t, Config{Mode: ModeSilent})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Query(ctx, addr, 1, 2, 0)
		errc <- err
	}()
	// Cancel once the query is held, so it is the read that is cut short.
	labtest.Events(t, log, events.IdentQuery, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || errors.Is(err, ErrNoAnswer) {
		t.Errorf("got %v, want Canceled", err)
	}
}

// fake answers every connection with a fixed reply, to check Query's checks.
func fake(t *testing.T, reply string) string {
	return labtest.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(hang))
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, reply)
		c.Close()
	})
}

func TestQueryReplyForms(t *testing.T) {
	for _, c := range []struct {
		reply string
		want  Reply
	}{
		{"1, 2 : USERID : UNIX : sender\r\n", Reply{ServerPort: 1, ClientPort: 2, UserID: "sender", OS: "UNIX"}},
		{"1,2:USERID:UNIX:sender\r\n", Reply{ServerPort: 1, ClientPort: 2, UserID: "sender", OS: "UNIX"}},
		{" \t1 \t, \t2 \t: \tUSERID \t: \tUNIX \t: \tsender \t\r\n", Reply{ServerPort: 1, ClientPort: 2, UserID: "sender", OS: "UNIX"}},
		{"1, 2 : USERID : UNIX , US-ASCII : sender\r\n", Reply{ServerPort: 1, ClientPort: 2, UserID: "sender", OS: "UNIX", Charset: "US-ASCII"}},
		{"1, 2 : USERID : UNIX,US-ASCII : sender\r\n", Reply{ServerPort: 1, ClientPort: 2, UserID: "sender", OS: "UNIX", Charset: "US-ASCII"}},
		{"1, 2 : USERID : OTHER : 4a 5f\r\n", Reply{ServerPort: 1, ClientPort: 2, UserID: "4a 5f", OS: "OTHER"}},
		{"1, 2 : userid : OTHER , UTF-8 : a b : c:d\r\n", Reply{ServerPort: 1, ClientPort: 2, UserID: "a b : c:d", OS: "OTHER", Charset: "UTF-8"}},
		{"1, 2 : USERID : UNIX : no-crlf-before-close", Reply{ServerPort: 1, ClientPort: 2, UserID: "no-crlf-before-close", OS: "UNIX"}},
		{"1, 2 : USERID : UNIX : lf-only\n", Reply{ServerPort: 1, ClientPort: 2, UserID: "lf-only", OS: "UNIX"}},
	} {
		r, err := Query(context.Background(), fake(t, c.reply), 1, 2, hang)
		if err != nil || r != c.want {
			t.Errorf("reply %q: got %+v, %v; want %+v", c.reply, r, err, c.want)
		}
	}
	for _, typ := range []string{"INVALID-PORT", "NO-USER", "HIDDEN-USER", "UNKNOWN-ERROR", "X-SOMETHING", "X-A:B"} {
		for _, form := range []string{"1, 2 : ERROR : %s\r\n", "1,2:error:%s", "\t1 ,2\t:  ERROR\t:\t%s  \r\n"} {
			reply := fmt.Sprintf(form, typ)
			r, err := Query(context.Background(), fake(t, reply), 1, 2, hang)
			if !errors.Is(err, ErrErrorReply) || errors.Is(err, ErrNoAnswer) || r != (Reply{ServerPort: 1, ClientPort: 2, Error: typ}) {
				t.Errorf("reply %q: got %+v, %v", reply, r, err)
			}
		}
	}
}

func TestQueryNoAnswer(t *testing.T) {
	for _, reply := range []string{
		"3, 4 : USERID : UNIX : someone\r\n", // wrong port pair
		"2, 1 : USERID : UNIX : someone\r\n", // swapped
		"0, 0 : ERROR : UNKNOWN-ERROR\r\n",   // an answer to some other request
		"garbage\r\n",
		"1, 2 : MAYBE : x\r\n",
		"1, 2 : USERID : UNIX\r\n",
		"1, 2 : USERID : UNIX : \r\n",
		"1, 2 : USERID : UNIX , : x\r\n",
		"1, 2 : ERROR :\r\n",
		"1, 2 : USERID : UNIX : a\x00b\r\n",
		"\r\n", // empty line
		"",     // closed without a reply
		strings.Repeat("x", 2*MaxLine) + "\r\n",
	} {
		r, err := Query(context.Background(), fake(t, reply), 1, 2, hang)
		if !errors.Is(err, ErrNoAnswer) || errors.Is(err, ErrErrorReply) || errors.Is(err, context.DeadlineExceeded) || r != (Reply{}) {
			t.Errorf("reply %.40q: got %+v, %v; want ErrNoAnswer", reply, r, err)
		}
	}

	// Half a reply, then a reset: RFC 1413 counts a reply without its end
	// of line as none (only a clean close after the line is tolerated).
	rst := labtest.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(hang))
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "1, 2 : USERID : UNIX : ali")
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	if r, err := Query(context.Background(), rst, 1, 2, hang); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("half a reply and a reset: got %+v, %v; want ErrNoAnswer", r, err)
	}

	// Accepted and closed before even reading the request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Query(context.Background(), ln.Addr().String(), 1, 2, hang); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("accept and close: got %v, want ErrNoAnswer", err)
	}
}

func TestCloseStopsServing(t *testing.T) {
	s, _, addr := start(t, Config{User: "sender"})
	rc := dialRaw(t, addr)
	rc.ask("1, 2\r\n")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.r.ReadByte(); err == nil {
		t.Error("open connection survived Close")
	}
	if _, err := Query(context.Background(), addr, 1, 2, time.Second); err == nil {
		t.Error("query after Close succeeded")
	}
	if _, err := s.Listen("127.0.0.1:0"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestParseRequest(t *testing.T) {
	for _, c := range []struct {
		in     string
		sp, cp int
		err    error
	}{
		{"6193, 23", 6193, 23, nil},
		{"6193,23\r\n", 6193, 23, nil},
		{"\t1 , 65535 ", 1, 65535, nil},
		{"0, 23", 0, 23, ErrInvalidPort},
		{"23, 65536", 23, 65536, ErrInvalidPort},
		{"23", 0, 0, ErrMalformed},
		{"a, b", 0, 0, ErrMalformed},
		{"1, 2, 3", 0, 0, ErrMalformed},
		{"1 2, 3", 0, 0, ErrMalformed},
		{"", 0, 0, ErrMalformed},
	} {
		sp, cp, err := ParseRequest(c.in)
		if sp != c.sp || cp != c.cp || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("ParseRequest(%q) = %d, %d, %v; want %d, %d, %v", c.in, sp, cp, err, c.sp, c.cp, c.err)
		}
	}
}

func TestParseReply(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Reply
		ok   bool
	}{
		{"6193, 23 : USERID : UNIX : stjohns", Reply{ServerPort: 6193, ClientPort: 23, UserID: "stjohns", OS: "UNIX"}, true},
		{"6195, 23 : ERROR : NO-USER\r\n", Reply{ServerPort: 6195, ClientPort: 23, Error: "NO-USER"}, true},
		{"6193,23:userid:UNIX , US-ASCII:a b:c", Reply{ServerPort: 6193, ClientPort: 23, UserID: "a b:c", OS: "UNIX", Charset: "US-ASCII"}, true},
		{"6193,23:USERID:OTHER,UTF-8 , x:u", Reply{ServerPort: 6193, ClientPort: 23, UserID: "u", OS: "OTHER", Charset: "UTF-8 , x"}, true},
		{"0, 0 : ERROR : UNKNOWN-ERROR", Reply{Error: "UNKNOWN-ERROR"}, true},
		{"1, 2 : Error : X-A : b", Reply{ServerPort: 1, ClientPort: 2, Error: "X-A : b"}, true},
		{"6193, 23 : USERID : UNIX", Reply{}, false},
		{"6193, 23 : USERID : UNIX : ", Reply{}, false},
		{"6193, 23 : USERID : , US-ASCII : u", Reply{}, false},
		{"6193, 23 : USERID : UNIX , : u", Reply{}, false},
		{"6193, 23 : ERROR :", Reply{}, false},
		{"6193, 23 : MAYBE : x", Reply{}, false},
		{"6193 : USERID : UNIX : x", Reply{}, false},
		{"1, 2 : USERID : UNIX : a\x00b", Reply{}, false},
		{"1, 2 : USERID : UNIX : a\rb", Reply{}, false},
		{"", Reply{}, false},
	} {
		got, err := ParseReply(c.in)
		if (err == nil) != c.ok || got != c.want || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("ParseReply(%q) = %+v, %v; want %+v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestReplyString(t *testing.T) {
	for _, c := range []struct {
		r    Reply
		want string
	}{
		{Reply{ServerPort: 1, ClientPort: 2, UserID: "u", OS: "UNIX"}, "1, 2 : USERID : UNIX : u"},
		{Reply{ServerPort: 1, ClientPort: 2, UserID: "u", OS: "UNIX", Charset: "US-ASCII"}, "1, 2 : USERID : UNIX , US-ASCII : u"},
		{Reply{ServerPort: 1, ClientPort: 2, Error: "NO-USER"}, "1, 2 : ERROR : NO-USER"},
	} {
		if got := c.r.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.r, got, c.want)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"6193, 23", "6193,23\r\n", "0, 1", "70000, 1", "-1,2", "x", "", "1,2,3", " 1 ,\t2 ", "+1, 2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		sp, cp, err := ParseRequest(line)
		switch {
		case err == nil:
			if !validPort(sp) || !validPort(cp) {
				t.Fatalf("%q accepted with ports %d, %d", line, sp, cp)
			}
			// The canonical form must parse to the same pair.
			sp2, cp2, err2 := ParseRequest(fmt.Sprintf("%d, %d", sp, cp))
			if err2 != nil || sp2 != sp || cp2 != cp {
				t.Fatalf("%q: canonical form gave %d, %d, %v", line, sp2, cp2, err2)
			}
		case errors.Is(err, ErrInvalidPort):
			if validPort(sp) && validPort(cp) {
				t.Fatalf("%q: ErrInvalidPort with valid ports %d, %d", line, sp, cp)
			}
		case !errors.Is(err, ErrMalformed):
			t.Fatalf("%q: unexpected error kind %v", line, err)
		default:
			if sp != 0 || cp != 0 {
				t.Fatalf("%q: malformed but ports %d, %d", line, sp, cp)
			}
		}
	})
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"6193, 23 : USERID : UNIX : stjohns",
		"6195, 23 : ERROR : NO-USER\r\n",
		"1,2:USERID:OTHER , UTF-8:a:b",
		"1,2:USERID:OTHER , :a",
		"1,2:USERID:OTHER,A,B:a",
		"0, 0 : ERROR : UNKNOWN-ERROR",
		"1, 2 : ERROR : X-THING : more",
		"1, 2 : ERROR : HIDDEN-USER",
		"::::", "", "1,2:", "1, 2 : USERID : UNIX : \x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseReply(line)
		if err != nil {
			if r != (Reply{}) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("%q: error %v with reply %+v", line, err, r)
			}
			return
		}
		if (r.Error == "") == (r.UserID == "") {
			t.Fatalf("%q: want exactly one of Error and UserID: %+v", line, r)
		}
		if r.Error != "" && (r.OS != "" || r.Charset != "") || r.UserID != "" && r.OS == "" {
			t.Fatalf("%q: fields of the wrong reply type: %+v", line, r)
		}
		if strings.ContainsAny(r.OS, ":,") || strings.Contains(r.Charset, ":") {
			t.Fatalf("%q: separator inside opsys field: %+v", line, r)
		}
		// What we parsed must format to a line that parses back the same,
		// so a reply can be logged and re-read without drift.
		r2, err := ParseReply(r.String())
		if err != nil || r2 != r {
			t.Fatalf("%q: round trip %q gave %+v, %v; want %+v", line, r.String(), r2, err, r)
		}
	})
}

// FuzzServer sends arbitrary bytes to one running Server over a real socket:
// every reply line must parse and answer its request, a malformed request
// must be counted, and the Server must go on answering other clients.
func FuzzServer(f *testing.F) {
	for _, s := range []string{
		"1, 2\r\n", "1, 2\r\n3, 4\r\n", "junk\r\n1, 2", "0, 0\r\n", "\r\n\r\n",
		"1, 2" + strings.Repeat(" ", MaxLine) + "\r\n", "\x00\xff\r\n", "65535,65535",
	} {
		f.Add(s)
	}
	s := New(Config{User: "fuzz"}, events.NewLog("identd"))
	a, err := s.Listen("127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	addr := a.String()
	f.Fuzz(func(t *testing.T, in string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(hang))
		before := s.Malformed()
		// Write in the background: the server stops reading an over-long
		// line, so a blocking write could deadlock.
		go func() {
			io.WriteString(c, in)
			c.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%q: server neither answered nor closed", in)
		}
		// A reset after an over-long line may lose the tail; whatever
		// full lines arrived must be valid replies.
		lines := strings.SplitAfter(string(out), "\r\n")
		malformed := 0
		for _, l := range lines {
			if !strings.HasSuffix(l, "\r\n") {
				if l != "" && err == nil {
					t.Fatalf("%q: reply %q without CRLF", in, l)
				}
				continue
			}
			r, perr := ParseReply(l)
			if perr != nil {
				t.Fatalf("%q: server sent unparseable %q: %v", in, l, perr)
			}
			if r.UserID != "" && r.UserID != "fuzz" {
				t.Fatalf("%q: reply %q", in, l)
			}
			if r.Error == ErrUnknownType {
				malformed++
			}
		}
		// Only malformed requests get UNKNOWN-ERROR; unless a reset lost
		// replies, each was counted exactly once.
		if got := s.Malformed() - before; got < malformed || err == nil && got != malformed {
			t.Fatalf("%q: %d UNKNOWN-ERROR replies (read error %v) but Malformed grew by %d", in, malformed, err, got)
		}
		if _, err := Query(context.Background(), addr, 1, 2, hang); err != nil {
			t.Fatalf("after %q: %v", in, err)
		}
	})
}
