#!/bin/sh
# Starts Postfix without systemd, as the lab needs it (see
# docs/REAL-MTAS.md), then follows the mail log on stdout.
#
# The lab has written, before the start:
#   /etc/smtplab/mta.env      SMTPLAB_ROLE (receiver or sender), and for a
#                             receiver SMTPLAB_ACCOUNT and SMTPLAB_MAILDIR
#   /etc/smtplab/resolv.conf  the lab's DNS server
#   /etc/smtplab/postconf     main.cf settings, one "name = value" a line
#   /etc/postfix/*            any table those settings name (lab/mta)
set -eu
. /etc/smtplab/mta.env
cat /etc/smtplab/resolv.conf > /etc/resolv.conf
while IFS= read -r setting; do
	[ -n "$setting" ] && postconf -e "$setting"
done < /etc/smtplab/postconf
touch /var/log/mail.log
if [ "$SMTPLAB_ROLE" = receiver ]; then
	home=$(dirname "$SMTPLAB_MAILDIR")
	mkdir -p "$home"
	id "$SMTPLAB_ACCOUNT" >/dev/null 2>&1 || useradd -M -d "$home" -s /bin/sh "$SMTPLAB_ACCOUNT"
	for d in tmp new cur; do mkdir -p "$SMTPLAB_MAILDIR/$d"; done
	chown -R "$SMTPLAB_ACCOUNT" "$home"
fi
postfix check
postfix start
n=0
until grep -q ':0019 [0-9A-F:]* 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; do
	n=$((n + 1))
	if [ $n -gt 100 ]; then
		echo "smtplab: postfix is not listening on port 25" >&2
		cat /var/log/mail.log >&2
		exit 1
	fi
	sleep 0.1
done
echo "smtplab postfix $SMTPLAB_ROLE ready"
exec tail -n +1 -F /var/log/mail.log
