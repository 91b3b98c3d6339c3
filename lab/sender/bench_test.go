package sender

import (
	"fmt"
	"io"
	"log"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/smtplab/smtplab/lab/duration"
)

// sink is the fast receiver of the benchmarks: a go-smtp server on
// 127.0.0.1 that reads each message and throws it away, counting it.
type sink struct {
	addr string
	n    atomic.Int64
}

type sinkSession struct{ s *sink }

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	ss.s.n.Add(1)
	return nil
}

func newSink(b testing.TB) *sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &sink{addr: ln.Addr().String()}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return sinkSession{s}, nil }))
	srv.Domain = "sink.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return s
}

// benchConfig is the 1999 benchmark's shape: 40 connections in all,
// Courier's 4 per host, 20 recipient hosts all routed to the sink.
func benchConfig(b testing.TB, addr string, noFsync bool) Config {
	return Config{
		Hostname: "sender.test", QueueDir: b.TempDir(),
		MaxConnections: 40, MaxPerHost: 4, IdleClose: duration.Duration(100 * time.Millisecond),
		Retry: []duration.Duration{duration.Duration(10 * time.Millisecond)}, MaxAttempts: 100,
		Routes:  []Route{{Domain: ".test", Relay: addr}},
		NoFsync: noFsync, Bounce: BounceRecord,
		CommandTimeout: duration.Duration(30 * time.Second),
	}
}

// fill queues n one-recipient messages over 20 hosts, the 1999 benchmark's
// message.
func fill(b testing.TB, q *Queue, n int) { fillHosts(b, q, n, 20) }

// fillHosts is fill over the given number of hosts (0.foo.test, ...).
func fillHosts(b testing.TB, q *Queue, n, hosts int) {
	for i := 0; i < n; i++ {
		h := i % hosts
		text := fmt.Sprintf("Message-ID: <b%d@bench.test>\nFrom: sender\nTo: recipient\nSubject: test %d\n\ntest %d\n", i, h, h)
		if _, err := q.Put(Envelope{From: "sender@example.test", Rcpts: []string{fmt.Sprintf("recipient-foo-%d@%d.foo.test", h, h)}, MessageID: fmt.Sprintf("<b%d@bench.test>", i)}, []byte(text)); err != nil {
			b.Fatal(err)
		}
	}
}

// runningSender is a sender started on cfg with no event log.
func runningSender(b testing.TB, cfg Config) *Sender {
	snd, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := snd.Start(); err != nil {
		b.Fatal(err)
	}
	return snd
}

// drain starts a sender on cfg (no event log: the log is the role's, and
// grows with every event) and waits until the sink has want messages.
func drain(b testing.TB, cfg Config, s *sink, want int64, tick func()) {
	defer runningSender(b, cfg).Close()
	for s.n.Load() < want {
		if tick != nil {
			tick()
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkSend: messages per second from a full queue into the sink,
// queue fsync on and off. The queue is filled (with the same fsync
// setting) before the timer starts; the time is the sender's alone.
//
//	go test -run '^$' -bench BenchmarkSend -benchtime 5000x ./lab/sender/
func BenchmarkSend(b *testing.B) {
	for _, noFsync := range []bool{false, true} {
		b.Run(fmt.Sprintf("fsync=%v", !noFsync), func(b *testing.B) {
			s := newSink(b)
			cfg := benchConfig(b, s.addr, noFsync)
			q, err := OpenQueue(cfg.QueueDir)
			if err != nil {
				b.Fatal(err)
			}
			q.noFsync = noFsync
			fill(b, q, b.N)
			b.ResetTimer()
			start := time.Now()
			drain(b, cfg, s, int64(b.N), nil)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkQueue100k: peak heap while the sender drains 100,000 queued
// messages into the sink over 40 connections, with the default window
// (MaxInMemory 10000) and, for comparison, a window holding everything.
// BenchmarkQueue10k is the same with 10,000: flat memory means the two
// peaks match for the same window. Fsync is off (durability does not
// change memory, and 200,000 fsyncs would only make it slow).
//
//	go test -run '^$' -bench 'BenchmarkQueue' -benchtime 1x ./lab/sender/
func BenchmarkQueue100k(b *testing.B) { benchQueue(b, 100000) }

func BenchmarkQueue10k(b *testing.B) { benchQueue(b, 10000) }

func benchQueue(b *testing.B, n int) {
	windows := []int{10000, n}
	if n <= 10000 {
		windows = windows[:1] // the default window holds everything already
	}
	for _, window := range windows {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s := newSink(b)
				cfg := benchConfig(b, s.addr, true)
				cfg.MaxInMemory = window
				q, err := OpenQueue(cfg.QueueDir)
				if err != nil {
					b.Fatal(err)
				}
				q.noFsync = true
				fill(b, q, n)
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				base := ms.HeapAlloc
				var peakInuse, peakLive uint64
				lastGC := time.Now()
				start := time.Now()
				drain(b, cfg, s, int64(n), func() {
					// HeapInuse every tick (it includes garbage not yet
					// collected); the live heap after a forced GC every
					// 100 ms, the figure that must stay flat.
					if time.Since(lastGC) > 100*time.Millisecond {
						runtime.GC()
						lastGC = time.Now()
						runtime.ReadMemStats(&ms)
						peakLive = max(peakLive, ms.HeapAlloc)
					} else {
						runtime.ReadMemStats(&ms)
					}
					peakInuse = max(peakInuse, ms.HeapInuse)
				})
				elapsed := time.Since(start)
				b.ReportMetric(float64(base)/(1<<20), "base-heap-MB")
				b.ReportMetric(float64(peakLive)/(1<<20), "peak-live-heap-MB")
				b.ReportMetric(float64(peakInuse)/(1<<20), "peak-heap-inuse-MB")
				b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
			}
		})
	}
}
