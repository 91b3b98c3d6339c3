package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSenderAgainstSmtpSource: the sender delivering a pre-filled
// queue of SMTPLAB_SEND_MESSAGES messages (default 5,000) over 40
// sessions to Postfix's smtp-sink, beside Postfix's smtp-source sending
// as many over 40 sessions to the same smtp-sink process. Each round
// (one per b.N) runs the five in turn, interleaved so that the
// machine's load falls on all alike: smtp-source, the sender with its
// queue's fsyncs off, with them on, with them off and one P
// (GOMAXPROCS 1), and the sender's SMTP client alone (client, below),
// each round starting with the next of them, each run
// once the earlier runs' connections have left TIME_WAIT (settle; about
// a minute). It reports each one's median msgs/s over the rounds and the
// ratios of the medians to smtp-source's: the figures of
// docs/PERFORMANCE.md. smtp-sink and smtp-source come from Debian's
// postfix package; without them the benchmark skips.
//
//	go test -run '^$' -bench SenderAgainstSmtpSource -benchtime 3x ./lab/sender/
func BenchmarkSenderAgainstSmtpSource(b *testing.B) {
	sourceBin, addr, n := postfixBench(b, 5000)
	// Each run gives its msgs/s and its own CPU time (user and system) per
	// message in µs, which the machine's load disturbs less.
	source := func() (float64, float64) {
		return runSource(b, sourceBin, addr, n, "-t", "recipient-foo-1@1.foo.test")
	}
	send := func(noFsync bool) (float64, float64) {
		b.StopTimer()
		defer b.StartTimer()
		cfg := benchConfig(b, addr, noFsync)
		q, err := OpenQueue(cfg.QueueDir)
		if err != nil {
			b.Fatal(err)
		}
		q.noFsync = noFsync
		fill(b, q, n)
		return timedDrain(b, cfg, n)
	}
	// oneP is send with one P (GOMAXPROCS 1: one thread running Go code
	// at a time, as smtp-source is one thread), restored after.
	oneP := func(noFsync bool) (float64, float64) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		return send(noFsync)
	}
	// client is the sender's SMTP client alone (smtpclient.go: dial,
	// greeting, EHLO, the pipelined transaction, QUIT), on 40 goroutines
	// each sending message after message from memory, one connection
	// each, as smtp-source does: no queue file read or removed, no
	// scheduler. What the sender costs beyond it is its queue and its
	// courierd model.
	client := func() (float64, float64) {
		b.StopTimer()
		defer b.StartTimer()
		text := []byte("Message-ID: <c@bench.test>\nFrom: sender\nTo: recipient\nSubject: test\n\ntest\n")
		rcpts := []string{"recipient-foo-1@1.foo.test"}
		var left atomic.Int64
		left.Store(int64(n))
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		start, cpu0 := time.Now(), ownCPU(b)
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					c, err := dialSMTP(context.Background(), addr, "sender.test", CourierTimeouts, nil)
					if err != nil {
						errs <- err
						return
					}
					if o := c.transaction("sender@example.test", rcpts, text); !o.sent {
						errs <- fmt.Errorf("not sent: %+v", o)
						return
					}
					c.quit()
				}
			}()
		}
		wg.Wait()
		elapsed, cpu := time.Since(start), ownCPU(b)-cpu0
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		return float64(n) / elapsed.Seconds(), float64(cpu.Microseconds()) / float64(n)
	}
	var src, off, on, off1, cli, srcCPU, offCPU, onCPU, off1CPU, cliCPU []float64
	runs := []func(){
		func() { r, c := source(); src, srcCPU = append(src, r), append(srcCPU, c) },
		func() { r, c := send(true); off, offCPU = append(off, r), append(offCPU, c) },
		func() { r, c := send(false); on, onCPU = append(on, r), append(onCPU, c) },
		func() { r, c := oneP(true); off1, off1CPU = append(off1, r), append(off1CPU, c) },
		func() { r, c := client(); cli, cliCPU = append(cli, r), append(cliCPU, c) },
	}
	for round := 0; b.Loop(); round++ {
		// Each round starts with a different one, and each run with no
		// connection of an earlier one in TIME_WAIT: all of them open a
		// connection per message (smtp-source without -d; the sender, as
		// Courier, turns sessions over under a backlog), and connecting
		// costs more CPU with every port still in TIME_WAIT, so the runs
		// later in a series would be slower for that alone.
		for k := range runs {
			b.StopTimer()
			settle(b, addr)
			b.StartTimer()
			runs[(round+k)%len(runs)]()
		}
		i := len(src) - 1
		b.Logf("round %d: msgs/s (CPU µs/msg): smtp-source %.0f (%.0f), sender fsync off %.0f (%.0f), on %.0f (%.0f), fsync off with one P %.0f (%.0f), its SMTP client alone %.0f (%.0f)",
			i+1, src[i], srcCPU[i], off[i], offCPU[i], on[i], onCPU[i], off1[i], off1CPU[i], cli[i], cliCPU[i])
	}
	ms, moff, mon, moff1 := median(src), median(off), median(on), median(off1)
	b.ReportMetric(ms, "source-msgs/s")
	b.ReportMetric(moff, "sender-nofsync-msgs/s")
	b.ReportMetric(mon, "sender-fsync-msgs/s")
	b.ReportMetric(moff/ms, "nofsync-ratio")
	b.ReportMetric(moff1/ms, "nofsync-oneP-ratio")
	b.ReportMetric(mon/ms, "fsync-ratio")
	b.ReportMetric(median(srcCPU), "source-cpu-µs/msg")
	b.ReportMetric(median(offCPU), "sender-nofsync-cpu-µs/msg")
	b.ReportMetric(median(off1CPU), "sender-nofsync-oneP-cpu-µs/msg")
	b.ReportMetric(median(cli)/ms, "client-alone-ratio")
	b.ReportMetric(median(cliCPU), "client-alone-cpu-µs/msg")
}

