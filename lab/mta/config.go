// Package mta is everything the lab knows of real MTAs (Debian's Courier
// 1.0.16, Postfix 3.7 and Exim 4.96) playing a role: their configuration from a
// scenario (Setup; the files are written into the container before it
// starts, and the image's smtplab-start.sh applies them), their mail logs
// read into the lab's typed events (ParseLog), and the run's handle on
// them (Handle), which reads each MTA in its container through a narrow
// exec interface. lab/stack builds their images (images/courier,
// images/postfix, images/exim).
//
// What each setting becomes, and what the Go models do that these cannot,
// is in docs/REAL-MTAS.md.
package mta

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"strings"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/topology"
)

// Files are a container's configuration: path in the container -> content.
type Files map[string][]byte

// LogPath is where both images' start scripts have the MTA log.
const LogPath = "/var/log/mail.log"

func (f Files) set(p, format string, args ...any) { f[p] = fmt.Appendf(nil, format, args...) }

func common(role topology.Role, dnsIP string) Files {
	f := Files{}
	// Courier's resolver and glibc's both read the nameserver lines.
	f.set("/etc/smtplab/resolv.conf", "nameserver %s\n", dnsIP)
	f.set("/etc/smtplab/mta.env", "SMTPLAB_ROLE=%s\n", role)
	return f
}

func receiverEnv(f Files, rc scenario.Receiver) {
	f.set("/etc/smtplab/mta.env", "SMTPLAB_ROLE=receiver\nSMTPLAB_ACCOUNT=%s\nSMTPLAB_MAILDIR=%s\n", rc.Account, path.Clean(rc.Maildir))
}

// CourierReceiver is Courier R as the scenario's receiver: esmtpd's
// limits, one -block per blacklist zone, IDENT and reverse DNS as the
// checks say, BOFHCHECKDNS, the local domains (locals and
// esmtpacceptmailfor) and one catch-all Maildir for the account.
func CourierReceiver(sc scenario.Scenario, dnsIP string) Files {
	rc := sc.Receiver
	f := common(topology.Receiver, dnsIP)
	receiverEnv(f, rc)
	var b strings.Builder
	b.WriteString("\n# smtplab: the scenario's receiver (lab/mta)\nPORT=25\n")
	fmt.Fprintf(&b, "MAXDAEMONS=%d\nMAXPERC=%d\nMAXPERIP=%d\n", rc.MaxSessions, orAll(rc.MaxPerC, rc.MaxSessions), orAll(rc.MaxPerIP, rc.MaxSessions))
	fmt.Fprintf(&b, "BOFHCHECKDNS=%d\n", boolInt(rc.BOFHCheckDNS))
	var blocks []string
	if rc.DNSBL {
		for _, bl := range sc.DNS.Blacklists {
			blocks = append(blocks, courierBlock(bl.Zone))
		}
	}
	// Double quotes for esmtpd's own sourcing; the single quotes inside
	// reach the second shell esmtpd pipes its couriertcpd command into.
	fmt.Fprintf(&b, "BLACKLISTS=\"%s\"\n", strings.Join(blocks, " "))
	tcpd := []string{"-stderrlogger=/usr/sbin/courierlogger"}
	if !rc.Ident {
		tcpd = append(tcpd, "-noidentlookup")
	}
	if !rc.ReverseDNS {
		tcpd = append(tcpd, "-nodnslookup")
	}
	fmt.Fprintf(&b, "TCPDOPTS=%q\n", strings.Join(tcpd, " "))
	f["/etc/courier/esmtpd.smtplab"] = []byte(b.String())
	f.set("/etc/courier/me", "%s\n", rc.Hostname)
	f.set("/etc/courier/defaultdomain", "%s\n", rc.Hostname)
	domains := strings.Join(rc.LocalDomains, "\n") + "\n"
	f["/etc/courier/locals"] = []byte("localhost\n" + domains)
	f["/etc/courier/esmtpacceptmailfor.dir/smtplab"] = []byte(domains)
	f.set("/etc/courier/sizelimit", "%d\n", rc.MaxMessage)
	return f
}

