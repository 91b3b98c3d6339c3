package sender

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/fault"
	"github.com/smtplab/smtplab/lab/labtest"
)

// TestMXRouting: with no static route, the sender asks a real dnsstub
// server for MX then A, and delivers to the lowest preference that
// answers; no MX means the domain's own A. NXDOMAIN and "no address" fail
// for good at once; SERVFAIL and a dropped query are temporary and the
// message gets through once the DNS answers.
//
// Two receivers share one port on two loopback addresses, so which one
// got the mail shows which exchanger was chosen; 127.0.0.2 has nothing
// listening (connection refused).
func TestMXRouting(t *testing.T) {
	low := newFake(t) // 127.0.0.1
	_, port, _ := net.SplitHostPort(low.addr)
	high := newFakeAt(t, "127.0.0.3:"+port)

	zone := dnsstub.Zone{
		A: map[string][]string{
			"high.test": {"127.0.0.3"},
			"low.test":  {"127.0.0.1"},
			"dead.test": {"127.0.0.2"},
			"bare.test": {"127.0.0.3"},
		},
		MX: map[string][]dnsstub.MX{
			// Listed worst first: the sender must sort.
			"pref.test":     {{Pref: 20, Host: "low.test"}, {Pref: 10, Host: "high.test"}},
			"fallback.test": {{Pref: 10, Host: "dead.test"}, {Pref: 20, Host: "low.test"}},
			"noaddr.test":   {{Pref: 10, Host: "ghost.test"}},
			"servfail.test": {{Pref: 10, Host: "low.test"}},
			"dropped.test":  {{Pref: 10, Host: "low.test"}},
		},
	}
	dns, err := dnsstub.New(dnsstub.Config{Zone: zone, Origins: []string{"test"}, Faults: []fault.Spec{
		{Type: "servfail", Name: "servfail.test", QType: "MX", Count: 2},
		{Type: "drop", Name: "dropped.test", QType: "MX", Count: 1},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr, err := dns.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })

	for _, tc := range []struct {
		domain    string
		at        *fake  // the receiver that must get it; nil: it fails
		temporary int    // temporary attempts before it gets through
		failure   string // in the Failed event's error
	}{
		{domain: "pref.test", at: high},
		{domain: "fallback.test", at: low, temporary: 0},
		{domain: "bare.test", at: high},
		{domain: "nowhere.test", failure: "no such domain"},
		{domain: "noaddr.test", failure: "no address"},
		{domain: "servfail.test", at: low, temporary: 2},
		{domain: "dropped.test", at: low, temporary: 1},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			cfg := testConfig(t, "")
			cfg.Routes = nil
			cfg.DNSServers = []string{dnsAddr.String()}
			// Only the dropped query may time out: 3 s is far beyond what
			// a loopback answer takes on a busy machine, so the count of
			// temporary attempts is the faults', not the machine's.
			cfg.DNSFirstTimeout, cfg.DNSRounds = duration.Duration(3*time.Second), 1
			cfg.SMTPPort, _ = strconv.Atoi(port)
			cfg.Bounce = BounceRecord
			q := openQueue(t, cfg.QueueDir)
			msgID := fmt.Sprintf("<mx@%s>", tc.domain)
			rcpt := "u@" + tc.domain
			put(t, q, msgID, "from@src.test", rcpt)
			_, log := startSender(t, cfg)
			labtest.Until(t, "queue empty and the outcome logged", func() bool {
				return len(queueIDs(t, q)) == 0 && countEvents(log, events.Sent, "")+countEvents(log, events.Failed, "") > 0
			})
			for _, f := range []*fake{low, high} {
				n := f.delivered()[msgID+" "+rcpt]
				if want := map[bool]int{true: 1}[f == tc.at]; n != want {
					t.Errorf("receiver %s got it %d times, want %d", f.addr, n, want)
				}
			}
			if n := countEvents(log, events.Attempt, "temporary"); n != tc.temporary {
				t.Errorf("%d temporary attempts, want %d: %+v", n, tc.temporary, eventsOf(log, events.Attempt))
			}
			failed := eventsOf(log, events.Failed)
			switch {
			case tc.at != nil && len(failed) != 0:
				t.Errorf("Failed events %+v", failed)
			case tc.at == nil && (len(failed) != 1 || !strings.Contains(failed[0].Error, tc.failure)):
				t.Errorf("Failed events %+v, want one saying %q", failed, tc.failure)
			}
		})
	}
}
