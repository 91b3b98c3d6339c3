package sender

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
)

// fake is a receiving SMTP server for the tests: a real go-smtp server on
// 127.0.0.1 with a scripted backend. It records what it was sent and how
// many sessions were open at once, in all and per recipient host.
//
// A connection counts as open from accept until the server answers QUIT
// (or the connection ends otherwise). Its host is the domain of its first
// RCPT; it counts for that host from then on.
type fake struct {
	t    *testing.T
	addr string
	srv  *smtp.Server

	mu sync.Mutex
	// The script. Set it before the sender runs, or under mu. n counts
	// the commands of the kind over the server's life, from 1.
	mailErr func(n int, from string) error
	rcptErr func(n int, to string) error
	dataErr func(n int, rcpts []string) error // after the body was read
	drop    func(n int) bool                  // drop the connection in the middle of DATA
	hold    time.Duration                     // each DATA takes this long
	// quitDelay delays the answer to QUIT; the connection stops counting
	// as open just before the answer leaves.
	quitDelay time.Duration
	mute      bool // accept connections but never greet
	// noPipelining hides PIPELINING from the EHLO reply, as an RFC 1869
	// server without RFC 2920 would answer.
	noPipelining bool
	// silence, when it returns true for a reply line about to go out on
	// connection conn, makes that connection mute from then on: the reply
	// and every later one are swallowed, so the sender waits in the phase
	// that line answers.
	silence func(conn int, line []byte) bool

	// What happened.
	accepted   int // connections greeted
	mutedConns []net.Conn
	open, peak int
	hostOpen   map[string]int
	hostPeak   map[string]int
	mails      int
	rcpts      int
	datas      int
	drops      int
	deliveries []delivery
	violations []string
	reads      []string // every chunk the server read, in order, with its connection: "3 MAIL FROM:..."
}

type delivery struct {
	MessageID string
	From      string
	Rcpts     []string
	Conn      int
	Body      []byte
}

func newFake(t *testing.T) *fake {
	t.Helper()
	return newFakeAt(t, "127.0.0.1:0")
}

// newFakeAt starts a fake listening on addr.
func newFakeAt(t *testing.T, addr string) *fake {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{t: t, addr: ln.Addr().String(), hostOpen: map[string]int{}, hostPeak: map[string]int{}}
	f.srv = smtp.NewServer(smtp.BackendFunc(f.newSession))
	f.srv.Domain = "fake.test"
	f.srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.srv.Serve(&fakeListener{Listener: ln, f: f})
	}()
	t.Cleanup(func() {
		f.srv.Close()
		<-done
		f.mu.Lock()
		for _, c := range f.mutedConns {
			c.Close()
		}
		f.mu.Unlock()
	})
	return f
}

// set changes the script under the lock.
func (f *fake) set(change func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// get reads what happened under the lock.
func get[T any](f *fake, read func(f *fake) T) T {
	f.mu.Lock()
	defer f.mu.Unlock()
	return read(f)
}

type fakeListener struct {
	net.Listener
	f  *fake
	id int
}

func (l *fakeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		f := l.f
		f.mu.Lock()
		if f.mute {
			f.mutedConns = append(f.mutedConns, c)
			f.mu.Unlock()
			continue
		}
		l.id++
		f.accepted++
		f.open++
		f.peak = max(f.peak, f.open)
		fc := &fakeConn{Conn: c, f: f, id: l.id}
		f.mu.Unlock()
		return fc, nil
	}
}

// fakeConn is the server's side of one connection.
type fakeConn struct {
	net.Conn
	f  *fake
	id int

	// under f.mu
	host   string
	ended  bool
	silent bool
}

func (c *fakeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.f.mu.Lock()
		c.f.reads = append(c.f.reads, fmt.Sprintf("%d %s", c.id, b[:n]))
		c.f.mu.Unlock()
	}
	return n, err
}

// end stops counting c as open. Called with f.mu held.
func (c *fakeConn) end() {
	if c.ended {
		return
	}
	c.ended = true
	c.f.open--
	if c.host != "" {
		c.f.hostOpen[c.host]--
	}
}

func (c *fakeConn) Write(b []byte) (int, error) {
	c.f.mu.Lock()
	if c.f.silence != nil && !c.silent && c.f.silence(c.id, b) {
		c.silent = true
	}
	swallow := c.silent || c.f.noPipelining && string(b) == "250-PIPELINING\r\n"
	c.f.mu.Unlock()
	if swallow {
		return len(b), nil
	}
	if bytes.HasPrefix(b, []byte("221 ")) {
		c.f.mu.Lock()
		d := c.f.quitDelay
		c.f.mu.Unlock()
		time.Sleep(d)
		c.f.mu.Lock()
		c.end()
		c.f.mu.Unlock()
	}
	return c.Conn.Write(b)
}

func (c *fakeConn) Close() error {
	c.f.mu.Lock()
	c.end()
	c.f.mu.Unlock()
	return c.Conn.Close()
}

type fakeSession struct {
	f     *fake
	conn  *fakeConn
	from  string
	rcpts []string
}

func (f *fake) newSession(c *smtp.Conn) (smtp.Session, error) {
	fc, ok := c.Conn().(*fakeConn)
	if !ok {
		return nil, fmt.Errorf("fake: unexpected connection type %T", c.Conn())
	}
	return &fakeSession{f: f, conn: fc}, nil
}