// courierBlock is couriertcpd's -block option for one DNSBL zone, with
// its message given: -block=ZONE,BLOCK,'Blacklisted by ZONE'.
//
// Debian's couriertcpd 1.0.16, given a bare -block=ZONE, sets BLOCK_ZONE
// and BLOCK_IP when the A lookup answers but leaves BLOCK unset (seen
// live; it seems to want the text from a TXT record, which an A answer
// lacks), and Courier refuses RCPT on BLOCK alone (submit's checkrcpt):
// a listed client was accepted, and the next zone still asked. With the
// message any A answer sets BLOCK (the address is not compared), with the
// text the Go model and later couriertcpd use; submit answers each RCPT
// with it, coded 511.
//
// esmtpd echoes its couriertcpd command line (BLACKLISTS unquoted) into a
// second /bin/sh, so the single quotes keep the message one argument
// there. Zones are letters, digits, hyphens and dots (scenario
// validation): nothing in them is special to either shell.
func courierBlock(zone string) string {
	return fmt.Sprintf("-block=%s,BLOCK,'Blacklisted by %s'", zone, zone)
}

// CourierSender is Courier S as the scenario's sender: esmtproutes to the
// receiver's address, MAXDELS and MAXHOST from the sender's limits.
func CourierSender(sc scenario.Scenario, receiverIP, dnsIP string) Files {
	sd := sc.Sender
	f := common(topology.Sender, dnsIP)
	var routes strings.Builder
	for _, rt := range sd.Routes {
		fmt.Fprintf(&routes, "%s: [%s]\n", rt.Domain, receiverIP)
	}
	f["/etc/courier/esmtproutes"] = []byte(routes.String())
	f.set("/etc/courier/module.esmtp", "NAME=esmtp\nPRIORITY=50\nPROG=./courieresmtp\nMAXDELS=%d\nMAXHOST=%d\nMAXRCPT=100\n",
		sd.MaxConnections, sd.MaxPerHost)
	f.set("/etc/courier/me", "%s\n", sd.Hostname)
	f.set("/etc/courier/defaultdomain", "%s\n", sd.Hostname)
	// How long an idle session waits for the next message to its host
	// (module.esmtp/esmtpconfig.c reads it in whole seconds; 60 when
	// absent): the Go sender's idle_close, so both keep sessions alike.
	f.set("/etc/courier/esmtptimeoutkeepalive", "%d\n", int(math.Ceil(sd.IdleClose.D().Seconds())))
	return f
}

// PostfixReceiver is Postfix as the scenario's receiver, the closest it
// comes to Courier R: reverse DNS with forward confirmation
// (reject_unknown_client_hostname), one reject_rbl_client per blacklist
// zone, the sender's domain checked when BOFHCheckDNS, smtpd processes and
// per-client connections from the limits, the local domains by a regexp
// table, account-EXT into the account's Maildir. Postfix has no IDENT
// lookup and no per-/24 limit.
func PostfixReceiver(sc scenario.Scenario, dnsIP string) Files {
	rc := sc.Receiver
	f := common(topology.Receiver, dnsIP)
	receiverEnv(f, rc)
	var table strings.Builder
	for _, d := range rc.LocalDomains {
		if sub, ok := strings.CutPrefix(d, "."); ok {
			fmt.Fprintf(&table, "/\\.%s$/ OK\n", regexp.QuoteMeta(strings.ToLower(sub)))
		} else {
			fmt.Fprintf(&table, "/^%s$/ OK\n", regexp.QuoteMeta(strings.ToLower(d)))
		}
	}
	f["/etc/postfix/smtplab-local-domains"] = []byte(table.String())
	var client []string
	if rc.ReverseDNS {
		client = append(client, "reject_unknown_client_hostname")
	}
	if rc.DNSBL {
		for _, bl := range sc.DNS.Blacklists {
			client = append(client, "reject_rbl_client "+bl.Zone)
		}
	}
	var sender []string
	if rc.BOFHCheckDNS {
		sender = append(sender, "reject_unknown_sender_domain")
	}
	settings := []string{
		"myhostname = " + rc.Hostname,
		"myorigin = $myhostname",
		"mydestination = localhost, regexp:/etc/postfix/smtplab-local-domains",
		"recipient_delimiter = -",
		"home_mailbox = " + path.Base(path.Clean(rc.Maildir)) + "/",
		fmt.Sprintf("default_process_limit = %d", rc.MaxSessions),
		fmt.Sprintf("smtpd_client_connection_count_limit = %d", rc.MaxPerIP),
		"smtpd_client_restrictions = " + strings.Join(client, ", "),
		"smtpd_sender_restrictions = " + strings.Join(sender, ", "),
		fmt.Sprintf("message_size_limit = %d", rc.MaxMessage),
		"smtpd_timeout = " + postfixSeconds(rc.CommandTimeout),
	}
	f["/etc/smtplab/postconf"] = []byte(strings.Join(settings, "\n") + "\n")
	return f
}

