package sender

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/pace"
)

// BenchmarkInjectAt1000 injects at 1,000 messages a second into a queue
// on disk, for SMTPLAB_INJECT_SECONDS seconds (default 2; 60 for the
// figure of docs/PERFORMANCE.md), in the sender's process (direct) and,
// beside it in the same run, with a sendmail process per message (the
// test binary acting as `lab sendmail`), and reports each one's rate and
// its start and queue lag (lab/pace). SMTPLAB_BENCH_DIR puts the queue
// on another file system; SMTPLAB_INJECT_WAYS=direct leaves the sendmail
// processes out (at 1,000 a second they fall far behind: a 60 s
// schedule of them takes over an hour here).
//
//	SMTPLAB_INJECT_SECONDS=60 go test -run '^$' -bench InjectAt1000 -benchtime 1x ./lab/sender/
func BenchmarkInjectAt1000(b *testing.B) {
	secs := 2
	if s := os.Getenv("SMTPLAB_INJECT_SECONDS"); s != "" {
		secs, _ = strconv.Atoi(s)
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	const rate = 1000
	var msgs []Message
	for i := range secs * rate {
		to := fmt.Sprintf("recipient-foo-%d@%d.foo.example.com", i%20+1, i%20+1)
		msgs = append(msgs, Message{Round: i/20 + 1, N: i%20 + 1, From: "sender@example.com", To: to,
			Data: fmt.Sprintf("From: sender\nTo: recipient\nSubject: test %d\n\ntest %d\n", i, i)})
	}
	inj := Injection{Pace: pace.Spec{Mode: pace.Rate, PerSecond: rate}, Messages: msgs}
	ways := []string{"direct", "sendmail"}
	if w := os.Getenv("SMTPLAB_INJECT_WAYS"); w != "" {
		ways = strings.Split(w, ",")
	}
	for _, way := range ways {
		b.Run(way, func(b *testing.B) {
			for b.Loop() {
				dir, err := os.MkdirTemp(os.Getenv("SMTPLAB_BENCH_DIR"), "inject-")
				if err != nil {
					b.Fatal(err)
				}
				var res InjectResult
				if way == "direct" {
					res = InjectDirect(context.Background(), inj, dir, "bench.test")
				} else {
					res = Inject(context.Background(), inj, []string{self, asSendmail, dir})
				}
				os.RemoveAll(dir)
				if res.Injected != len(msgs) {
					b.Fatalf("%s: injected %d of %d: %v", way, res.Injected, len(msgs), res.Errors[:min(3, len(res.Errors))])
				}
				k := pace.Judge(inj.Pace, res.Starts)
				b.ReportMetric(k.AchievedRate, "msgs/s")
				b.ReportMetric(float64(k.LagP99)/float64(time.Millisecond), "lag-p99-ms")
				b.ReportMetric(float64(k.QueueLagMax)/float64(time.Millisecond), "queue-lag-max-ms")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}
