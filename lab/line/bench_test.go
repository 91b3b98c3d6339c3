package line

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// BenchmarkCarryAccuracy offers 1,000 queries a second to a line on the
// real clock and measures, per query, how late the answer really came
// compared with the model's schedule (Trip.Down.Deliver). It reports the
// p50 and p99 of that error; the target is a p99 under 2 ms. The line is
// fast (10 Mbit/s, 5 ms) so 1,000 queries a second do not saturate it.
//
//	go test -run xxx -bench CarryAccuracy -benchtime 3000x ./lab/line/
func BenchmarkCarryAccuracy(b *testing.B) {
	l, _ := New(Config{BitsPerSecond: 10_000_000, FramingBytes: 36, Latency: 5 * time.Millisecond, Jitter: time.Millisecond, Seed: 1})
	hist := hdrhistogram.New(1, int64(time.Second/time.Microsecond), 3)
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			trip, err := l.Carry(context.Background(), RealClock{}, time.Now(), "q.example", 40, 0, func() int { return 90 })
			late := time.Since(trip.Down.Deliver)
			if err != nil {
				b.Error(err)
			}
			mu.Lock()
			hist.RecordValue(max(int64(late/time.Microsecond), 0))
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(hist.ValueAtQuantile(50))/1000, "p50-err-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(99))/1000, "p99-err-ms")
	b.ReportMetric(float64(hist.Max())/1000, "max-err-ms")
}
