#!/usr/bin/env bash
# idle-memory.sh: resident memory of an idle sora2apid (master + 2 workers),
# with a private nginx (master + 2 workers) as a baseline in the same run.
#
# For each server: start, stay idle 2 s, measure; then a warm-up of WARMUP
# (default 5000) "GET /v1/models" requests over a few keep-alive
# connections, idle 2 s again, measure. For every process it prints VmRSS
# (/proc/PID/status) and Pss (/proc/PID/smaps_rollup), and the sums. PSS
# splits shared pages between the processes that map them, so the PSS sum
# is the memory the whole server really costs; the RSS sum counts shared
# pages (libc, the binary, shared memory) once per process.
# Target for sora2apid: PSS sum under 12 MB (12288 kB).
#
# Fails (exit 1) when a tool is missing, a server does not start or a
# warm-up request fails. Everything started here is stopped on exit.
#
# Environment: WARMUP (default 5000), SORA2APID (daemon binary),
# NGINX (default /usr/sbin/nginx), KEEP_TMP=1 (keep the temporary
# directory), STRICT=1 (also exit 1 when the PSS sum is over the target).
set -euo pipefail

readonly ME=idle-memory
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DAEMON=${SORA2APID:-$ROOT/build/sora2apid}
NGINX=${NGINX:-/usr/sbin/nginx}
WARMUP=${WARMUP:-5000}
API_KEY=han1234
TARGET_KB=12288
PIDS=()     # servers still to be stopped by cleanup
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"


for tool in curl ss awk pgrep; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found (apt-get install -y curl iproute2 procps)"
done
[[ -x $NGINX ]] || die "$NGINX not found (apt-get install -y nginx-light)"
[[ -x $DAEMON ]] || die "$DAEMON not found (make -C $ROOT build/sora2apid)"
[[ $WARMUP =~ ^[1-9][0-9]*$ ]] || die "WARMUP must be a positive integer"
[[ -r /proc/self/smaps_rollup ]] || die "/proc/PID/smaps_rollup not available"

bench_setup

warm_up() {
    local bad
    bad=$(curl -s --parallel --parallel-max 4 \
        -H "Authorization: Bearer $API_KEY" -o /dev/null -w '%{http_code}\n' \
        "http://127.0.0.1:$1/v1/models?n=[1-$WARMUP]" 2>/dev/null | grep -cvx 200 || true)
    [[ $bad == 0 ]] || die "$bad of $WARMUP warm-up requests on port $1 did not answer 200"
}

kb() { # kb FILE KEY: the kB figure of "KEY: N kB" in FILE
    awk -v k="$2:" '$1 == k { print $2; exit }' "$1"
}

SUM_RSS=0 SUM_PSS=0
# report NAME MASTER_PID: one line per process, then the sums.
report() {
    local name=$1 master=$2 pid role rss pss
    SUM_RSS=0 SUM_PSS=0
    for pid in "$master" $(pgrep -P "$master" | sort -n); do
        if [[ $pid == "$master" ]]; then role=master; else role=worker; fi
        rss=$(kb "/proc/$pid/status" VmRSS)
        pss=$(kb "/proc/$pid/smaps_rollup" Pss)
        [[ -n $rss && -n $pss ]] || die "cannot read memory of $name pid $pid"
        printf '  %-10s %-7s pid %-7s RSS %7d kB   PSS %7d kB\n' \
            "$name" "$role" "$pid" "$rss" "$pss"
        SUM_RSS=$((SUM_RSS + rss))
        SUM_PSS=$((SUM_PSS + pss))
    done
    printf '  %-10s %-7s %-11s RSS %7d kB   PSS %7d kB   (%.1f MB RSS, %.1f MB PSS)\n' \
        "$name" total "" "$SUM_RSS" "$SUM_PSS" \
        "$(awk -v k="$SUM_RSS" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$SUM_PSS" 'BEGIN { print k / 1024 }')"
}

declare -A RES=()
OVER=0
measure() { # measure NAME MASTER_PID PORT
    local name=$1 master=$2 port=$3
    echo "$name: idle 2 s after start"
    sleep 2
    report "$name" "$master"
    RES[$name,cold]="$SUM_RSS $SUM_PSS"
    warm_up "$port"
    echo "$name: idle 2 s after $WARMUP requests"
    sleep 2
    report "$name" "$master"
    RES[$name,warm]="$SUM_RSS $SUM_PSS"
    if [[ $name == sora2apid ]] && ((SUM_PSS >= TARGET_KB)); then
        OVER=1
    fi
    return 0
}

echo "$ME: $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(uname -r), $(nproc) CPUs"
start_sora2apid sora2apid
SPID=$DPID P_DAEMON=$PORT
curl -sSf -H "Authorization: Bearer $API_KEY" -o "$WORK/models.json" \
    "http://127.0.0.1:$P_DAEMON/v1/models" || die "GET /v1/models on sora2apid failed"
start_nginx "$WORK/models.json"
P_NGX=$PORT

measure sora2apid "$SPID" "$P_DAEMON"
measure nginx "$NPID" "$P_NGX"

echo
printf '%-10s | %-24s | %-24s\n' "" "idle after start" "idle after warm-up"
printf '%-10s | %11s %12s | %11s %12s\n' server "RSS sum kB" "PSS sum kB" "RSS sum kB" "PSS sum kB"
for name in sora2apid nginx; do
    read -r cr cp <<<"${RES[$name,cold]}"
    read -r wr wp <<<"${RES[$name,warm]}"
    printf '%-10s | %11d %12d | %11d %12d\n' "$name" "$cr" "$cp" "$wr" "$wp"
done
if ((OVER)); then
    echo "sora2apid PSS sum: over the target of $TARGET_KB kB (12 MB)"
else
    echo "sora2apid PSS sum: under the target of $TARGET_KB kB (12 MB): ok"
fi

stop_daemon sora2apid "$SPID"
odd=$(grep -v -e '\[notice\]' -e 'admin password is still the default' -e 'API key is still the shipped default' \
    "$WORK/sora2apid/error.log" || true)
if [[ -n $odd ]]; then
    printf '%s\n' "$odd" | head -n 20 >&2
    die "unexpected lines in the error log of sora2apid"
fi
if ((OVER)) && [[ ${STRICT:-0} == 1 ]]; then
    die "PSS sum over the target"
fi
echo "$ME: done"
