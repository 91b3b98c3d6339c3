package mta

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/smtplab/smtplab/lab/duration"
	"github.com/smtplab/smtplab/lab/scenario"
	"github.com/smtplab/smtplab/lab/topology"
)

// EximConfigPath is Exim's whole run-time configuration in the image:
// Debian's exim4 reads it before the file update-exim4.conf generates
// (its CONFIGURE_FILE search path, `exim4 -bV`), so the lab writes the
// scenario's configuration there and nothing of Debian's is used.
const EximConfigPath = "/etc/exim4/exim4.conf"

// eximLogSelector turns on what the lab reads of Exim's main log
// (ParseLog): the connection lines (smtp_connection, smtp_no_mail), the
// client's port and the interface on every H= and connection line
// (incoming_port, incoming_interface: ip:port names a connection), the
// sender on delivery and deferral lines (sender_on_delivery), the peer's
// port and the local end of each delivery (outgoing_port,
// outgoing_interface), the sizes and times of deliveries, and the
// process and milliseconds on each line (Exim's spec, "Log files",
// "Reducing or increasing what is logged").
const eximLogSelector = "+smtp_connection +smtp_no_mail +incoming_port +incoming_interface +received_recipients " +
	"+sender_on_delivery +outgoing_port +outgoing_interface +delivery_size +deliver_time +queue_time +pid +millisec"

// eximRetry is the retry rule of the configuration Exim ships (its
// src/configure.default): every 15 minutes for 2 hours, then growing
// intervals to 16 hours, then every 6 hours up to 4 days. The Go sender's
// retry and max_attempts are its own (docs/REAL-MTAS.md).
const eximRetry = "*  *  F,2h,15m; G,16h,1h,1.5; F,4d,6h"

// EximReceiver is Exim as the scenario's receiver, the closest it comes
// to Courier R: the client's name looked up and confirmed (host_lookup:
// PTR, then A of the name), an IDENT query (rfc1413_hosts), the
// blacklists asked in order once per connection, as couriertcpd asks
// them before the greeting (dnslists in the connect ACL: the first zone
// listing the client ends the list and is kept in an ACL variable), and
// a listed client's every recipient refused with Courier's text, as
// courieresmtpd refuses RCPT for a -block listing (asked at RCPT, Exim
// would ask again for every recipient: it keeps an answer only for its
// TTL, 0 in the lab, dnsbl.c), the sender's
// domain resolved at MAIL when BOFHCheckDNS (MX, else A), sessions in all
// and per client (smtp_accept_max, smtp_accept_max_per_host), the local
// domains, and every account or account-EXT recipient into the account's
// Maildir (appendfile in maildir_format). Exim has no per-/24 limit.
func EximReceiver(sc scenario.Scenario, dnsIP string) Files {
	rc := sc.Receiver
	f := common(topology.Receiver, dnsIP)
	receiverEnv(f, rc)
	var b strings.Builder
	b.WriteString("# smtplab: the scenario's receiver (lab/mta/exim.go)\n")
	set := func(name, format string, args ...any) { fmt.Fprintf(&b, name+" = "+format+"\n", args...) }
	eximCommon(set)
	set("primary_hostname", "%s", rc.Hostname)
	set("domainlist local_domains", "%s", strings.Join(append([]string{"localhost"}, eximDomains(rc.LocalDomains)...), " : "))
	set("daemon_smtp_ports", "25")
	set("local_interfaces", "0.0.0.0")
	set("host_lookup", "%s", eximAll(rc.ReverseDNS))
	set("rfc1413_hosts", "%s", eximAll(rc.Ident))
	set("rfc1413_query_timeout", "%s", eximSeconds(rc.IdentTimeout))
	set("smtp_accept_max", "%d", rc.MaxSessions)
	set("smtp_accept_max_per_host", "%d", rc.MaxPerIP)
	// Exim queues the 11th and later messages of one session for the
	// next queue run by default; the Go and Courier receivers deliver
	// every message at once.
	set("smtp_accept_queue_per_connection", "0")
	set("message_size_limit", "%d", rc.MaxMessage)
	set("smtp_receive_timeout", "%s", eximSeconds(rc.CommandTimeout))
	set("acl_smtp_connect", "smtplab_connect")
	set("acl_smtp_mail", "smtplab_mail")
	set("acl_smtp_rcpt", "smtplab_rcpt")
	var zones []string
	if rc.DNSBL {
		for _, bl := range sc.DNS.Blacklists {
			zones = append(zones, bl.Zone)
		}
	}

	b.WriteString("\nbegin acl\n\nsmtplab_connect:\n  warn    set acl_c_listed =\n")
	if len(zones) > 0 {
		fmt.Fprintf(&b, "  warn    dnslists  = %s\n          set acl_c_listed = $dnslist_domain\n", strings.Join(zones, " : "))
	}
	b.WriteString("  accept\n\nsmtplab_mail:\n")
	if rc.BOFHCheckDNS {
		// Courier's BOFHCHECKDNS: the MAIL FROM domain has an MX, else an A.
		b.WriteString("  deny    condition = ${if and{{!eq{$sender_address_domain}{}}" +
			"{eq{${lookup dnsdb{mx=$sender_address_domain}{yes}{${lookup dnsdb{a=$sender_address_domain}{yes}{no}}}}}{no}}}}\n" +
			"          message   = 501 <$sender_address>: domain does not resolve\n")
	}
	b.WriteString("  accept\n\nsmtplab_rcpt:\n")
	if len(zones) > 0 {
		b.WriteString("  deny    condition = ${if !eq{$acl_c_listed}{}}\n          message   = 511 Blacklisted by $acl_c_listed\n")
	}
	b.WriteString("  require domains   = +local_domains\n          message   = 550 relaying denied\n")
	b.WriteString("  require verify    = recipient\n  accept\n")

	account := strings.ToLower(rc.Account)
	fmt.Fprintf(&b, "\nbegin routers\n\nsmtplab_maildir:\n  driver = accept\n  domains = +local_domains\n"+
		"  local_parts = \\N^%s(-.*)?$\\N\n  transport = smtplab_maildir\n", regexp.QuoteMeta(account))
	fmt.Fprintf(&b, "\nbegin transports\n\nsmtplab_maildir:\n  driver = appendfile\n  directory = %s\n  maildir_format\n"+
		"  create_directory\n  user = %s\n  mode = 0600\n  delivery_date_add\n  envelope_to_add\n  return_path_add\n",
		eximString(path.Clean(rc.Maildir)), rc.Account)
	fmt.Fprintf(&b, "\nbegin retry\n\n%s\n", eximRetry)
	f[EximConfigPath] = []byte(b.String())
	return f
}

