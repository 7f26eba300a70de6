#!/usr/bin/env bash
# models-vs-nginx.sh: throughput of "GET /v1/models" on sora2apid against a
# private nginx serving the very same JSON bytes as a static file.
#
# Starts, on free 127.0.0.1 ports and under a temporary directory:
#   - sora2apid, 2 workers, access_log = off
#   - sora2apid, 2 workers, access_log = a file (the cost of logging)
#   - nginx, 2 worker_processes, keep-alive, access_log off
# then runs "wrk -t2 -c64 -d10s --latency" against each, ROUNDS times,
# rotating the order every round so that machine noise hits all three alike.
# Prints req/s and p99 per round, the medians, and the ratio
# sora2apid / nginx of the median req/s (target >= 0.8).
#
# Fails (exit 1) when a tool is missing, a server does not start, the bodies
# differ, wrk reports any non-2xx/3xx response, or sora2apid does not stop
# cleanly. Everything started here is stopped on exit.
#
# Environment: ROUNDS (default 3), DURATION (wrk -d, default 10s),
# SORA2APID (daemon binary), NGINX (default /usr/sbin/nginx),
# KEEP_TMP=1 (keep the temporary directory), STRICT=1 (also exit 1 when a
# ratio is below the 0.8 target).
set -euo pipefail

readonly ME=models-vs-nginx
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DAEMON=${SORA2APID:-$ROOT/build/sora2apid}
NGINX=${NGINX:-/usr/sbin/nginx}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=2
CONNS=64
API_KEY=han1234
TARGET=0.8
PIDS=()     # servers still to be stopped by cleanup
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"


for tool in wrk curl ss awk sort cmp pgrep; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found (apt-get install -y wrk curl iproute2 procps)"
done
[[ -x $NGINX ]] || die "$NGINX not found (apt-get install -y nginx-light)"
[[ -x $DAEMON ]] || die "$DAEMON not found (make -C $ROOT build/sora2apid)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

bench_setup




# --- start the three servers -----------------------------------------------
start_sora2apid plain off
P_PLAIN=$PORT PID_PLAIN=$DPID
start_sora2apid logged "$WORK/logged/access.log"
P_LOG=$PORT PID_LOG=$DPID

curl -sSf -H "Authorization: Bearer $API_KEY" -o "$WORK/models.json" \
    "http://127.0.0.1:$P_PLAIN/v1/models" || die "GET /v1/models on sora2apid failed"
[[ -s $WORK/models.json ]] || die "empty /v1/models body"
BODY_BYTES=$(wc -c <"$WORK/models.json")

start_nginx "$WORK/models.json"
P_NGX=$PORT PID_NGX=$NPID

# same bytes, same content type, from all three
for p in "$P_PLAIN" "$P_LOG" "$P_NGX"; do
    ctype=$(curl -sSf -H "Authorization: Bearer $API_KEY" -o "$WORK/check.json" \
        -w '%{content_type}' "http://127.0.0.1:$p/v1/models") ||
        die "GET /v1/models on port $p failed"
    cmp -s "$WORK/models.json" "$WORK/check.json" || die "port $p serves other bytes"
    [[ $ctype == application/json* ]] || die "port $p answers Content-Type: $ctype"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_PLAIN/v1/models")
[[ $code == 401 ]] || echo "$ME: note: /v1/models without a key answered $code, not 401"

W_PLAIN=$(workers_of "$PID_PLAIN")
W_LOG=$(workers_of "$PID_LOG")
W_NGX=$(workers_of "$PID_NGX")

LABELS=(sora2apid sora2apid+log nginx)
declare -A URL=(
    [sora2apid]="http://127.0.0.1:$P_PLAIN/v1/models"
    [sora2apid+log]="http://127.0.0.1:$P_LOG/v1/models"
    [nginx]="http://127.0.0.1:$P_NGX/v1/models"
)
declare -A RPS=() P99=() REQS=()
NON2XX=0

echo "$ME: $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(nproc) CPUs, body $BODY_BYTES bytes," \
    "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds"
