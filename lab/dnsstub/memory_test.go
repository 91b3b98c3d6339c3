package dnsstub

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/labtest"
)

// TestMemoryFlatInQueries: with its log spooled (as every role's is,
// lab/role), the DNS server's memory does not grow with the queries it
// has answered: the live heap after N queries is within 20% (and 1 MB)
// of what it was after N/10. SMTPLAB_MEM_QUERIES sets N (10,000 by
// default; docs/PERFORMANCE.md has 500,000).
func TestMemoryFlatInQueries(t *testing.T) {
	n := 10_000
	if v := os.Getenv("SMTPLAB_MEM_QUERIES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	log := events.NewLog("dns")
	if err := log.Spool(filepath.Join(t.TempDir(), "events.jsonl")); err != nil {
		t.Fatal(err)
	}
	s, err := New(testConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &dns.Client{Timeout: 10 * time.Second}
	conn, err := c.Dial(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func(from, to int) {
		for i := from; i < to; i++ {
			// A different name each time: nothing the server keeps per
			// name may grow either.
			m := new(dns.Msg).SetQuestion("h"+strconv.Itoa(i)+".example.com.", dns.TypeA)
			if _, _, err := c.ExchangeWithConn(m, conn); err != nil {
				t.Fatalf("query %d: %v", i, err)
			}
		}
	}
	ask(0, n/10)
	early := labtest.LiveHeap()
	ask(n/10, n)
	late := labtest.LiveHeap()
	t.Logf("live heap after %d queries %d KB, after %d %d KB", n/10, early>>10, n, late>>10)
	if late > early+early/5+1<<20 {
		t.Errorf("live heap grew from %d KB after %d queries to %d KB after %d", early>>10, n/10, late>>10, n)
	}
	if got := log.Counts()[events.Query]; got != n {
		t.Errorf("%d query events logged, want %d", got, n)
	}
}
