package receiver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/smtplab/smtplab/lab/events"
)

// The speed benchmark (issue "Speed"): every check off, 40 senders on
// loopback each keeping one ESMTP session open and sending small messages,
// one after another, until b.N messages have been accepted in all. Run as
//
//	go test -run '^$' -bench Receive -benchtime 20000x -count 3 ./lab/receiver/
//
// ns/op and msgs/s are per message, timed from the first MAIL to the last
// 250 after a dot (the 40 connections and their EHLO are made before the
// timer starts, QUIT after it stops). The Maildir is in b.TempDir() unless
// $SMTPLAB_BENCH_DIR names another base folder. Each run checks that exactly b.N
// files are in new/ and none in tmp/.
//
// BenchmarkReceive runs the senders in this process, so allocs/op and B/op
// count the go-smtp clients' allocations as well as the receiver's.
// BenchmarkReceiveExternal runs the same senders in a child process (this
// test binary re-executed), so its allocs/op, B/op and a -cpuprofile are
// the receiver's alone; the two share the machine's cores either way.

const (
	benchSenders = 40
	benchEnv     = "SMTPLAB_BENCH_SENDERS" // "addr n senders": be the child
	benchMark    = "smtplab-bench "        // prefix of the child's lines to the parent
)

func BenchmarkReceive(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run(fsyncName(fsync), func(b *testing.B) { benchReceive(b, fsync, false) })
	}
}

func BenchmarkReceiveExternal(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run(fsyncName(fsync), func(b *testing.B) { benchReceive(b, fsync, true) })
	}
}

