package mta

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/smtplab/smtplab/lab/dnsstub"
	"github.com/smtplab/smtplab/lab/scenario"
)

func benchmark1999(t *testing.T) scenario.Scenario {
	t.Helper()
	sc, err := scenario.Load("../../scenarios/courier-1999-real.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// settings reads "NAME=value" lines; the last assignment wins, as when
// esmtpd sources the file.
func settings(b []byte) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			out[k] = v
		}
	}
	return out
}

func TestCourierReceiver1999(t *testing.T) {
	f := CourierReceiver(benchmark1999(t), "10.0.0.53")
	esmtpd := settings(f["/etc/courier/esmtpd.smtplab"])
	want := map[string]string{
		"MAXDAEMONS": "40", "MAXPERC": "40", "MAXPERIP": "40", "BOFHCHECKDNS": "0", "PORT": "25",
		"BLACKLISTS": `"-block=bl1.example.net,BLOCK,'Blacklisted by bl1.example.net' -block=bl2.example.net,BLOCK,'Blacklisted by bl2.example.net'"`,
		"TCPDOPTS":   `"-stderrlogger=/usr/sbin/courierlogger"`, // no -noidentlookup: ident on
	}
	for k, v := range want {
		if esmtpd[k] != v {
			t.Errorf("esmtpd %s=%s, want %s", k, esmtpd[k], v)
		}
	}
	for p, want := range map[string]string{
		"/etc/smtplab/resolv.conf":                    "nameserver 10.0.0.53\n",
		"/etc/courier/locals":                         "localhost\nexample.com\n.example.com\n",
		"/etc/courier/esmtpacceptmailfor.dir/smtplab": "example.com\n.example.com\n",
		"/etc/courier/me":                             "receiver.lab.example.net\n",
		"/etc/smtplab/mta.env":                        "SMTPLAB_ROLE=receiver\nSMTPLAB_ACCOUNT=recipient\nSMTPLAB_MAILDIR=/var/mail/recipient/Maildir\n",
	} {
		if got := string(f[p]); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

// couriertcpd gets one -block per zone with its message as one argument,
// after esmtpd's two shells: esmtpd sources the file and builds TCPDOPTS
// with $BLACKLISTS unquoted, echoes the command line and pipes it into
// /bin/sh (a bare -block=ZONE left BLOCK unset in 1.0.16: listed clients
// were accepted).
func TestCourierReceiverBlockArgs(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	sc := benchmark1999(t)
	sc.DNS.Blacklists = append(sc.DNS.Blacklists, scenario.Blacklist{Blacklist: dnsstub.Blacklist{Zone: "zen.spam-list.example."}})
	file := filepath.Join(t.TempDir(), "esmtpd")
	if err := os.WriteFile(file, CourierReceiver(sc, "10.0.0.53")["/etc/courier/esmtpd.smtplab"], 0o644); err != nil {
		t.Fatal(err)
	}
	// As /usr/sbin/esmtpd does, with printf in couriertcpd's place.
	script := `. "$1"; TCPDOPTS="$TCPDOPTS -user=courier $BLACKLISTS -maxprocs=$MAXDAEMONS"; echo printf "'%s\n'" $TCPDOPTS $PORT courieresmtpd | /bin/sh`
	out, err := exec.Command(sh, "-c", script, "sh", file).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var blocks []string
	for _, a := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(a, "-block") {
			blocks = append(blocks, a)
		}
	}
	want := []string{
		"-block=bl1.example.net,BLOCK,Blacklisted by bl1.example.net",
		"-block=bl2.example.net,BLOCK,Blacklisted by bl2.example.net",
		"-block=zen.spam-list.example.,BLOCK,Blacklisted by zen.spam-list.example.",
	}
	if !slices.Equal(blocks, want) {
		t.Errorf("couriertcpd's -block arguments %q, want %q (all: %q)", blocks, want, out)
	}
	if !strings.Contains(string(out), "\n-maxprocs=40\n25\ncourieresmtpd\n") {
		t.Errorf("the other arguments moved: %q", out)
	}
}

// The checks a scenario turns off become couriertcpd's options.
func TestCourierReceiverChecksOff(t *testing.T) {
	sc := benchmark1999(t)
	sc.Receiver.Ident, sc.Receiver.DNSBL, sc.Receiver.ReverseDNS, sc.Receiver.BOFHCheckDNS = false, false, false, true
	sc.Receiver.MaxPerC, sc.Receiver.MaxPerIP = 0, 3
	esmtpd := settings(CourierReceiver(sc, "10.0.0.53")["/etc/courier/esmtpd.smtplab"])
	for k, v := range map[string]string{
		"TCPDOPTS":   `"-stderrlogger=/usr/sbin/courierlogger -noidentlookup -nodnslookup"`,
		"BLACKLISTS": `""`, "BOFHCHECKDNS": "1",
		"MAXPERC":  "40", // 0, no limit: as many as MAXDAEMONS
		"MAXPERIP": "3",
	} {
		if esmtpd[k] != v {
			t.Errorf("esmtpd %s=%s, want %s", k, esmtpd[k], v)
		}
	}
}

func TestCourierSender(t *testing.T) {
	sc := benchmark1999(t)
	sc.Sender.MaxConnections, sc.Sender.MaxPerHost = 12, 3
	f := CourierSender(sc, "10.0.0.25", "10.0.0.53")
	if got, want := string(f["/etc/courier/esmtproutes"]), "example.com: [10.0.0.25]\n.example.com: [10.0.0.25]\n"; got != want {
		t.Errorf("esmtproutes %q, want %q", got, want)
	}
	mod := settings(f["/etc/courier/module.esmtp"])
	if mod["MAXDELS"] != "12" || mod["MAXHOST"] != "3" || mod["NAME"] != "esmtp" || mod["PROG"] != "./courieresmtp" {
		t.Errorf("module.esmtp %v", mod)
	}
	if got := string(f["/etc/smtplab/mta.env"]); got != "SMTPLAB_ROLE=sender\n" {
		t.Errorf("mta.env %q", got)
	}
}

func TestPostfixReceiver(t *testing.T) {
	sc := benchmark1999(t)
	f := PostfixReceiver(sc, "10.0.0.53")
	conf := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(f["/etc/smtplab/postconf"])), "\n") {
		k, v, ok := strings.Cut(l, " = ")
		if !ok {
			t.Fatalf("postconf line %q is not name = value", l)
		}
		conf[k] = v
	}
	for k, v := range map[string]string{
		"smtpd_client_restrictions":           "reject_unknown_client_hostname, reject_rbl_client bl1.example.net, reject_rbl_client bl2.example.net",
		"smtpd_sender_restrictions":           "", // BOFHCHECKDNS off
		"default_process_limit":               "40",
		"smtpd_client_connection_count_limit": "40",
		"recipient_delimiter":                 "-",
		"home_mailbox":                        "Maildir/",
		"myhostname":                          "receiver.lab.example.net",
	} {
		if conf[k] != v {
			t.Errorf("%s = %q, want %q", k, conf[k], v)
		}
	}
	// The local-domains table (Postfix regexp: POSIX ERE, which these
	// patterns share with Go's) takes the workload's hosts and nothing
	// else.
	var pats []*regexp.Regexp
	for _, l := range strings.Split(strings.TrimSpace(string(f["/etc/postfix/smtplab-local-domains"])), "\n") {
		pat, action, _ := strings.Cut(l, " ")
		if action != "OK" || !strings.HasPrefix(pat, "/") || !strings.HasSuffix(pat, "/") {
			t.Fatalf("table line %q", l)
		}
		pats = append(pats, regexp.MustCompile(pat[1:len(pat)-1]))
	}
	match := func(h string) bool {
		for _, p := range pats {
			if p.MatchString(h) {
				return true
			}
		}
		return false
	}
	for _, h := range append(sc.Workload.Hosts(), "example.com") {
		if !match(h) {
			t.Errorf("%s is not local", h)
		}
	}
	for _, h := range []string{"example.net", "badexample.com", "example.com.evil.net", "xexample-com"} {
		if match(h) {
			t.Errorf("%s is local", h)
		}
	}
}