// PostfixSender is Postfix as the scenario's sender: each route's domain
// sent to the receiver by a regexp transport table, nothing local but
// localhost. Postfix limits connections per next hop, not per recipient
// domain, and every route leads to the one receiver: its
// smtp_destination_concurrency_limit is max_connections, and max_per_host
// has no equivalent. Postfix caches a session only for a next hop with
// mail waiting (connection caching on demand), for at most
// smtp_connection_cache_time_limit, set to idle_close: at a pace the
// receiver keeps up with, it opens a session per message (docs/REAL-MTAS.md).
func PostfixSender(sc scenario.Scenario, receiverIP, dnsIP string) Files {
	sd := sc.Sender
	f := common(topology.Sender, dnsIP)
	var table strings.Builder
	for _, rt := range sd.Routes {
		d := strings.ToLower(rt.Domain)
		if sub, ok := strings.CutPrefix(d, "."); ok {
			fmt.Fprintf(&table, "/\\.%s$/ smtp:[%s]:25\n", regexp.QuoteMeta(sub), receiverIP)
		} else {
			fmt.Fprintf(&table, "/^%s$/ smtp:[%s]:25\n", regexp.QuoteMeta(d), receiverIP)
		}
	}
	f["/etc/postfix/smtplab-transport"] = []byte(table.String())
	settings := []string{
		"myhostname = " + sd.Hostname,
		"myorigin = $myhostname",
		"mydestination = localhost",
		"transport_maps = regexp:/etc/postfix/smtplab-transport",
		fmt.Sprintf("default_process_limit = %d", max(sd.MaxConnections, 100)),
		fmt.Sprintf("smtp_destination_concurrency_limit = %d", sd.MaxConnections),
		"smtp_connection_cache_time_limit = " + postfixSeconds(sd.IdleClose),
	}
	f["/etc/smtplab/postconf"] = []byte(strings.Join(settings, "\n") + "\n")
	return f
}

func postfixSeconds(d duration.Duration) string {
	return fmt.Sprintf("%ds", max(int(d.D().Seconds()), 1))
}

// orAll is n, or all when n is 0 (the scenario's "no limit").
func orAll(n, all int) int {
	if n == 0 {
		return all
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Setup is what mta (scenario.ImplCourier, ImplPostfix or ImplExim) playing role is
// started with: its configuration files, and the line its start script
// prints once the MTA is up (images/<mta>/smtplab-start.sh). A sender's
// container also gets the workload, read by `lab inject` (Handle.Inject).
func Setup(mta string, role topology.Role, sc scenario.Scenario, dnsIP, receiverIP string, workload []byte) (Files, string, error) {
	var f Files
	switch {
	case role == topology.Receiver && mta == scenario.ImplCourier:
		f = CourierReceiver(sc, dnsIP)
	case role == topology.Receiver && mta == scenario.ImplPostfix:
		f = PostfixReceiver(sc, dnsIP)
	case role == topology.Receiver && mta == scenario.ImplExim:
		f = EximReceiver(sc, dnsIP)
	case role == topology.Sender && mta == scenario.ImplCourier:
		f = CourierSender(sc, receiverIP, dnsIP)
		f[topology.WorkloadPath] = workload
	case role == topology.Sender && mta == scenario.ImplPostfix:
		f = PostfixSender(sc, receiverIP, dnsIP)
		f[topology.WorkloadPath] = workload
	case role == topology.Sender && mta == scenario.ImplExim:
		f = EximSender(sc, receiverIP, dnsIP)
		f[topology.WorkloadPath] = workload
	default:
		return nil, "", fmt.Errorf("the lab cannot run %s as the %s", mta, role)
	}
	return f, fmt.Sprintf("smtplab %s %s ready", mta, role), nil
}
