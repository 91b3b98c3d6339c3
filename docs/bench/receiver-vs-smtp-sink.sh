#!/usr/bin/env bash
# The receiver against Postfix's smtp-sink -d (issue 19; docs/PERFORMANCE.md,
# "The receiver against smtp-sink -d"). Both targets write a file per
# message and are fed by the same smtp-source command; rounds are
# interleaved so that the machine's load falls on every target alike.
#
#   bash docs/bench/receiver-vs-smtp-sink.sh [rounds] [messages] [targets]
#
# rounds: 3; messages: 20000; targets: "sink off1 on1 off on" (smtp-sink
# -d; the receiver with fsync off and with fsync on, each with one P
# (GOMAXPROCS=1: one thread running Go code at a time, as smtp-sink is one
# thread) and with the runtime's default, a P per core), on tmpfs
# (/dev/shm) and ext4 (/tmp). Needs smtp-sink and smtp-source (Debian's
# postfix; its master need not run). Prints one line per run, then the
# medians and ratios.
# msgs/s is the messages over smtp-source's wall time; CPU is the
# target's own user+system time per message (/proc/PID/stat), which the
# load disturbs less. Every run's files are counted: a short count fails.
# The ext4 folders are kept until the end: on an ext4 without a journal,
# creating files is slow for about 30 s after many were deleted (see
# PERFORMANCE.md), which would slow whichever target ran next.
set -euo pipefail
rounds=${1:-3} n=${2:-20000} targets=${3:-"sink off1 on1 off on"}
root=$(cd "$(dirname "$0")/../.." && pwd)
for t in smtp-sink smtp-source; do
  command -v "$t" >/dev/null || { echo "$t not found: apt-get install postfix" >&2; exit 2; }
done
work=$(mktemp -d /tmp/smtplab-sinkbench.XXXXXX)
shm=$(mktemp -d /dev/shm/smtplab-sinkbench.XXXXXX)
chmod 755 "$work" "$shm"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work" "$shm"; }
trap cleanup EXIT
(cd "$root" && go build -o "$work/lab" ./cmd/lab)
port=2526
tick=$(getconf CLK_TCK)

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run ROUND FS TARGET: one timed smtp-source run against a fresh target.
run() {
  local round=$1 fs=$2 target=$3 base dir
  base=$work; [ "$fs" = tmpfs ] && base=$shm
  dir=$base/$target-$round; mkdir -p "$dir"; chmod 777 "$dir" # smtp-sink writes as nobody
  case $target in
    sink) smtp-sink -u nobody -d "$dir/%M." 127.0.0.1:$port 100 & pid=$! ;;
    off|on|off1|on1)
      local nofsync=true procs=; [ "${target#on}" != "$target" ] && nofsync=false
      [ "${target%1}" != "$target" ] && procs=1
      cat >"$dir.json" <<JSON
{"role": "receiver", "listen": "127.0.0.1:$port", "control": "127.0.0.1:$((port + 1))",
 "receiver": {"hostname": "receiver.example.com", "max_sessions": 40,
  "reverse_dns": false, "dnsbl": false, "ident": false,
  "local_domains": [".example.com"], "account": "recipient",
  "maildir": "$dir/Maildir", "no_fsync": $nofsync}}
JSON
      GOMAXPROCS=$procs "$work/lab" role --spec "$dir.json" >"$dir.log" 2>&1 & pid=$! ;;
  esac
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  local load cpu0 t0 t1 cpu1 files
  load=$(cut -d' ' -f1 /proc/loadavg)
  cpu0=$(cpu_of "$pid"); t0=$(date +%s.%N)
  smtp-source -d -s 40 -m "$n" -l 100 -f sender@example.com \
    -t recipient-foo-1@1.foo.example.com 127.0.0.1:$port
  t1=$(date +%s.%N); cpu1=$(cpu_of "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  files=$(find "$dir" -type f ! -path "$dir/Maildir/tmp/*" | wc -l)
  if [ "$files" -ne "$n" ]; then echo "$target on $fs: $files files for $n messages" >&2; exit 1; fi
  [ "$fs" = tmpfs ] && rm -rf "$dir"
  awk -v r="$round" -v fs="$fs" -v t="$target" -v n="$n" -v t0="$t0" -v t1="$t1" \
      -v c="$((cpu1 - cpu0))" -v tick="$tick" -v load="$load" \
      'BEGIN { printf "%s %s %s %.0f %.0f %s\n", r, fs, t, n / (t1 - t0), c / tick * 1e6 / n, load }' | tee -a "$work/runs"
  sync; sleep 3
}

echo "round fs target msgs/s cpu-us/msg load"
for round in $(seq "$rounds"); do
  for fs in tmpfs ext4; do
    for target in $targets; do run "$round" "$fs" "$target"; done
  done
done

echo
echo "medians (msgs/s, CPU µs/msg) and ratio to smtp-sink -d:"
for fs in tmpfs ext4; do
  for target in $targets; do
    awk -v fs="$fs" -v t="$target" '$2 == fs && $3 == t { r[++k] = $4; c[k] = $5 }
      function med(a, k,   i, j, x) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
      END { printf "%s %s %.0f %.0f\n", fs, t, med(r, k), med(c, k) }' "$work/runs"
  done
done | awk '$2 == "sink" { s[$1] = $3 } { printf "%-5s %-5s %6s msgs/s %4s µs/msg", $1, $2, $3, $4; if ($1 in s) printf "  %.2fx", $3 / s[$1]; print "" }'
