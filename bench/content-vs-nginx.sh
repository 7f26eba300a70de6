#!/usr/bin/env bash
# content-vs-nginx.sh: download throughput of a cached 20 MB video through
# "GET /v1/videos/{id}/content" on sora2apid against a private nginx
# serving the very same file as a static file.
#
# Starts, on free 127.0.0.1 ports and under a temporary directory:
#   - the fake Sora upstream (tests/fake-sora/server.js), its videos made
#     VIDEO_MB large (the fake's video_bytes knob);
#   - sora2apid, 2 workers, access_log = off, pointed at the fake, with
#     the media cache on; one account is added and one video generated
#     (sync), so that its file is in the cache; the fake is stopped then:
#     every request measured is served from the cache (sendfile);
#   - nginx, 2 worker_processes, keep-alive, sendfile, access_log off,
#     serving a copy of that cached file as video/mp4;
# then runs "wrk -t2 -c16 -d10s --latency" against each, ROUNDS times,
# alternating the order every round so that machine noise hits both alike.
# Prints req/s, MiB/s, p99 and the servers' CPU time per request (all
# their processes, from /proc) per round, the medians, and the ratio
# sora2apid / nginx of the median req/s (target >= 0.9). Every request
# moves the same bytes, so the req/s ratio is the throughput ratio.
#
# Fails (exit 1) when a tool is missing, a server does not start, the
# video does not come out cached, the bodies differ, wrk reports any
# non-2xx/3xx response, a worker was replaced, the daemon logged anything
# unexpected, or sora2apid does not stop cleanly. Everything started here
# is stopped on exit.
#
# Environment: ROUNDS (default 3), DURATION (wrk -d, default 10s), CONNS
# (default 16), VIDEO_MB (default 20), SORA2APID (daemon binary), NGINX
# (default /usr/sbin/nginx), KEEP_TMP=1 (keep the temporary directory),
# STRICT=1 (also exit 1 when the ratio is below the 0.9 target).
set -euo pipefail

readonly ME=content-vs-nginx
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DAEMON=${SORA2APID:-$ROOT/build/sora2apid}
NGINX=${NGINX:-/usr/sbin/nginx}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
VIDEO_MB=${VIDEO_MB:-20}
THREADS=2
API_KEY=han1234
TARGET=0.9
PIDS=()     # servers still to be stopped by cleanup
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"


for tool in wrk curl node ss awk sort cmp pgrep; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found (apt-get install -y wrk curl nodejs iproute2 procps)"
done
[[ -x $NGINX ]] || die "$NGINX not found (apt-get install -y nginx-light)"
[[ -x $DAEMON ]] || die "$DAEMON not found (make -C $ROOT build/sora2apid)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || die "CONNS must be a positive integer"
[[ $VIDEO_MB =~ ^[1-9][0-9]*$ ]] || die "VIDEO_MB must be a positive integer"
VIDEO_BYTES=$((VIDEO_MB * 1024 * 1024))

bench_setup

# json_field FILE EXPR: one value out of a JSON file (EXPR is JavaScript
# on `j`, e.g. j.data[0].url).
json_field() {
    node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
             const v = eval(process.argv[2]); if (v === undefined || v === null) process.exit(1);
             process.stdout.write(String(v));' "$1" "$2"
}