// timedDrain starts a sender on cfg, whose queue holds n messages, and
// waits until the queue is empty: the messages per second and this
// process's CPU time per message (µs) from the start to then.
func timedDrain(b *testing.B, cfg Config, n int) (float64, float64) {
	start, cpu0 := time.Now(), ownCPU(b)
	defer runningSender(b, cfg).Close()
	for {
		empty, err := drained(cfg.QueueDir)
		if err != nil {
			b.Fatal(err)
		}
		if empty {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed, cpu := time.Since(start), ownCPU(b)-cpu0
	return float64(n) / elapsed.Seconds(), float64(cpu.Microseconds()) / float64(n)
}

// postfixBench is what both benchmarks against Postfix's tools start
// with: smtp-source's path, the address of a smtp-sink started for b
// (stopped when b ends) and the messages a run (SMTPLAB_SEND_MESSAGES,
// else defaultN). Without smtp-sink and smtp-source, b skips.
func postfixBench(b *testing.B, defaultN int) (sourceBin, addr string, n int) {
	sinkBin, err1 := exec.LookPath("smtp-sink")
	sourceBin, err2 := exec.LookPath("smtp-source")
	if err1 != nil || err2 != nil {
		b.Skip("smtp-sink and smtp-source (Debian's postfix) are not installed")
	}
	n = defaultN
	if s := os.Getenv("SMTPLAB_SEND_MESSAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("SMTPLAB_SEND_MESSAGES=%q: want a number of messages", s)
		}
	}
	return sourceBin, startSink(b, sinkBin), n
}

// runSource runs "smtp-source -s 40 -m n -l 100 -f sender@example.test
// ARGS addr" and returns its msgs/s and its own CPU time (user and system)
// per message in µs.
func runSource(b *testing.B, sourceBin, addr string, n int, args ...string) (float64, float64) {
	start := time.Now()
	args = append(append([]string{"-s", "40", "-m", strconv.Itoa(n), "-l", "100", "-f", "sender@example.test"}, args...), addr)
	cmd := exec.Command(sourceBin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	rate := float64(n) / time.Since(start).Seconds()
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return rate, float64(cpu.Microseconds()) / float64(n)
}

// startSink starts smtp-sink (sinkBin) on a free loopback port, stopped
// when b ends, and returns its address once it answers.
func startSink(b *testing.B, sinkBin string) string {
	addr := freeAddr(b)
	sink := exec.Command(sinkBin, "-u", "nobody", addr, "1000")
	if err := sink.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Process.Kill(); sink.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b.Fatalf("smtp-sink does not answer on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkSenderReuseAgainstSmtpSourceD is BenchmarkSenderAgainstSmtpSource
// with sessions reused on both sides, the comparison of session reuse:
// smtp-source -d -s 40 (each of its 40 sessions sends message after
// message) against the sender delivering a pre-filled queue whose messages
// all go to one host, with 40 connections allowed to it (max_per_host 40),
// so that courierd's model (scheduler.go) gives every freed slot back to
// that host and each connection takes the next message in the same
// session: about 40 connections a run on each side. A third run, the queue
// alone, does to the same queue what the sender does for each message
// with no SMTP at all (Load: open, read and parse the envelope line, look
// for a done record if the sender's list of them names one; Done: remove
// the file), one message after another:
// the CPU a message costs the durable queue by itself. A fourth, the
// file's system calls alone (calls, below), is the floor under it.
// SMTPLAB_SEND_MESSAGES
// messages a run (default 20,000), the queue's fsyncs off, rounds
// interleaved and rotated as in BenchmarkSenderAgainstSmtpSource (no
// settling: 40 connections leave nothing to wait for). The queue is on
// TMPDIR's file system (b.TempDir).
//
//	go test -run '^$' -bench SenderReuseAgainstSmtpSourceD -benchtime 5x ./lab/sender/
func BenchmarkSenderReuseAgainstSmtpSourceD(b *testing.B) {
	sourceBin, addr, n := postfixBench(b, 20000)
	source := func() (float64, float64) {
		return runSource(b, sourceBin, addr, n, "-d", "-t", "recipient-foo-0@0.foo.test")
	}
	filled := func() (Config, *Queue) {
		cfg := benchConfig(b, addr, true)
		cfg.MaxPerHost = cfg.MaxConnections
		q, err := OpenQueue(cfg.QueueDir)
		if err != nil {
			b.Fatal(err)
		}
		q.noFsync = true
		fillHosts(b, q, n, 1)
		return cfg, q
	}
	send := func() (float64, float64) {
		b.StopTimer()
		cfg, _ := filled()
		b.StartTimer()
		return timedDrain(b, cfg, n)
	}
	queueAlone := func() (float64, float64) {
		b.StopTimer()
		_, q := filled()
		if err := q.ownDone(); err != nil { // as the sender's queue does at start
			b.Fatal(err)
		}
		b.StartTimer()
		start, cpu0 := time.Now(), ownCPU(b)
		ids, err := q.Oldest(n, nil)
		if err != nil || len(ids) != n {
			b.Fatalf("queue holds %d of %d messages: %v", len(ids), n, err)
		}
		for _, id := range ids {
			env, err := q.Load(id)
			if err != nil {
				b.Fatal(err)
			}
			if gone, err := q.Done(id, env.Rcpts); err != nil || !gone {
				b.Fatalf("Done(%s): left %v, %v", id, !gone, err)
			}
		}
		elapsed, cpu := time.Since(start), ownCPU(b)-cpu0
		return float64(n) / elapsed.Seconds(), float64(cpu.Microseconds()) / float64(n)
	}
	// calls is the floor under the queue: the same files opened, read,
	// closed and removed with those four system calls and nothing else.
	calls := func() (float64, float64) {
		b.StopTimer()
		cfg, q := filled()
		ids, err := q.Oldest(n, nil)
		if err != nil || len(ids) != n {
			b.Fatalf("queue holds %d of %d messages: %v", len(ids), n, err)
		}
		buf := make([]byte, 4096)
		b.StartTimer()
		start, cpu0 := time.Now(), ownCPU(b)
		for _, id := range ids {
			path := filepath.Join(cfg.QueueDir, "msg", id)
			fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := syscall.Read(fd, buf); err != nil {
				b.Fatal(err)
			}
			syscall.Close(fd)
			if err := syscall.Unlink(path); err != nil {
				b.Fatal(err)
			}
		}
		elapsed, cpu := time.Since(start), ownCPU(b)-cpu0
		return float64(n) / elapsed.Seconds(), float64(cpu.Microseconds()) / float64(n)
	}
	var src, snd, qa, fl, srcCPU, sndCPU, qaCPU, flCPU []float64
	runs := []func(){
		func() { r, c := source(); src, srcCPU = append(src, r), append(srcCPU, c) },
		func() { r, c := send(); snd, sndCPU = append(snd, r), append(sndCPU, c) },
		func() { r, c := queueAlone(); qa, qaCPU = append(qa, r), append(qaCPU, c) },
		func() { r, c := calls(); fl, flCPU = append(fl, r), append(flCPU, c) },
	}
	for round := 0; b.Loop(); round++ {
		for k := range runs {
			runs[(round+k)%len(runs)]()
		}
		i := len(src) - 1
		b.Logf("round %d: msgs/s (CPU µs/msg): smtp-source -d %.0f (%.0f), sender reusing sessions %.0f (%.0f), its queue alone %.0f (%.0f), the file's system calls alone %.0f (%.0f)",
			i+1, src[i], srcCPU[i], snd[i], sndCPU[i], qa[i], qaCPU[i], fl[i], flCPU[i])
	}
	ms, msnd := median(src), median(snd)
	b.ReportMetric(ms, "source-d-msgs/s")
	b.ReportMetric(msnd, "sender-reuse-msgs/s")
	b.ReportMetric(msnd/ms, "reuse-ratio")
	b.ReportMetric(median(srcCPU), "source-d-cpu-µs/msg")
	b.ReportMetric(median(sndCPU), "sender-reuse-cpu-µs/msg")
	b.ReportMetric(median(qaCPU), "queue-alone-cpu-µs/msg")
	b.ReportMetric(median(flCPU), "file-calls-cpu-µs/msg")
}

// settle waits (up to 2 minutes) until at most 20 connections to or from
// addr's port are in TIME_WAIT (/proc/net/tcp, state 06; the kernel
// keeps them 60 s).
func settle(b testing.TB, addr string) {
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	hexPort := fmt.Sprintf(":%04X", port)
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		tcp, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, l := range strings.Split(string(tcp), "\n") {
			f := strings.Fields(l)
			if len(f) > 3 && f[3] == "06" && (strings.HasSuffix(f[1], hexPort) || strings.HasSuffix(f[2], hexPort)) {
				n++
			}
		}
		if n <= 20 {
			return
		}
	}
	b.Logf("connections to %s still in TIME_WAIT after 2 minutes", addr)
}

// ownCPU is this process's CPU time so far, user and system.
func ownCPU(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// drained says whether the queue in dir has no message left. It reads
// one name, not the whole folder: listing and sorting thousands of names
// every 2 ms (Queue.IDs) took a quarter of the machine's CPU from the
// sender it was timing.
func drained(dir string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, "msg"))
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
