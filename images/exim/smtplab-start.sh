#!/bin/sh
# Starts Exim without systemd, as the lab needs it (see docs/REAL-MTAS.md),
# then follows its main log on stdout.
#
# The lab has written, before the start:
#   /etc/smtplab/mta.env      SMTPLAB_ROLE (receiver or sender), and for a
#                             receiver SMTPLAB_ACCOUNT and SMTPLAB_MAILDIR
#   /etc/smtplab/resolv.conf  the lab's DNS server
#   /etc/exim4/exim4.conf     Exim's whole configuration (lab/mta/exim.go)
set -eu
. /etc/smtplab/mta.env
cat /etc/smtplab/resolv.conf > /etc/resolv.conf
# What Debian's init script makes: the pid file's folder, and the main
# log (/var/log/mail.log links to it) owned by the user Exim logs as.
mkdir -p /run/exim4
chown Debian-exim:Debian-exim /run/exim4
touch /var/log/exim4/mainlog
chown Debian-exim:adm /var/log/exim4/mainlog
chmod 640 /var/log/exim4/mainlog
if [ "$SMTPLAB_ROLE" = receiver ]; then
	home=$(dirname "$SMTPLAB_MAILDIR")
	mkdir -p "$home"
	id "$SMTPLAB_ACCOUNT" >/dev/null 2>&1 || useradd -M -d "$home" -s /bin/sh "$SMTPLAB_ACCOUNT"
	for d in tmp new cur; do mkdir -p "$SMTPLAB_MAILDIR/$d"; done
	chown -R "$SMTPLAB_ACCOUNT" "$home"
fi
# A configuration Exim refuses stops the start here, with its reason.
exim4 -bV >/dev/null
if [ "$SMTPLAB_ROLE" = receiver ]; then
	# The listening daemon, with a queue runner for deliveries deferred.
	exim4 -bd -q1m
	n=0
	until grep -q ':0019 [0-9A-F:]* 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; do
		n=$((n + 1))
		if [ $n -gt 100 ]; then
			echo "smtplab: exim is not listening on port 25" >&2
			cat /var/log/exim4/mainlog /var/log/exim4/paniclog >&2 2>/dev/null || true
			exit 1
		fi
		sleep 0.1
	done
else
	# No listener: the workload comes through sendmail (lab inject), each
	# message delivered by a process of its own; this daemon only runs the
	# queue for what was deferred.
	exim4 -q1m
fi
echo "smtplab exim $SMTPLAB_ROLE ready"
exec tail -n +1 -F /var/log/mail.log
