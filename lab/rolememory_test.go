package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/stack/stacktest"
	"github.com/smtplab/smtplab/lab/topology"
)

// TestDNSRoleMemoryFlat floods the lab's dns role, in its container as a
// run starts it (nobody, read-only root, its spool on a volume), with
// queries over real UDP, each for a new name, from 8 clients at once, and
// compares its container's resident memory less page cache
// (stack.Container.Memory) after 10,000 queries with after N: within 20%
// (and 1 MB, Go's heap goal moving in steps). SMTPLAB_MEM_QUERIES sets N
// (50,000 by default; docs/PERFORMANCE.md has 500,000). Counts, not
// times: every query must be answered.
func TestDNSRoleMemoryFlat(t *testing.T) {
	n := 50_000
	if v := os.Getenv("SMTPLAB_MEM_QUERIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 20_000 {
			t.Fatalf("SMTPLAB_MEM_QUERIES=%q: want a number of queries, at least 20000", v)
		}
	}
	eng := stacktest.Engine(t)
	ctx := context.Background()
	img, err := stack.BuildLabImage(ctx, eng, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	runID := fmt.Sprintf("dns-memory-%d", time.Now().UnixNano())
	st, err := stack.New(ctx, eng, img, runID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		stacktest.NoLeftovers(t, eng, runID)
	})
	sc := scenario.Default()
	sc.DNS.QueryDelay = 0
	sc.DNS.Line.Enabled = false
	s := &starter{st: st, plan: NewPlan(sc), addrs: Addrs{}, cs: map[topology.Role]*stack.Container{}}
	c, h, err := startGoRole(ctx, s, topology.Services()[0])
	if err != nil {
		t.Fatal(err)
	}
	// The zone names every role; here only dns runs, and answers for all.
	for _, r := range append(topology.Roles(), topology.Final) {
		s.addrs[r] = c.IP
	}
	if err := h.(DNSHandle).SetZone(ctx, s.plan.Zone(s.addrs)); err != nil {
		t.Fatal(err)
	}
	server := net.JoinHostPort(c.IP, "53")
	next := 0
	ask := func(upto int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				cl := &dns.Client{Timeout: 10 * time.Second}
				conn, err := cl.Dial(server)
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				for {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= upto {
						return
					}
					// A different name each time: nothing kept per name may
					// grow either. Every query is answered: a lost UDP
					// packet is asked again, and fails the test the third time.
					m := new(dns.Msg).SetQuestion("h"+strconv.Itoa(i)+".example.com.", dns.TypeA)
					var err error
					for range 3 {
						if _, _, err = cl.ExchangeWithConn(m, conn); err == nil {
							break
						}
					}
					if err != nil {
						t.Errorf("query %d: %v", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		next = upto
		if t.Failed() {
			t.FailNow()
		}
	}
	ask(10_000)
	early, err := c.Memory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask(n)
	late, err := c.Memory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dns role's memory less page cache after 10000 queries %d KB, after %d %d KB (%.2fx)", early>>10, n, late>>10, float64(late)/float64(early))
	if late > early+early/5+1<<20 {
		t.Errorf("the dns role's memory grew from %d KB after 10000 queries to %d KB after %d", early>>10, late>>10, n)
	}
}