// benchDir is where the Maildir goes: b.TempDir(), or a fresh folder under
// $SMTPLAB_BENCH_DIR (say /dev/shm, to take the file system's cost of
// creating files out of the figure).
func benchDir(b *testing.B) string {
	base := os.Getenv("SMTPLAB_BENCH_DIR")
	if base == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(base, "smtplab-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func fsyncName(on bool) string {
	if on {
		return "fsync=on"
	}
	return "fsync=off"
}

func benchReceive(b *testing.B, fsync, external bool) {
	cfg := Config{
		Hostname: hostname,
		Admission: Admission{
			MaxSessions: benchSenders,
			ReverseDNS:  false,
			Blacklists:  nil,
			Ident:       false,
		},
		Delivery: Delivery{
			LocalDomains: []string{".example.com"},
			Account:      account,
			Maildir:      filepath.Join(benchDir(b), "Maildir"),
			NoFsync:      !fsync,
		},
	}
	log := events.NewLog("receiver")
	srv, err := New(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	a, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	addr := a.String()

	if external {
		runExternalSenders(b, addr)
	} else {
		cs, err := dialSenders(addr, benchSenders)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		err = sendAll(cs, b.N)
		b.StopTimer()
		quitAll(cs)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")

	// Close waits for every session: the Maildir and the log are final.
	if err := srv.Close(); err != nil {
		b.Fatal(err)
	}
	for sub, want := range map[string]int{"new": b.N, "tmp": 0, "cur": 0} {
		ents, err := os.ReadDir(filepath.Join(cfg.Maildir, sub))
		if err != nil {
			b.Fatal(err)
		}
		if len(ents) != want {
			b.Fatalf("%d files in %s/ after %d messages accepted, want %d", len(ents), sub, b.N, want)
		}
	}
	if got := log.Counts()[events.Delivered]; got != b.N {
		b.Fatalf("%d Delivered events for %d messages", got, b.N)
	}
}

// runExternalSenders runs the senders in a child process and times from
// its first MAIL to its last 250.
func runExternalSenders(b *testing.B, addr string) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestReceiveBenchSenders$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", benchEnv, addr, b.N, benchSenders))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ended := false
	defer func() {
		if !ended { // failed: do not leave the child behind
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := bufio.NewScanner(stdout)
	next := func() string {
		for lines.Scan() {
			if l, ok := strings.CutPrefix(lines.Text(), benchMark); ok {
				return l
			}
		}
		return "error: sender process ended: " + fmt.Sprint(lines.Err())
	}
	if l := next(); l != "ready" {
		b.Fatalf("sender process: %s", l)
	}
	b.ReportAllocs()
	b.ResetTimer()
	io.WriteString(stdin, "go\n")
	l := next()
	b.StopTimer()
	if l != "done" {
		b.Fatalf("sender process: %s", l)
	}
	stdin.Close()
	io.Copy(io.Discard, stdout) // the child QUITs its sessions and exits
	ended = true
	if err := cmd.Wait(); err != nil {
		b.Fatalf("sender process: %v", err)
	}
}

// TestReceiveBenchSenders is not a test: it is BenchmarkReceiveExternal's
// child process, and skips unless started as one.
func TestReceiveBenchSenders(t *testing.T) {
	spec := os.Getenv(benchEnv)
	if spec == "" {
		t.Skip("only run as BenchmarkReceiveExternal's sender process")
	}
	var (
		addr       string
		n, senders int
	)
	if _, err := fmt.Sscan(spec, &addr, &n, &senders); err != nil {
		t.Fatalf("%s=%q: %v", benchEnv, spec, err)
	}
	fail := func(err error) {
		fmt.Printf("%serror: %v\n", benchMark, err)
		t.Fatal(err)
	}
	cs, err := dialSenders(addr, senders)
	if err != nil {
		fail(err)
	}
	fmt.Printf("%sready\n", benchMark)
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fail(fmt.Errorf("waiting for go: %w", err))
	}
	if err := sendAll(cs, n); err != nil {
		fail(err)
	}
	fmt.Printf("%sdone\n", benchMark)
	quitAll(cs)
}

// dialSenders opens k sessions to addr, each greeted and past EHLO.
func dialSenders(addr string, k int) ([]*smtp.Client, error) {
	cs := make([]*smtp.Client, 0, k)
	for i := 0; i < k; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			quitAll(cs)
			return nil, err
		}
		c := smtp.NewClient(conn)
		if err := c.Hello(heloName); err != nil {
			c.Close()
			quitAll(cs)
			return nil, fmt.Errorf("EHLO: %w", err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// sendAll sends n messages over the sessions cs, all at once, each session
// taking the next message number until n are taken. It returns once every
// message has been answered; the first error stops every session.
func sendAll(cs []*smtp.Client, n int) error {
	var (
		next    atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var msg, rcpt []byte
			for !stop.Load() {
				i := int(next.Add(1))
				if i > n {
					return
				}
				msg, rcpt = benchMessage(msg[:0], rcpt[:0], i)
				if err := sendOne(c, string(rcpt), msg); err != nil {
					errOnce.Do(func() { first = fmt.Errorf("message %d: %w", i, err) })
					stop.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// benchMessage is message i as the 1999 benchmark's loop writes it (From,
// To, Subject "test i", body "test i") plus a Message-ID, and its
// recipient: about 150 bytes.
func benchMessage(msg, rcpt []byte, i int) ([]byte, []byte) {
	f := i%20 + 1 // the 1999 benchmark's $f, 1..20
	rcpt = append(rcpt, "recipient-foo-"...)
	rcpt = strconv.AppendInt(rcpt, int64(f), 10)
	rcpt = append(rcpt, '@')
	rcpt = strconv.AppendInt(rcpt, int64(f), 10)
	rcpt = append(rcpt, ".foo.example.com"...)
	msg = append(msg, "From: sender\r\nTo: recipient\r\nSubject: test "...)
	msg = strconv.AppendInt(msg, int64(i), 10)
	msg = append(msg, "\r\nMessage-ID: <"...)
	msg = strconv.AppendInt(msg, int64(i), 10)
	msg = append(msg, ".bench@sender.lab.example.net>\r\n\r\ntest "...)
	msg = strconv.AppendInt(msg, int64(i), 10)
	msg = append(msg, "\r\n"...)
	return msg, rcpt
}

func sendOne(c *smtp.Client, rcpt string, msg []byte) error {
	if err := c.Mail("sender@example.com", nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return nil
}

func quitAll(cs []*smtp.Client) {
	for _, c := range cs {
		if err := c.Quit(); err != nil && !errors.Is(err, net.ErrClosed) {
			c.Close()
		}
	}
}