// EximSender is Exim as the scenario's sender: each route's domain sent
// to the receiver's address (manualroute, no MX or A lookup), TLS never
// tried (1999's session was plain), the phases' timeouts from the
// sender's: connect_timeout, command_timeout (the longest of the
// greeting's, HELO's, MAIL's, RCPT's, DATA's and QUIT's: Exim has one for
// every reply but the last) and final_timeout (the reply to the end of
// the data). Exim delivers each message as it takes it, in a process of
// its own: it has no limit on connections in all nor per host across
// messages. remote_max_parallel (one message's recipients at once) and
// queue_run_max (queue runners at once) are set to max_connections;
// max_per_host and idle_close have no equivalent (docs/REAL-MTAS.md).
func EximSender(sc scenario.Scenario, receiverIP, dnsIP string) Files {
	sd := sc.Sender
	f := common(topology.Sender, dnsIP)
	var b strings.Builder
	b.WriteString("# smtplab: the scenario's sender (lab/mta/exim.go)\n")
	set := func(name, format string, args ...any) { fmt.Fprintf(&b, name+" = "+format+"\n", args...) }
	eximCommon(set)
	set("primary_hostname", "%s", sd.Hostname)
	set("qualify_domain", "%s", sd.Hostname)
	set("domainlist local_domains", "localhost")
	set("remote_max_parallel", "%d", sd.MaxConnections)
	set("queue_run_max", "%d", sd.MaxConnections)
	var routes []string
	for _, rt := range sd.Routes {
		routes = append(routes, rt.Domain)
	}
	fmt.Fprintf(&b, "\nbegin routers\n\nsmtplab_routes:\n  driver = manualroute\n  domains = %s\n"+
		"  route_list = * %s\n  transport = smtplab_smtp\n", strings.Join(eximDomains(routes), " : "), receiverIP)
	fmt.Fprintf(&b, "\nbegin transports\n\nsmtplab_smtp:\n  driver = smtp\n  port = 25\n  hosts_avoid_tls = *\n"+
		"  connect_timeout = %s\n  command_timeout = %s\n  final_timeout = %s\n",
		eximSeconds(sd.ConnectTimeout), eximSeconds(duration.Duration(max(sd.GreetingTimeout.D(), sd.HeloTimeout.D(), sd.MailTimeout.D(),
			sd.RcptTimeout.D(), sd.DataTimeout.D(), sd.QuitTimeout.D()))), eximSeconds(sd.EndOfDataTimeout))
	fmt.Fprintf(&b, "\nbegin retry\n\n%s\n", eximRetry)
	f[EximConfigPath] = []byte(b.String())
	return f
}

// eximCommon sets what both roles share: IPv4 only (the lab's network),
// no TLS offered, an empty environment kept (Exim warns of every purge
// otherwise), the log the lab reads, and a bounce that cannot be
// delivered either dropped at once (ignore_bounce_errors_after 0s: a
// failed bounce whose age is at least that is discarded, deliver.c),
// where Exim would freeze it for days and its queue would never empty.
func eximCommon(set func(name, format string, args ...any)) {
	set("keep_environment", "")
	set("ignore_bounce_errors_after", "0s")
	set("disable_ipv6", "true")
	set("tls_advertise_hosts", "")
	set("log_selector", "%s", eximLogSelector)
}

// eximDomains writes the scenario's domains as an Exim domain list's
// items: ".example.com" (any name under it) becomes the wildcard
// "*.example.com"; names are matched caselessly.
func eximDomains(ds []string) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		d = strings.ToLower(d)
		if sub, ok := strings.CutPrefix(d, "."); ok {
			d = "*." + sub
		}
		out = append(out, d)
	}
	return out
}

// eximAll is the host list matching every host, or none.
func eximAll(on bool) string {
	if on {
		return "*"
	}
	return ""
}

// eximSeconds is d as an Exim time, whole seconds, at least 1.
func eximSeconds(d duration.Duration) string {
	return fmt.Sprintf("%ds", max(int(d.D().Seconds()), 1))
}

// eximString keeps s literal in an option Exim expands: its "\" and "$"
// escaped.
func eximString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `$`, `\$`).Replace(s)
}