echo "$ME: sora2apid :$P_PLAIN (access_log off, pid $PID_PLAIN)," \
    "sora2apid+log :$P_LOG (pid $PID_LOG), nginx :$P_NGX (pid $PID_NGX)"

# run_wrk LABEL ROUND: one wrk run; records req/s, p99 (ms), requests.
run_wrk() {
    local label=$1 round=$2 out
    local -a hdr=()
    out="$WORK/wrk-${label//+/-}-$round.txt"
    [[ $label == sora2apid* ]] && hdr=(-H "Authorization: Bearer $API_KEY")
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${hdr[@]}" \
        "${URL[$label]}" >"$out" 2>&1 || die "wrk against $label failed: $(cat "$out")"
    wrk_record "$label" "$round" "$out"
    printf '  round %d  %-14s %10.0f req/s  p99 %7.2f ms\n' "$round" "$label" \
        "${RPS[$label,$round]}" "${P99[$label,$round]}"
}

# warm-up: 2 s each, not counted
for label in "${LABELS[@]}"; do
    hdr=()
    [[ $label == sora2apid* ]] && hdr=(-H "Authorization: Bearer $API_KEY")
    wrk -t"$THREADS" -c"$CONNS" -d2s "${hdr[@]}" "${URL[$label]}" >/dev/null 2>&1 ||
        die "warm-up wrk against $label failed"
done

for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < ${#LABELS[@]}; k++)); do
        label=${LABELS[(k + r - 1) % ${#LABELS[@]}]}
        sleep 1
        run_wrk "$label" "$r"
    done
done

declare -A MED_RPS=() MED_P99=()
rps_p99_table

BELOW=0
for label in sora2apid sora2apid+log; do
    ratio=$(awk -v a="${MED_RPS[$label]}" -v b="${MED_RPS[nginx]}" \
        'BEGIN { printf "%.3f", a / b }')
    verdict=ok
    if awk -v r="$ratio" -v t="$TARGET" 'BEGIN { exit !(r < t) }'; then
        verdict="BELOW TARGET"
        BELOW=1
    fi
    printf 'ratio %-14s / nginx (median req/s): %s  (target >= %s: %s)\n' \
        "$label" "$ratio" "$TARGET" "$verdict"
done

# --- sanity checks on the daemon --------------------------------------------
FAIL=0
check_workers() {
    local now
    now=$(workers_of "$2")
    if [[ $now != "$3" ]]; then
        echo "$ME: !!! $1: workers changed during the run ($3-> $now): a crash?" >&2
        FAIL=1
    fi
}
check_workers sora2apid "$PID_PLAIN" "$W_PLAIN"
check_workers sora2apid+log "$PID_LOG" "$W_LOG"
check_workers nginx "$PID_NGX" "$W_NGX"

logged_reqs=0
for ((r = 1; r <= ROUNDS; r++)); do
    logged_reqs=$((logged_reqs + ${REQS[sora2apid+log,$r]}))
done

stop_daemon sora2apid "$PID_PLAIN"
stop_daemon sora2apid+log "$PID_LOG"
kill -TERM "$PID_NGX"
wait "$PID_NGX" || true
forget_pid "$PID_NGX"

lines=$(wc -l <"$WORK/logged/access.log")
echo "access log: $lines lines, $(du -h "$WORK/logged/access.log" | cut -f1);" \
    "wrk counted $logged_reqs requests in the measured runs (plus warm-up and checks)"
echo "  sample: $(tail -n 1 "$WORK/logged/access.log")"

for name in plain logged; do
    odd=$(grep -v -e '\[notice\]' -e 'admin password is still the default' -e 'API key is still the shipped default' \
        "$WORK/$name/error.log" || true)
    if [[ -n $odd ]]; then
        echo "$ME: !!! unexpected lines in the error log of sora2apid ($name):" >&2
        printf '%s\n' "$odd" | head -n 20 >&2
        FAIL=1
    fi
done

((NON2XX == 0)) || die "wrk saw $NON2XX non-2xx/3xx responses"
((FAIL == 0)) || die "see the messages above"
if ((BELOW)) && [[ ${STRICT:-0} == 1 ]]; then
    die "req/s ratio below $TARGET"
fi
echo "$ME: done"
