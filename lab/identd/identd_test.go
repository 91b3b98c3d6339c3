package identd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/events"
)

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
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t, c, bufio.NewReader(c)}
}

func (rc *rawConn) ask(line string) string {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, line); err != nil {
		rc.t.Fatal(err)
	}
	got, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("reading reply to %q: %v", line, err)
	}
	if !strings.HasSuffix(got, "\r\n") {
		rc.t.Errorf("reply %q does not end in CRLF", got)
	}
	return strings.TrimSuffix(got, "\r\n")
}

func TestServerReplies(t *testing.T) {
	_, log, addr := start(t, Config{User: "sender"})
	rc := dialRaw(t, addr)
	cases := []struct{ req, want string }{
		{"6193, 23\r\n", "6193, 23 : USERID : UNIX : sender"},
		{"6193,23\r\n", "6193, 23 : USERID : UNIX : sender"},
		{" 1 ,\t65535 \n", "1, 65535 : USERID : UNIX : sender"},
		{"0, 25\r\n", "0, 25 : ERROR : INVALID-PORT"},
		{"70000, 25\r\n", "70000, 25 : ERROR : INVALID-PORT"},
		{"-1, 25\r\n", "-1, 25 : ERROR : INVALID-PORT"},
		{"hello\r\n", "0, 0 : ERROR : UNKNOWN-ERROR"},
		{"1.5, 25\r\n", "0, 0 : ERROR : UNKNOWN-ERROR"},
		{"\r\n", "0, 0 : ERROR : UNKNOWN-ERROR"},
		{"99999999999999999999999, 1\r\n", "0, 0 : ERROR : UNKNOWN-ERROR"},
	}
	for _, c := range cases {
		if got := rc.ask(c.req); got != c.want {
			t.Errorf("request %q: got %q, want %q", c.req, got, c.want)
		}
	}
	rc.c.Close()

	evs := log.Events()
	if len(evs) != len(cases) {
		t.Fatalf("got %d events, want %d", len(evs), len(cases))
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
	}
}

func TestServerConfig(t *testing.T) {
	_, _, addr := start(t, Config{User: " bob\r\n", OS: "OTHER:x"})
	if got, want := dialRaw(t, addr).ask("5, 6\r\n"), "5, 6 : USERID : OTHERx : bob"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, _, addr = start(t, Config{})
	if got, want := dialRaw(t, addr).ask("5, 6\r\n"), "5, 6 : ERROR : NO-USER"; got != want {
		t.Errorf("empty user: got %q, want %q", got, want)
	}
}

func TestServerLongLine(t *testing.T) {
	_, log, addr := start(t, Config{User: "sender"})
	rc := dialRaw(t, addr)
	// Write in the background: the server stops reading after MaxLine bytes,
	// so a blocking write of the whole line could deadlock on small buffers.
	go io.WriteString(rc.c, strings.Repeat("1", 64*1024)+"\r\n")
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
	if len(evs) != 1 || len(evs[0].Name) > MaxLine {
		t.Errorf("events: %d, name length %d", len(evs), len(evs[0].Name))
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

func TestQuery(t *testing.T) {
	_, log, addr := start(t, Config{User: "sender", OS: "UNIX"})
	ctx := context.Background()
	r, err := Query(ctx, addr, 40000, 25, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := Reply{ServerPort: 40000, ClientPort: 25, UserID: "sender", OS: "UNIX"}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	// Several queries, each on its own connection, all counted.
	for i := 1; i <= 5; i++ {
		if _, err := Query(ctx, addr, 1000+i, 25, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := log.Counts()[events.IdentQuery]; n != 6 {
		t.Errorf("got %d events, want 6", n)
	}

	if _, err := Query(ctx, addr, 0, 25, time.Second); !errors.Is(err, ErrInvalidPort) {
		t.Errorf("port 0: got %v, want ErrInvalidPort", err)
	}
}

func TestQueryErrorReply(t *testing.T) {
	_, _, addr := start(t, Config{})
	r, err := Query(context.Background(), addr, 1, 2, 5*time.Second)
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
	_, err = Query(context.Background(), addr, 1, 2, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "ident "+addr) {
		t.Errorf("got %v, want an ident dial error naming %s", err, addr)
	}
}

// silent accepts connections and never answers, like an identd behind a
// firewall that swallows replies.
func silent(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Hold the connection until the client hangs up.
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func TestQueryTimeout(t *testing.T) {
	addr := silent(t)
	_, err := Query(context.Background(), addr, 1, 2, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want DeadlineExceeded", err)
	}
}

func TestQueryCancel(t *testing.T) {
	addr := silent(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Query(ctx, addr, 1, 2, 0)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want Canceled", err)
	}
}

// fake answers every connection with a fixed reply, to check Query's checks.
func fake(t *testing.T, reply string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, reply)
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestQueryBadReplies(t *testing.T) {
	for _, reply := range []string{
		"3, 4 : USERID : UNIX : someone\r\n", // wrong port pair
		"garbage\r\n",
		"",
		strings.Repeat("x", 2*MaxLine) + "\r\n",
	} {
		addr := fake(t, reply)
		if _, err := Query(context.Background(), addr, 1, 2, 5*time.Second); err == nil {
			t.Errorf("reply %.40q: no error", reply)
		}
	}
	// A reply without CRLF before close is still a reply.
	addr := fake(t, "1, 2 : USERID : UNIX : a:b c")
	r, err := Query(context.Background(), addr, 1, 2, 5*time.Second)
	if err != nil || r.UserID != "a:b c" {
		t.Errorf("got %+v, %v", r, err)
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
		{"6193, 23 : USERID : UNIX : stjohns", Reply{6193, 23, "stjohns", "UNIX", ""}, true},
		{"6195, 23 : ERROR : NO-USER\r\n", Reply{6195, 23, "", "", "NO-USER"}, true},
		{"6193,23:userid:UNIX , US-ASCII:a b:c", Reply{6193, 23, "a b:c", "UNIX , US-ASCII", ""}, true},
		{"0, 0 : ERROR : UNKNOWN-ERROR", Reply{0, 0, "", "", "UNKNOWN-ERROR"}, true},
		{"6193, 23 : USERID : UNIX", Reply{}, false},
		{"6193, 23 : USERID : UNIX : ", Reply{}, false},
		{"6193, 23 : ERROR :", Reply{}, false},
		{"6193, 23 : MAYBE : x", Reply{}, false},
		{"6193 : USERID : UNIX : x", Reply{}, false},
		{"1, 2 : USERID : UNIX : a\x00b", Reply{}, false},
	} {
		got, err := ParseReply(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseReply(%q) = %+v, %v; want %+v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"6193, 23", "6193,23\r\n", "0, 1", "70000, 1", "-1,2", "x", "", "1,2,3", " 1 ,\t2 "} {
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
		}
	})
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"6193, 23 : USERID : UNIX : stjohns",
		"6195, 23 : ERROR : NO-USER\r\n",
		"1,2:USERID:OTHER , UTF-8:a:b",
		"0, 0 : ERROR : UNKNOWN-ERROR",
		"1, 2 : ERROR : X-THING : more",
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
		// What we parsed must format to a line that parses back the same,
		// so a reply can be logged and re-read without drift.
		r2, err := ParseReply(r.String())
		if err != nil || r2 != r {
			t.Fatalf("%q: round trip %q gave %+v, %v; want %+v", line, r.String(), r2, err, r)
		}
	})
}
