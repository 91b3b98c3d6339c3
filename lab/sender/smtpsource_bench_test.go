package sender

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSenderAgainstSmtpSource: the sender delivering a pre-filled
// queue of SMTPLAB_SEND_MESSAGES messages (default 5,000) over 40
// sessions to Postfix's smtp-sink, beside Postfix's smtp-source sending
// as many over 40 sessions to the same smtp-sink, one after the other in
// the same run against the same sink process (smtp-source, the sender
// with its queue's fsyncs, without them). Each reports the msgs/s of its
// last round; their ratio is the figure of docs/PERFORMANCE.md.
// smtp-sink and smtp-source come from Debian's postfix package; without
// them the benchmark skips.
//
//	go test -run '^$' -bench SenderAgainstSmtpSource -benchtime 3x ./lab/sender/
func BenchmarkSenderAgainstSmtpSource(b *testing.B) {
	sinkBin, err1 := exec.LookPath("smtp-sink")
	sourceBin, err2 := exec.LookPath("smtp-source")
	if err1 != nil || err2 != nil {
		b.Skip("smtp-sink and smtp-source (Debian's postfix) are not installed")
	}
	n := 5000
	if s := os.Getenv("SMTPLAB_SEND_MESSAGES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	addr := freeAddr(b)
	sink := exec.Command(sinkBin, "-u", "nobody", addr, "1000")
	if err := sink.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Process.Kill(); sink.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("smtp-sink does not answer on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Run("smtp-source", func(b *testing.B) {
		for b.Loop() {
			start := time.Now()
			out, err := exec.Command(sourceBin, "-s", "40", "-m", strconv.Itoa(n), "-l", "100",
				"-f", "sender@example.test", "-t", "recipient-foo-1@1.foo.test", addr).CombinedOutput()
			if err != nil {
				b.Fatalf("smtp-source: %v\n%s", err, out)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
		}
	})
	for _, noFsync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sender-fsync=%v", !noFsync), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				cfg := benchConfig(b, addr, noFsync)
				q, err := OpenQueue(cfg.QueueDir)
				if err != nil {
					b.Fatal(err)
				}
				q.noFsync = noFsync
				fill(b, q, n)
				b.StartTimer()
				start := time.Now()
				snd, err := New(cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := snd.Start(); err != nil {
					b.Fatal(err)
				}
				for {
					ids, err := q.IDs()
					if err != nil {
						b.Fatal(err)
					}
					if len(ids) == 0 {
						break
					}
					time.Sleep(2 * time.Millisecond)
				}
				elapsed := time.Since(start)
				snd.Close()
				b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
			}
		})
	}
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