# api METHOD PATH BODY AUTH OUT: one JSON call to the daemon; the answer
# goes to OUT; dies unless it is a 200.
api() {
    local code
    code=$(curl -sS -o "$5" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $4" \
        -H 'Content-Type: application/json' --data "$3" --max-time 120 \
        "http://127.0.0.1:$P_S2A$2") || die "$1 $2 failed"
    [[ $code == 200 ]] || die "$1 $2 answered $code: $(head -c 400 "$5")"
}

# --- the fake, the daemon, one cached video ---------------------------------
start_fake "{\"video_bytes\": $VIDEO_BYTES}"
start_sora2apid s2a off "$(fake_upstream_conf)
timeout = 10"
P_S2A=$PORT PID_S2A=$DPID

curl -sSf -o "$WORK/login.json" -H 'Content-Type: application/json' \
    --data '{"username": "admin", "password": "admin"}' \
    "http://127.0.0.1:$P_S2A/api/login" || die "admin login failed"
ADMIN=$(json_field "$WORK/login.json" j.token) || die "no admin token"
api POST /api/admin/config '{"quota_refresh_interval": 0}' "$ADMIN" "$WORK/r.json"
api POST /api/cache/enabled '{"enabled": true}' "$ADMIN" "$WORK/r.json"
curl -sSf -o "$WORK/account.json" -H 'Content-Type: application/json' \
    --data '{"remaining": null, "max_concurrent": 0}' \
    "http://127.0.0.1:$FAKE_PORT/__fake/accounts" || die "the fake made no account"
AT=$(json_field "$WORK/account.json" j.access_token) || die "no access token"
api POST /api/tokens "{\"token\": \"$AT\", \"video_concurrency\": 0}" "$ADMIN" "$WORK/r.json"
api POST /v1/videos '{"prompt": "a 20 MB benchmark video", "model": "sora-video-10s"}' \
    "$API_KEY" "$WORK/video.json"
VIDEO_ID=$(json_field "$WORK/video.json" j.id) || die "no video id: $(cat "$WORK/video.json")"
VIDEO_URL=$(json_field "$WORK/video.json" j.data[0].url) || die "no video URL: $(cat "$WORK/video.json")"
[[ $VIDEO_URL =~ /tmp/([A-Za-z0-9_-]+\.mp4)$ ]] ||
    die "the video is not cached: its URL is $VIDEO_URL"
CACHED=$WORK/s2a/cache/${BASH_REMATCH[1]}
[[ $(stat -c %s "$CACHED") == "$VIDEO_BYTES" ]] ||
    die "the cached file has $(stat -c %s "$CACHED") bytes, not $VIDEO_BYTES"
# From here on nothing needs the upstream.
kill -TERM "$FPID"
wait "$FPID" 2>/dev/null || true
forget_pid "$FPID"

start_nginx "$CACHED" /video.mp4 video/mp4
P_NGX=$PORT PID_NGX=$NPID

LABELS=(sora2apid nginx)
declare -A URL=(
    [sora2apid]="http://127.0.0.1:$P_S2A/v1/videos/$VIDEO_ID/content"
    [nginx]="http://127.0.0.1:$P_NGX/video.mp4"
)

# the same bytes and type from both
for label in "${LABELS[@]}"; do
    ctype=$(curl -sSf -H "Authorization: Bearer $API_KEY" -o "$WORK/check.mp4" \
        -w '%{content_type}' "${URL[$label]}") || die "GET ${URL[$label]} failed"
    cmp -s "$CACHED" "$WORK/check.mp4" || die "$label serves other bytes"
    [[ $ctype == video/mp4 ]] || die "$label answers Content-Type: $ctype"
done
rm -f "$WORK/check.mp4"

W_S2A=$(workers_of "$PID_S2A")
W_NGX=$(workers_of "$PID_NGX")
declare -A RPS=() MBS=() P99=() CPU=() MCPU=()
declare -A SPID=([sora2apid]=$PID_S2A [nginx]=$PID_NGX)
NON2XX=0

echo "$ME: $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(nproc) CPUs, a cached $VIDEO_MB MiB video," \
    "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds"
echo "$ME: sora2apid :$P_S2A (pid $PID_S2A, $VIDEO_ID), nginx :$P_NGX (pid $PID_NGX)"

# own_ticks PID: utime + stime of PID (clock ticks).
own_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# cpu_ticks PID: the same for PID and its children.
cpu_ticks() {
    local p t=0
    for p in "$1" $(pgrep -P "$1"); do
        t=$((t + $(own_ticks "$p")))
    done
    echo "$t"
}
TICK=$(getconf CLK_TCK)

# run_wrk LABEL ROUND: one wrk run; records req/s, MB/s, p99 (ms) and the
# server's CPU time per request (ms; all its processes).
run_wrk() {
    local label=$1 round=$2 out n2 serr c0 c1 m0 m1 reqs
    local -a hdr=()
    out="$WORK/wrk-$label-$round.txt"
    [[ $label == sora2apid ]] && hdr=(-H "Authorization: Bearer $API_KEY")
    c0=$(cpu_ticks "${SPID[$label]}")
    m0=$(own_ticks "${SPID[$label]}")
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 30s --latency "${hdr[@]}" \
        "${URL[$label]}" >"$out" 2>&1 || die "wrk against $label failed: $(cat "$out")"
    c1=$(cpu_ticks "${SPID[$label]}")
    m1=$(own_ticks "${SPID[$label]}")
    reqs=$(awk '$2 == "requests" && $3 == "in" { print $1 }' "$out")
    [[ -n $reqs && $reqs != 0 ]] || die "wrk completed no request against $label: $(cat "$out")"
    CPU[$label,$round]=$(awk -v t=$((c1 - c0)) -v hz="$TICK" -v n="$reqs" \
        'BEGIN { printf "%.2f", t * 1000 / hz / n }')
    MCPU[$label,$round]=$(awk -v t=$((m1 - m0)) -v hz="$TICK" -v n="$reqs" \
        'BEGIN { printf "%.2f", t * 1000 / hz / n }')
    RPS[$label,$round]=$(awk '$1 == "Requests/sec:" { print $2 }' "$out")
    MBS[$label,$round]=$(awk '$1 == "Transfer/sec:" {
            v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
            if (u == "GB") v *= 1024; else if (u == "KB") v /= 1024
            else if (u == "B") v /= 1048576
            printf "%.1f", v }' "$out")
    P99[$label,$round]=$(wrk_p99_ms "$out")
    [[ -n ${RPS[$label,$round]} && -n ${MBS[$label,$round]} && -n ${P99[$label,$round]} ]] ||
        die "cannot parse wrk output: $(cat "$out")"
    n2=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$out")
    if [[ -n $n2 && $n2 != 0 ]]; then
        echo "$ME: !!! $label round $round: $n2 non-2xx/3xx responses" >&2
        NON2XX=$((NON2XX + n2))
    fi
    serr=$(grep 'Socket errors' "$out" || true)
    [[ -z $serr ]] || echo "$ME: warning: $label round $round:$serr" >&2
    printf '  round %d  %-10s %8.1f req/s %8.1f MiB/s  p99 %8.2f ms  CPU %6.2f ms/req\n' \
        "$round" "$label" "${RPS[$label,$round]}" "${MBS[$label,$round]}" \
        "${P99[$label,$round]}" "${CPU[$label,$round]}"
}

# warm-up: 2 s each, not counted
for label in "${LABELS[@]}"; do
    hdr=()
    [[ $label == sora2apid ]] && hdr=(-H "Authorization: Bearer $API_KEY")
    wrk -t"$THREADS" -c"$CONNS" -d2s --timeout 30s "${hdr[@]}" "${URL[$label]}" >/dev/null 2>&1 ||
        die "warm-up wrk against $label failed"
done

for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < ${#LABELS[@]}; k++)); do
        label=${LABELS[(k + r - 1) % ${#LABELS[@]}]}
        sleep 1
        run_wrk "$label" "$r"
    done
done

declare -A MED_RPS=() MED_MBS=() MED_P99=() MED_CPU=() MED_MCPU=()
for label in "${LABELS[@]}"; do
    rps=() mbs=() p99=() cpu=() mcpu=()
    for ((r = 1; r <= ROUNDS; r++)); do
        rps+=("${RPS[$label,$r]}")
        mbs+=("${MBS[$label,$r]}")
        p99+=("${P99[$label,$r]}")
        cpu+=("${CPU[$label,$r]}")
        mcpu+=("${MCPU[$label,$r]}")
    done
    MED_MCPU[$label]=$(median "${mcpu[@]}")
    MED_RPS[$label]=$(median "${rps[@]}")
    MED_MBS[$label]=$(median "${mbs[@]}")
    MED_P99[$label]=$(median "${p99[@]}")
    MED_CPU[$label]=$(median "${cpu[@]}")
done

echo
printf '%-7s' ''
for label in "${LABELS[@]}"; do printf ' | %-39s' "$label"; done
echo
printf '%-7s' round
for label in "${LABELS[@]}"; do printf ' | %8s %9s %9s %10s' req/s MiB/s "p99 ms" "CPU ms/req"; done
echo
for ((r = 1; r <= ROUNDS; r++)); do
    printf '%-7s' "$r"
    for label in "${LABELS[@]}"; do
        printf ' | %8.1f %9.1f %9.2f %10.2f' "${RPS[$label,$r]}" "${MBS[$label,$r]}" \
            "${P99[$label,$r]}" "${CPU[$label,$r]}"
    done
    echo
done
printf '%-7s' median
for label in "${LABELS[@]}"; do
    printf ' | %8.1f %9.1f %9.2f %10.2f' "${MED_RPS[$label]}" "${MED_MBS[$label]}" \
        "${MED_P99[$label]}" "${MED_CPU[$label]}"
done
echo
echo

BELOW=0
ratio=$(awk -v a="${MED_RPS[sora2apid]}" -v b="${MED_RPS[nginx]}" 'BEGIN { printf "%.3f", a / b }')
verdict=ok
if awk -v r="$ratio" -v t="$TARGET" 'BEGIN { exit !(r < t) }'; then
    verdict="BELOW TARGET"
    BELOW=1
fi
printf 'ratio sora2apid / nginx (median req/s, %s MiB each): %s  (target >= %s: %s)\n' \
    "$VIDEO_MB" "$ratio" "$TARGET" "$verdict"
printf 'server CPU per request (median): sora2apid %s ms (master %s ms), nginx %s ms (master %s ms)\n' \
    "${MED_CPU[sora2apid]}" "${MED_MCPU[sora2apid]}" "${MED_CPU[nginx]}" "${MED_MCPU[nginx]}"

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
check_workers sora2apid "$PID_S2A" "$W_S2A"
check_workers nginx "$PID_NGX" "$W_NGX"

stop_daemon sora2apid "$PID_S2A"
kill -TERM "$PID_NGX"
wait "$PID_NGX" || true
forget_pid "$PID_NGX"

odd=$(grep -v -e '\[notice\]' -e 'admin password is still the default' -e 'API key is still the shipped default' \
    "$WORK/s2a/error.log" || true)
if [[ -n $odd ]]; then
    echo "$ME: !!! unexpected lines in the error log of sora2apid:" >&2
    printf '%s\n' "$odd" | head -n 20 >&2
    FAIL=1
fi

((NON2XX == 0)) || die "wrk saw $NON2XX non-2xx/3xx responses"
((FAIL == 0)) || die "see the messages above"
if ((BELOW)) && [[ ${STRICT:-0} == 1 ]]; then
    die "req/s ratio below $TARGET"
fi
echo "$ME: done"