func (s *fakeSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *fakeSession) Logout() error { return nil }

func (s *fakeSession) Mail(from string, _ *smtp.MailOptions) error {
	f := s.f
	f.mu.Lock()
	f.mails++
	n, script := f.mails, f.mailErr
	f.mu.Unlock()
	if script != nil {
		if err := script(n, from); err != nil {
			return err
		}
	}
	s.from = from
	return nil
}

func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	f := s.f
	host := strings.ToLower(to[strings.LastIndexByte(to, '@')+1:])
	f.mu.Lock()
	f.rcpts++
	n, script := f.rcpts, f.rcptErr
	switch c := s.conn; {
	case c.host == "":
		c.host = host
		f.hostOpen[host]++
		f.hostPeak[host] = max(f.hostPeak[host], f.hostOpen[host])
	case c.host != host:
		f.violations = append(f.violations, fmt.Sprintf("connection %d carried hosts %s and %s", c.id, c.host, host))
	}
	f.mu.Unlock()
	if script != nil {
		if err := script(n, to); err != nil {
			return err
		}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	f := s.f
	f.mu.Lock()
	f.datas++
	n, drop, script, hold := f.datas, f.drop, f.dataErr, f.hold
	f.mu.Unlock()
	if drop != nil && drop(n) {
		io.ReadFull(r, make([]byte, 10))
		f.mu.Lock()
		f.drops++
		f.mu.Unlock()
		s.conn.Conn.Close()
		return &smtp.SMTPError{Code: 421, Message: "dropped"}
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	time.Sleep(hold)
	if script != nil {
		if err := script(n, s.rcpts); err != nil {
			return err
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "fake: unparsable message: " + err.Error()}
	}
	f.mu.Lock()
	f.deliveries = append(f.deliveries, delivery{
		MessageID: m.Header.Get("Message-Id"),
		From:      s.from,
		Rcpts:     append([]string(nil), s.rcpts...),
		Conn:      s.conn.id,
		Body:      body,
	})
	f.mu.Unlock()
	return nil
}

func smtpErr(code int) error {
	return &smtp.SMTPError{Code: code, Message: fmt.Sprintf("fake says %d", code)}
}

// delivered counts deliveries of each "Message-ID recipient" pair.
func (f *fake) delivered() map[string]int {
	return get(f, func(f *fake) map[string]int {
		out := map[string]int{}
		for _, d := range f.deliveries {
			for _, r := range d.Rcpts {
				out[d.MessageID+" "+r]++
			}
		}
		return out
	})
}

// ---- the sending side ----

// testConfig is a quick sender configuration routing every .test host to
// addr.
func testConfig(t *testing.T, addr string) Config {
	return Config{
		Hostname:       "sender.test",
		QueueDir:       t.TempDir(),
		MaxConnections: 4,
		MaxPerHost:     2,
		IdleClose:      duration.Duration(30 * time.Millisecond),
		Retry:          []duration.Duration{duration.Duration(10 * time.Millisecond)},
		MaxAttempts:    100,
		Routes:         []Route{{Domain: ".test", Relay: addr}},
		ConnectTimeout: duration.Duration(5 * time.Second),
		CommandTimeout: duration.Duration(5 * time.Second),
		DataTimeout:    duration.Duration(5 * time.Second),
	}
}

// startSender starts a sender on cfg; the test's cleanup closes it.
func startSender(t *testing.T, cfg Config) (*Sender, *events.Log) {
	t.Helper()
	log := events.NewLog("sender")
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, log
}

func openQueue(t *testing.T, dir string) *Queue {
	t.Helper()
	q, err := OpenQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// put queues a message with the given Message-ID.
func put(t *testing.T, q *Queue, msgID, from string, rcpts ...string) Envelope {
	t.Helper()
	text := fmt.Sprintf("Message-ID: %s\nFrom: %s\nTo: %s\nSubject: test\n\nbody of %s\n", msgID, from, strings.Join(rcpts, ", "), msgID)
	env, err := q.Put(Envelope{From: from, Rcpts: rcpts, MessageID: msgID}, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func queueIDs(t *testing.T, q *Queue) []string {
	t.Helper()
	ids, err := q.IDs()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func queueEmpty(t *testing.T, q *Queue) func() bool {
	return func() bool { return len(queueIDs(t, q)) == 0 }
}

// countEvents counts the events of kind (and result, when not "").
func countEvents(log *events.Log, kind events.Kind, result string) int {
	n := 0
	for _, e := range log.Events() {
		if e.Kind == kind && (result == "" || e.Result == result) {
			n++
		}
	}
	return n
}

func eventsOf(log *events.Log, kind events.Kind) []events.Event {
	var out []events.Event
	for _, e := range log.Events() {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// checkOnce fails unless every wanted "Message-ID recipient" pair was
// delivered exactly once and nothing else was.
func checkOnce(t *testing.T, f *fake, want []string) {
	t.Helper()
	got := f.delivered()
	for _, k := range want {
		if got[k] != 1 {
			t.Errorf("%s delivered %d times, want 1", k, got[k])
		}
		delete(got, k)
	}
	for k, n := range got {
		t.Errorf("unexpected delivery of %s (%d times)", k, n)
	}
}
