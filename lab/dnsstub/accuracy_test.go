package dnsstub

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/line"
)

// BenchmarkLineAccuracy offers 1,000 queries a second, each from its own
// UDP socket, to a stub behind a line on the real clock, and compares each
// query's round trip as the client measured it with the delay the model
// added (queue wait + time on the line, from the query's event). It
// reports the p50 and p99 of measured minus modelled; the target is a p99
// under 2 ms. The line (10 Mbit/s, 5 ms one way, 1 ms jitter) is fast
// enough that 1,000 queries a second do not saturate it.
//
//	go test -run xxx -bench LineAccuracy -benchtime 3000x ./lab/dnsstub/
func BenchmarkLineAccuracy(b *testing.B) {
	cfg := testConfig()
	cfg.Line = &line.Config{BitsPerSecond: 10_000_000, FramingBytes: 36, Latency: 5 * time.Millisecond, Jitter: time.Millisecond, Seed: 1}
	_, log, addr := startServer(b, cfg)
	q := new(dns.Msg).SetQuestion("sender.lab.", dns.TypeA)
	measured := map[string]time.Duration{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		wg.Add(1)
		go func(id uint16) {
			defer wg.Done()
			c, err := net.Dial("udp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			m := q.Copy()
			m.Id = id
			p, _ := m.Pack()
			buf := make([]byte, 512)
			start := time.Now()
			c.Write(p)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
			rtt := time.Since(start)
			mu.Lock()
			measured[events.QueryKey(c.LocalAddr().String(), id)] = rtt
			mu.Unlock()
		}(uint16(i))
	}
	wg.Wait()
	b.StopTimer()
	hist := hdrhistogram.New(1, int64(time.Second/time.Microsecond), 3)
	for _, e := range log.Events() {
		if e.Kind != events.Query || len(e.Via) == 0 {
			continue
		}
		rtt, ok := measured[e.Via[0]]
		if !ok {
			continue
		}
		hist.RecordValue(max(int64((rtt-e.QueueWait-e.OnLine)/time.Microsecond), 0))
	}
	if hist.TotalCount() != int64(b.N) {
		b.Fatalf("matched %d of %d queries", hist.TotalCount(), b.N)
	}
	b.ReportMetric(float64(hist.ValueAtQuantile(50))/1000, "p50-err-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(99))/1000, "p99-err-ms")
	b.ReportMetric(float64(hist.Max())/1000, "max-err-ms")
}
