package mta

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/events"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/sender"
	"github.com/smtplab/smtplab/lab/topology"
)

// eximMain reads the main section of an Exim configuration ("name =
// value" lines before the first "begin"); a later setting replaces an
// earlier one, as Exim reads them.
func eximMain(t *testing.T, conf []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(string(conf), "\n") {
		if strings.HasPrefix(l, "begin ") {
			break
		}
		if k, v, ok := strings.Cut(l, " = "); ok && !strings.HasPrefix(l, "#") {
			out[k] = v
		}
	}
	if len(out) == 0 {
		t.Fatalf("no settings in\n%s", conf)
	}
	return out
}

func wantSettings(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// The 1999 benchmark's receiver, as Exim: every check on, the limits and
// the local domains, the blacklists in order in the RCPT ACL with
// Courier's text, and account-EXT into the account's Maildir.
func TestEximReceiver1999(t *testing.T) {
	f := EximReceiver(benchmark1999(t), "10.0.0.53")
	conf := f[EximConfigPath]
	wantSettings(t, eximMain(t, conf), map[string]string{
		"primary_hostname":                 "receiver.lab.example.net",
		"domainlist local_domains":         "localhost : example.com : *.example.com",
		"daemon_smtp_ports":                "25",
		"host_lookup":                      "*",
		"rfc1413_hosts":                    "*",
		"rfc1413_query_timeout":            "30s",
		"smtp_accept_max":                  "40",
		"smtp_accept_max_per_host":         "40",
		"smtp_accept_queue_per_connection": "0",
		"message_size_limit":               "10485760",
		"ignore_bounce_errors_after":       "0s",
		"disable_ipv6":                     "true",
		"tls_advertise_hosts":              "",
		"log_selector":                     eximLogSelector,
	})
	for _, want := range []string{
		"smtplab_connect:\n  warn    set acl_c_listed =\n  warn    dnslists  = bl1.example.net : bl2.example.net\n          set acl_c_listed = $dnslist_domain\n",
		"  deny    condition = ${if !eq{$acl_c_listed}{}}\n          message   = 511 Blacklisted by $acl_c_listed\n",
		"  require verify    = recipient\n",
		"  directory = /var/mail/recipient/Maildir\n  maildir_format\n",
		"  user = recipient\n",
	} {
		if !bytes.Contains(conf, []byte(want)) {
			t.Errorf("configuration lacks %q:\n%s", want, conf)
		}
	}
	if bytes.Contains(conf, []byte("sender_address_domain")) {
		t.Errorf("the sender's domain is checked with bofh_check_dns off:\n%s", conf)
	}
	if got := string(f["/etc/smtplab/resolv.conf"]); got != "nameserver 10.0.0.53\n" {
		t.Errorf("resolv.conf %q", got)
	}
	if got := string(f["/etc/smtplab/mta.env"]); got != "SMTPLAB_ROLE=receiver\nSMTPLAB_ACCOUNT=recipient\nSMTPLAB_MAILDIR=/var/mail/recipient/Maildir\n" {
		t.Errorf("mta.env %q", got)
	}
	// The router takes the account and account-EXT, nobody else.
	m := regexp.MustCompile(`(?m)^  local_parts = \\N(.*)\\N$`).FindSubmatch(conf)
	if m == nil {
		t.Fatalf("no local_parts in\n%s", conf)
	}
	re := regexp.MustCompile(string(m[1]))
	for lp, want := range map[string]bool{"recipient": true, "recipient-foo-1": true, "recipient-": true,
		"recipientx": false, "nobody-1": false, "x-recipient": false} {
		if re.MatchString(lp) != want {
			t.Errorf("local part %q taken: %v, want %v", lp, !want, want)
		}
	}
}

// With the checks off there is no lookup to make: no host_lookup, no
// IDENT query, no dnslists; bofh_check_dns asks the sender's domain at
// MAIL; max_per_ip 0 is no limit in both.
func TestEximReceiverChecks(t *testing.T) {
	sc := benchmark1999(t)
	sc.Receiver.ReverseDNS, sc.Receiver.Ident, sc.Receiver.DNSBL = false, false, false
	sc.Receiver.BOFHCheckDNS = true
	sc.Receiver.MaxPerIP = 0
	sc.Receiver.CommandTimeout = duration.Duration(90 * time.Second)
	conf := EximReceiver(sc, "10.0.0.53")[EximConfigPath]
	wantSettings(t, eximMain(t, conf), map[string]string{
		"host_lookup": "", "rfc1413_hosts": "", "smtp_accept_max_per_host": "0", "smtp_receive_timeout": "90s",
	})
	if bytes.Contains(conf, []byte("dnslists")) {
		t.Errorf("dnslists with dnsbl off:\n%s", conf)
	}
	if !bytes.Contains(conf, []byte("${lookup dnsdb{mx=$sender_address_domain}{yes}{${lookup dnsdb{a=$sender_address_domain}")) {
		t.Errorf("no MX-then-A check of the sender's domain:\n%s", conf)
	}
}

// Exim S routes every route's domain to the receiver's address, with
// max_connections where Exim has a limit and the phases' timeouts.
func TestEximSender(t *testing.T) {
	sc := benchmark1999(t)
	sc.Sender.MaxConnections = 12
	sc.Sender.Routes = []sender.Route{{Domain: "Example.COM"}, {Domain: ".foo.example.org"}}
	sc.Sender.ConnectTimeout = duration.Duration(7 * time.Second)
	sc.Sender.RcptTimeout = duration.Duration(11 * time.Minute)
	sc.Sender.EndOfDataTimeout = duration.Duration(3 * time.Minute)
	conf := EximSender(sc, "10.0.0.25", "10.0.0.53")[EximConfigPath]
	wantSettings(t, eximMain(t, conf), map[string]string{
		"primary_hostname": "sender.lab.example.net", "qualify_domain": "sender.lab.example.net",
		"remote_max_parallel": "12", "queue_run_max": "12", "ignore_bounce_errors_after": "0s",
		"domainlist local_domains": "localhost",
	})
	for _, want := range []string{
		"  driver = manualroute\n  domains = example.com : *.foo.example.org\n  route_list = * 10.0.0.25\n",
		"  hosts_avoid_tls = *\n",
		"  connect_timeout = 7s\n  command_timeout = 660s\n  final_timeout = 180s\n",
	} {
		if !bytes.Contains(conf, []byte(want)) {
			t.Errorf("configuration lacks %q:\n%s", want, conf)
		}
	}
}

// Setup starts Exim in either role with its ready line; the sender gets
// the workload.
func TestSetupExim(t *testing.T) {
	sc := benchmark1999(t)
	f, ready, err := Setup(scenario.ImplExim, topology.Receiver, sc, "10.0.0.53", "10.0.0.25", nil)
	if err != nil || ready != "smtplab exim receiver ready" || f[EximConfigPath] == nil {
		t.Errorf("receiver: %q %v", ready, err)
	}
	f, ready, err = Setup(scenario.ImplExim, topology.Sender, sc, "10.0.0.53", "10.0.0.25", []byte("work"))
	if err != nil || ready != "smtplab exim sender ready" || string(f[topology.WorkloadPath]) != "work" ||
		!bytes.Contains(f[EximConfigPath], []byte("route_list = * 10.0.0.25")) {
		t.Errorf("sender: %q %v", ready, err)
	}
}

// eximHandLines are Exim 4.96 main-log lines the captured runs did not
// produce (no client listed, no deferral, no timeout), written from its
// source's formats (daemon.c, smtp_in.c, deliver.c) and the lines captured.
var eximHandLines = []string{
	"2026-12-06 05:30:00.100 [30] SMTP connection from [172.24.0.4]:40000 I=[172.24.0.3]:25 (TCP/IP connection count = 1)",
	"2026-12-06 05:30:00.110 [41] H=sender.lab.example.net [172.24.0.4]:40000 I=[172.24.0.3]:25 U=courier F=<sender@example.com> rejected RCPT <recipient-foo-1@1.foo.example.com>: 511 Blacklisted by bl1.example.net",
	"2026-12-06 05:30:00.120 [41] H=sender.lab.example.net [172.24.0.4]:40000 I=[172.24.0.3]:25 U=courier F=<sender@example.com> temporarily rejected RCPT <recipient-foo-2@2.foo.example.com>: DNS lookup deferred",
	"2026-12-06 05:30:00.125 [41] 1xa4e4-00000X-1n H=sender.lab.example.net [172.24.0.4]:40000 I=[172.24.0.3]:25 U=courier F=<> rejected after DATA: 552 Message size exceeds maximum permitted",
	"2026-12-06 05:30:00.130 [41] SMTP connection from sender.lab.example.net (sender.lab.example.net) [172.24.0.4]:40000 I=[172.24.0.3]:25 lost",
	"2026-12-06 05:30:01.000 [30] SMTP connection from [172.24.0.4]:40002 I=[172.24.0.3]:25 (TCP/IP connection count = 1)",
	"2026-12-06 05:30:01.000 [30] Connection from [172.24.0.4]:40004 I=[172.24.0.3]:25 refused: too many connections",
	"2026-12-06 05:30:31.000 [42] SMTP command timeout on connection from sender.lab.example.net [172.24.0.4]:40002 I=[172.24.0.3]:25",
	"2026-12-06 05:30:31.500 [42] SMTP connection from sender.lab.example.net [172.24.0.4]:40002 I=[172.24.0.3]:25 closed by QUIT", // closed already
	"2026-12-06 05:31:00.000 [50] 1xa4hD-00000T-22 <= sender@example.com U=root P=local S=383 id=a@inject.smtplab for a@1.foo.example.com",
	"2026-12-06 05:31:00.100 [51] 1xa4hD-00000T-22 == a@1.foo.example.com F=<sender@example.com> R=smtplab_routes T=smtplab_smtp defer (-44) H=172.23.0.3 [172.23.0.3]:25 I=[172.23.0.4]:48428: SMTP error from remote mail server after RCPT TO:<a@1.foo.example.com>: 450 4.3.0 busy: come back: later DT=0.001s",
	"2026-12-06 05:31:00.200 [51] 1xa4hD-00000T-22 == a@1.foo.example.com R=smtplab_routes T=smtplab_smtp defer (111): Connection refused",
	"2026-12-06 05:32:00.000 [52] 1xa4hD-00000T-22 == a@1.foo.example.com routing defer (-51): retry time not reached",
	"2026-12-06 05:32:00.100 [53] 1xa4hD-00000T-22 ** b@1.foo.example.com: Unrouteable address",
	"2026-12-06 05:32:00.200 2026-12-06 [x] 1xa4hD-00000T-22",
	"1999-12-06 05:32:00.200 [53] SMTP connection from [10.0.0.1]:1 I=[10.0.0.2]:25 (TCP/IP connection count = 1)", // not this run's
	"2026-12-06 05:32:00",
}

// TestParseEximLines reads eximHandLines: a blacklist's refusal with its
// code, a deferral's default 451, a message refused after DATA, a session lost, one over
// smtp_accept_max, one timed out (and its later close line ignored), a
// deferral with the peer's reply (its colons kept) and one without, Exim's
// own retry wait skipped, a failure at routing, and lines that are none.
func TestParseEximLines(t *testing.T) {
	evs, err := ParseLog(strings.NewReader(strings.Join(eximHandLines, "\n")), "receiver", runTime)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if evs[i].Role != "receiver" || evs[i].Time.IsZero() {
			t.Errorf("event %+v: role or time", evs[i])
		}
		evs[i].Time, evs[i].Role = time.Time{}, ""
	}
	want := []events.Event{
		{Kind: events.ConnOpen, Conn: "172.24.0.4:40000", Host: "172.24.0.4"},
		{Kind: events.Rejected, Conn: "172.24.0.4:40000", Host: "172.24.0.4", From: "sender@example.com", Rcpts: []string{"recipient-foo-1@1.foo.example.com"},
			Code: 511, Error: "511 Blacklisted by bl1.example.net"},
		{Kind: events.Rejected, Conn: "172.24.0.4:40000", Host: "172.24.0.4", From: "sender@example.com", Rcpts: []string{"recipient-foo-2@2.foo.example.com"},
			Code: 451, Error: "DNS lookup deferred"},
		{Kind: events.Rejected, Conn: "172.24.0.4:40000", Host: "172.24.0.4", Code: 552, Error: "552 Message size exceeds maximum permitted"},
		{Kind: events.ConnClose, Conn: "172.24.0.4:40000", Host: "172.24.0.4", Reason: "lost"},
		{Kind: events.ConnOpen, Conn: "172.24.0.4:40002", Host: "172.24.0.4"},
		{Kind: events.ConnOpen, Conn: "172.24.0.4:40004#refused-1", Host: "172.24.0.4"},
		{Kind: events.Refused, Conn: "172.24.0.4:40004#refused-1", Host: "172.24.0.4", Code: 421, Reason: "max_sessions",
			Error: "Connection from [172.24.0.4]:40004 I=[172.24.0.3]:25 refused: too many connections"},
		{Kind: events.ConnClose, Conn: "172.24.0.4:40002", Host: "172.24.0.4", Reason: "timeout"},
		{Kind: events.Attempt, Result: "temporary", QueueID: "1xa4hD-00000T-22", From: "sender@example.com", Rcpts: []string{"a@1.foo.example.com"},
			Code: 450, Enhanced: "4.3.0", Error: "SMTP error from remote mail server after RCPT TO:<a@1.foo.example.com>: 450 4.3.0 busy: come back: later"},
		{Kind: events.Attempt, Result: "temporary", QueueID: "1xa4hD-00000T-22", From: "sender@example.com", Rcpts: []string{"a@1.foo.example.com"},
			Error: "Connection refused"},
		{Kind: events.Failed, QueueID: "1xa4hD-00000T-22", From: "sender@example.com", Rcpts: []string{"b@1.foo.example.com"},
			Error: "Unrouteable address"},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Errorf("events\n%+v\nwant\n%+v", evs, want)
	}
}

