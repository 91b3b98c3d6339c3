package dnsstub

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtplab/smtplab/lab/labtest"
	"github.com/smtplab/smtplab/lab/line"

	"github.com/smtplab/smtplab/lab/events"
)

// scrape GETs /metrics and returns each series' value by its text
// ("name{label=\"v\",...}"), as the Prometheus text format spells it.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	s, log, addr := startServer(t, testConfig())
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()

	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	co := &dns.Conn{Conn: c}
	ask := func(q *dns.Msg) {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := co.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
		if _, err := co.ReadMsg(); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		ask(new(dns.Msg).SetQuestion("sender.lab.", dns.TypeA))
	}
	for range 2 {
		ask(new(dns.Msg).SetQuestion("nowhere.lab.", dns.TypeA))
	}
	two := new(dns.Msg).SetQuestion("sender.lab.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	ask(two)
	update := new(dns.Msg).SetQuestion("lab.", dns.TypeSOA)
	update.Opcode = dns.OpcodeUpdate
	ask(update)
	// Unparseable: miekg/dns answers the first FORMERR itself and drops
	// the second, shorter than a header.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a'}); err != nil {
		t.Fatal(err)
	}
	if _, err := co.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte{1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	labtest.Events(t, log, events.Query, 9)

	m := s.Metrics()
	m.AddLineBytes(line.Up, 100)
	m.AddLineBytes(line.Down, 250)
	m.AddLineBytes(line.Down, 1)
	m.AddFault("drop")
	m.AddFault("drop")

	got := scrape(t, hs.URL)
	for series, want := range map[string]float64{
		`smtplab_dns_queries_total{qtype="A",rcode="NOERROR"}`:  3,
		`smtplab_dns_queries_total{qtype="A",rcode="NXDOMAIN"}`: 2,
		`smtplab_dns_queries_total{qtype="A",rcode="FORMERR"}`:  1,
		`smtplab_dns_queries_total{qtype="SOA",rcode="NOTIMP"}`: 1,
		`smtplab_dns_queries_total{qtype="",rcode="FORMERR"}`:   1,
		`smtplab_dns_queries_total{qtype="",rcode="DROPPED"}`:   1,
		`smtplab_dns_malformed_total`:                           3,
		`smtplab_dns_faults_total{fault="drop"}`:                2,
		`smtplab_dns_line_bytes_total{direction="up"}`:          100,
		`smtplab_dns_line_bytes_total{direction="down"}`:        251,
		// Answered through ServeDNS: not miekg's own FORMERR, not the drop.
		`smtplab_dns_answer_seconds_count`: 7,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	var total float64
	for series, v := range got {
		if strings.HasPrefix(series, "smtplab_dns_queries_total{") {
			total += v
		}
	}
	if n := log.Counts()[events.Query]; total != float64(n) || n != 9 {
		t.Errorf("queries_total sums to %v, log has %d query events, want 9 and 9", total, n)
	}

	// Every server has a registry of its own.
	other, _, _ := startServer(t, testConfig())
	hs2 := httptest.NewServer(other.Handler())
	defer hs2.Close()
	if v, ok := scrape(t, hs2.URL)[`smtplab_dns_queries_total{qtype="A",rcode="NOERROR"}`]; ok {
		t.Errorf("a fresh server reports %v queries", v)
	}
}
