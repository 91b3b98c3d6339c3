#!/bin/sh
# Postfix in the foreground, its log in a file.
set -e
touch /var/log/mail.log
exec postfix start-fg