// The captured logs: Exim R over smtp_accept_max_per_host (max_per_ip: 2,
// a burst from the Go sender), each session closed with the one message
// it carried; Exim R refusing unknown recipients (and the Go sender's
// bounces to a sender it does not know); Exim S's failures with the Go
// receiver's reply, each bounce's own failure from the null sender.
func TestParseCapturedEximLogs(t *testing.T) {
	read := func(name string, role topology.Role) []events.Event {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := ParseLog(bytes.NewReader(b), role, runTime)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	var got []string
	for _, e := range read("exim-receiver.log", topology.Receiver) {
		got = append(got, strings.TrimSpace(strings.Join([]string{string(e.Kind), e.Conn, e.Reason, strconv.Itoa(e.Count)}, " ")))
	}
	want := []string{
		"conn_open 172.24.0.4:58870  0",
		"conn_open 172.24.0.4:58892  0",
		"conn_open 172.24.0.4:58880#refused-1  0", "refused 172.24.0.4:58880#refused-1 max_per_ip 0",
		"conn_open 172.24.0.4:58902#refused-2  0", "refused 172.24.0.4:58902#refused-2 max_per_ip 0",
		"conn_open 172.24.0.4:58906#refused-3  0", "refused 172.24.0.4:58906#refused-3 max_per_ip 0",
		"conn_close 172.24.0.4:58870 quit 1",
		"conn_close 172.24.0.4:58892 quit 1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("exim-receiver.log:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	rejected := map[string]int{}
	for _, e := range read("exim-receiver-rejects.log", topology.Receiver) {
		if e.Kind == events.Rejected {
			if e.Code != 550 || e.Error != "Unrouteable address" || len(e.Rcpts) != 1 || !strings.HasPrefix(e.Conn, "172.22.0.4:") {
				t.Errorf("rejection %+v", e)
			}
			rejected[e.From+" "+e.Rcpts[0]]++
		}
	}
	if !reflect.DeepEqual(rejected, map[string]int{"sender@example.com nobody-1@1.foo.example.com": 1,
		"sender@example.com nobody-2@2.foo.example.com": 1, "sender@example.com nobody-3@3.foo.example.com": 1,
		" sender@example.com": 3}) {
		t.Errorf("rejections %v", rejected)
	}

	if evs := read("exim-sender.log", topology.Sender); len(evs) != 0 {
		t.Errorf("deliveries gave events: %+v", evs)
	}
	var failed []string
	for _, e := range read("exim-sender-failure.log", topology.Sender) {
		if e.Kind != events.Failed || e.Code != 550 || e.Enhanced != "5.1.1" || e.Rcpts == nil || e.QueueID == "" {
			t.Errorf("event %+v", e)
			continue
		}
		failed = append(failed, "<"+e.From+"> "+e.Rcpts[0])
	}
	wantFailed := []string{
		"<sender@example.com> nobody-1@1.foo.example.com", "<> sender@example.com",
		"<sender@example.com> nobody-2@2.foo.example.com", "<> sender@example.com",
		"<sender@example.com> nobody-3@3.foo.example.com", "<> sender@example.com",
	}
	if !reflect.DeepEqual(failed, wantFailed) {
		t.Errorf("failures %q, want %q", failed, wantFailed)
	}
}

// ParseEximLine takes the stamp with its milliseconds, the process and
// the message's id off the text.
func TestParseEximLine(t *testing.T) {
	l, ok := ParseEximLine("2026-12-06 05:18:44.560 [33] 1xa4e4-00000X-1n <= sender@example.com H=x [1.2.3.4]:5", runTime)
	if !ok || !l.Time.Equal(time.Date(2026, 12, 6, 5, 18, 44, 560e6, time.UTC)) || l.PID != "33" || l.ID != "1xa4e4-00000X-1n" ||
		l.Text != "<= sender@example.com H=x [1.2.3.4]:5" {
		t.Errorf("got %+v %v", l, ok)
	}
	l, ok = ParseEximLine("2026-12-06 05:18:44 +0000 1rLzVw-00000000Hb1-3fjH Completed", runTime)
	if !ok || l.PID != "" || l.ID != "1rLzVw-00000000Hb1-3fjH" || l.Text != "Completed" {
		t.Errorf("got %+v %v", l, ok)
	}
	if _, ok := ParseEximLine("2026-12-08 05:18:44 Start queue run: pid=1", runTime); ok {
		t.Error("a line dated two days after the run was taken")
	}
}
