#!/usr/bin/env bash
# The sender against Postfix delivering its own queue (issue 19;
# docs/PERFORMANCE.md, "Postfix delivering its own queue").
#
#   bash docs/bench/sender-vs-postfix-queue.sh [rounds] [messages]
#
# rounds: 3; messages: 5000. smtp-source and the sender work from memory
# and from a file per message; Postfix's own delivery is the C program
# that, like the sender, works from a durable queue. Each round:
#   1. Postfix: a private instance (its own configuration, queue and
#      log under a temporary folder; the system's Postfix is not touched
#      and need not run) takes the messages from smtp-source with its
#      smtp transport deferred, then delivers its deferred queue to
#      smtp-sink (relayhost, 40 sessions to it, each reused while the
#      queue has more: Postfix's connection cache), timed from
#      `postqueue -f` until its queue is empty;
#   2. the Go benchmark BenchmarkSenderReuseAgainstSmtpSourceD for one
#      round with as many messages: smtp-source -d -s 40 and the sender
#      with 40 sessions to one host, reused.
# Prints a line per run, then the medians and ratios. msgs/s is the
# messages over the run's wall time; CPU is the run's own user+system
# time per message: for Postfix, that of all its processes (master,
# qmgr, smtp, postlogd; /proc, with the master's reaped children).
# Every Postfix run's deliveries are counted in its log: a short count
# fails. Needs root (Postfix's master) and Debian's postfix package.
set -euo pipefail
rounds=${1:-3} n=${2:-5000}
root=$(cd "$(dirname "$0")/../.." && pwd)
for t in postfix postconf postqueue smtp-sink smtp-source; do
  command -v "$t" >/dev/null || { echo "$t not found: apt-get install postfix" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "Postfix's master must start as root" >&2; exit 2; }
w=$(mktemp -d /tmp/smtplab-pfqueue.XXXXXX)
chmod 755 "$w"
sinkport=2530 inport=2531
sink=
cleanup() {
  postfix -c "$w/etc" stop >/dev/null 2>&1 || true
  [ -n "$sink" ] && kill "$sink" 2>/dev/null
  rm -rf "$w"
}
trap cleanup EXIT

mkdir -p "$w/etc" "$w/spool" "$w/data"
chown postfix "$w/data"
# Postfix's master.cf, its smtpd on a loopback port of our own.
sed "s/^smtp      inet/127.0.0.1:$inport inet/" /etc/postfix/master.cf >"$w/etc/master.cf"
cat >"$w/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $w/spool
data_directory = $w/data
maillog_file_prefixes = $w
maillog_file = $w/postfix.log
myhostname = bench.test
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
smtpd_tls_security_level = none
relayhost = [127.0.0.1]:$sinkport
default_destination_concurrency_limit = 40
smtp_destination_concurrency_limit = 40
default_process_limit = 100
defer_transports = smtp
EOF
pf() { postfix -c "$w/etc" "$@" >/dev/null 2>&1; }
pf check
pf start
smtp-sink -u nobody 127.0.0.1:$sinkport 1000 & sink=$!
for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$inport) 2>/dev/null && break; sleep 0.05; done
tick=$(getconf CLK_TCK)

# queued: the messages in Postfix's queue, any state.
queued() { find "$w/spool/incoming" "$w/spool/active" "$w/spool/deferred" -type f | wc -l; }
# pfcpu: CPU ticks of Postfix's processes so far: the live ones' own and
# the master's reaped children's.
pfcpu() {
  local m t=0 s
  m=$(tr -d ' ' <"$w/spool/pid/master.pid")
  for p in $(pgrep -P "$m") "$m"; do
    s=($(cat "/proc/$p/stat" 2>/dev/null || true))
    [ ${#s[@]} -gt 16 ] && t=$((t + s[13] + s[14]))
  done
  s=($(cat "/proc/$m/stat"))
  echo $((t + s[15] + s[16]))
}

# postfix_run ROUND: fill Postfix's queue with n messages, then time
# their delivery.
postfix_run() {
  local sent0 sent1 c0 c1 t0 t1
  postconf -c "$w/etc" -e defer_transports=smtp; pf reload; sleep 1
  smtp-source -s 20 -m "$n" -l 100 -f sender@example.test -t recipient-foo-0@0.foo.test 127.0.0.1:$inport
  until [ "$(find "$w/spool/deferred" -type f | wc -l)" -eq "$n" ] && [ "$(queued)" -eq "$n" ]; do sleep 0.2; done
  postconf -c "$w/etc" -e defer_transports=; pf reload; sleep 2
  sent0=$(grep -c 'status=sent' "$w/postfix.log" || true)
  c0=$(pfcpu); t0=$(date +%s.%N)
  postqueue -c "$w/etc" -f
  while [ "$(queued)" -gt 0 ]; do sleep 0.02; done
  t1=$(date +%s.%N); c1=$(pfcpu)
  sleep 1
  sent1=$(grep -c 'status=sent' "$w/postfix.log" || true)
  if [ $((sent1 - sent0)) -ne "$n" ]; then echo "postfix sent $((sent1 - sent0)) of $n" >&2; exit 1; fi
  awk -v r="$1" -v n="$n" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v tick="$tick" \
    'BEGIN { printf "%s postfix-queue %.0f %.0f\n", r, n / (t1 - t0), c / tick * 1e6 / n }' | tee -a "$w/runs"
}

# go_run ROUND: one round of the Go benchmark: smtp-source -d and the sender.
go_run() {
  local out
  out=$(cd "$root" && SMTPLAB_SEND_MESSAGES=$n go test -run '^$' -bench SenderReuseAgainstSmtpSourceD -benchtime 1x ./lab/sender/)
  echo "$out" | awk -v r="$1" '/^BenchmarkSenderReuse/ {
      for (i = 1; i < NF; i++) m[$(i+1)] = $i
      printf "%s smtp-source-d %.0f %.0f\n%s sender %.0f %.0f\n", r, m["source-d-msgs/s"], m["source-d-cpu-µs/msg"], r, m["sender-reuse-msgs/s"], m["sender-reuse-cpu-µs/msg"]
    }' | tee -a "$w/runs"
}

echo "round run msgs/s cpu-us/msg"
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then postfix_run "$round"; go_run "$round"; else go_run "$round"; postfix_run "$round"; fi
done
echo
echo "medians: run msgs/s cpu-us/msg (ratio of msgs/s to Postfix's queue)"
awk '{ r[$2] = r[$2] " " $3; c[$2] = c[$2] " " $4 }
  function med(s,   a, k, i, j, t) { k = split(s, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
  END { p = med(r["postfix-queue"])
    split("postfix-queue smtp-source-d sender", names, " ")
    for (i = 1; i <= 3; i++) printf "%s %.0f %.0f %.2fx\n", names[i], med(r[names[i]]), med(c[names[i]]), med(r[names[i]]) / p }' "$w/runs"
