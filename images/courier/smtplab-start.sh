#!/bin/sh
# Starts Courier without systemd, as the lab needs it (see
# docs/REAL-MTAS.md), then follows the mail log on stdout.
#
# The lab has written, before the start:
#   /etc/smtplab/mta.env      SMTPLAB_ROLE (receiver or sender), and for a
#                             receiver SMTPLAB_ACCOUNT and SMTPLAB_MAILDIR
#   /etc/smtplab/resolv.conf  the lab's DNS server (Docker's own resolver
#                             would answer container names and PTRs itself)
#   /etc/courier/esmtpd.smtplab  settings appended to esmtpd (sourced: the
#                             last assignment wins)
#   me, defaultdomain, locals, esmtpacceptmailfor.dir/smtplab,
#   esmtproutes, module.esmtp  as the scenario asks (lab/mta)
set -eu
. /etc/smtplab/mta.env
cat /etc/smtplab/resolv.conf > /etc/resolv.conf
if [ -f /etc/courier/esmtpd.smtplab ]; then
	cat /etc/courier/esmtpd.smtplab >> /etc/courier/esmtpd
fi
mkdir -p /run/courier/authdaemon
chown root:courier /run/courier && chmod 0775 /run/courier
chown courier:courier /run/courier/authdaemon && chmod 0750 /run/courier/authdaemon
touch /var/log/mail.log
# courierlogger writes to syslog only: without a syslog daemon its lines
# are lost. busybox syslogd, every facility into one file (Debian's busybox
# 1.35 has no log rotation: the lab reads a run's log whole).
syslogd -O /var/log/mail.log
makeacceptmailfor
makealiases 2>/dev/null || true
if [ "$SMTPLAB_ROLE" = receiver ]; then
	home=$(dirname "$SMTPLAB_MAILDIR")
	mkdir -p "$home"
	id "$SMTPLAB_ACCOUNT" >/dev/null 2>&1 || useradd -M -d "$home" -s /bin/sh "$SMTPLAB_ACCOUNT"
	[ -d "$SMTPLAB_MAILDIR" ] || maildirmake "$SMTPLAB_MAILDIR"
	# One catch-all: every account-EXT address into the one Maildir, as
	# the 1999 benchmark's .courier-foo-default did.
	echo "$SMTPLAB_MAILDIR" > "$home/.courier-default"
	chown -R "$SMTPLAB_ACCOUNT" "$home"
fi
if [ "$SMTPLAB_ROLE" = sender ]; then
	# Modern Courier looks up MTA-STS (a TXT query per connection); 1999's
	# did not.
	testmxlookup --sts-cache-disable >/dev/null
fi
authdaemond start
courierfilter start
courier start
if [ "$SMTPLAB_ROLE" = receiver ]; then
	esmtpd start
	# esmtpd start exits 0 even when couriertcpd cannot listen: wait for
	# port 25 (0019) in LISTEN (0A) state.
	n=0
	until grep -q ':0019 [0-9A-F:]* 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; do
		n=$((n + 1))
		if [ $n -gt 100 ]; then
			echo "smtplab: courier esmtpd is not listening on port 25" >&2
			cat /var/log/mail.log >&2
			exit 1
		fi
		sleep 0.1
	done
fi
echo "smtplab courier $SMTPLAB_ROLE ready"
exec tail -n +1 -F /var/log/mail.log
