#!/usr/bin/env bash
# videos-retrieve.sh: throughput of "GET /v1/videos/{id}" for a completed
# video, answered from the live job table in shared memory, as a ratio
# to "GET /v1/models" on the same daemon in the same run.
#
# Starts, on free 127.0.0.1 ports and under a temporary directory:
#   - the fake Sora upstream (tests/fake-sora/server.js)
#   - sora2apid "table", 2 workers, access_log = off (job_slots default)
#   - sora2apid "db", the same with job_slots = 0: every retrieve is a
#     round trip to the master (and its SQLite read), for comparison
# loads one account into each, makes one video on each (a synchronous
# POST /v1/videos), then runs "wrk -t2 -c64 -d10s --latency" against
#   models       GET /v1/models on "table"
#   retrieve     GET /v1/videos/{id} on "table"
#   retrieve-db  GET /v1/videos/{id} on "db"
# ROUNDS times, rotating the order every round so that machine noise hits
# all three alike. Prints req/s and p99 per round, the medians, the ratio
# retrieve / models of the median req/s (target >= 0.8) and, for scale,
# retrieve-db / models.
#
# Fails (exit 1) when a tool is missing, a server does not start, the
# video does not complete, wrk reports any non-2xx/3xx response, a
# retrieve on "table" was not answered from the table (its fallback
# counter moved), a worker was replaced, a daemon logged anything but
# notices, or one does not stop cleanly. Everything started here is
# stopped on exit.
#
# Environment: ROUNDS (default 3), DURATION (wrk -d, default 10s),
# SORA2APID (daemon binary), KEEP_TMP=1 (keep the temporary directory),
# STRICT=1 (also exit 1 when the ratio is below the 0.8 target).
set -euo pipefail

readonly ME=videos-retrieve
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DAEMON=${SORA2APID:-$ROOT/build/sora2apid}
FAKE=$ROOT/tests/fake-sora/server.js
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=2
CONNS=64
API_KEY=han1234
TARGET=0.8
PIDS=() # servers still to be stopped by cleanup
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

for tool in wrk curl node ss awk sort pgrep; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found (apt-get install -y wrk curl nodejs iproute2 procps)"
done
[[ -x $DAEMON ]] || die "$DAEMON not found (make -C $ROOT build/sora2apid)"
[[ -f $FAKE ]] || die "$FAKE not found"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

bench_setup

# jget EXPR: evaluates EXPR on the JSON object `o` read from stdin.
jget() {
    node -e 'const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const v = eval(process.argv[1]); process.stdout.write(v === undefined ? "" : String(v));' "$1"
}



# make_video NAME PORT: one fake account in the pool of the daemon on
# PORT, then one synchronous video; sets VIDEO to its id.
make_video() {
    local name=$1 base="http://127.0.0.1:$2" admin at out
    admin=$(curl -sSf -d '{"username":"admin","password":"admin"}' "$base/api/login" | jget o.token) ||
        die "admin login on sora2apid ($name) failed"
    curl -sSf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
        -d '{"quota_refresh_interval":0}' -o /dev/null "$base/api/admin/config" ||
        die "quota sweep not turned off on sora2apid ($name)"
    at=$(curl -sSf -d '{"remaining":null,"max_concurrent":0}' \
        "http://127.0.0.1:$FAKE_PORT/__fake/accounts" | jget o.access_token) ||
        die "no fake account"
    curl -sSf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
        -d "{\"token\":\"$at\"}" -o /dev/null "$base/api/tokens" ||
        die "the token was not added to sora2apid ($name)"
    out=$(curl -sS --max-time 60 -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
        -d '{"prompt":"a lighthouse at dusk, for the benchmark","model":"sora-video-10s"}' \
        "$base/v1/videos") || die "POST /v1/videos on sora2apid ($name) failed"
    [[ $(jget o.status <<<"$out") == completed ]] ||
        die "the video on sora2apid ($name) did not complete: $out"
    VIDEO=$(jget o.id <<<"$out")
    out=$(curl -sSf -H "Authorization: Bearer $API_KEY" "$base/v1/videos/$VIDEO") ||
        die "GET /v1/videos/$VIDEO on sora2apid ($name) failed"
    [[ $(jget o.status <<<"$out") == completed ]] || die "the retrieve says: $out"
    printf '%s' "$out" >"$WORK/$name/video.json"
}

# metric PORT NAME: the value of an unlabelled sample in /metrics.
metric() {
    curl -sSf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}



# --- the fake, the two daemons, a video on each -----------------------------
start_fake ""
start_sora2apid table off "$(fake_upstream_conf)
[limits]
job_slots = 4096"
P_TAB=$PORT PID_TAB=$DPID
start_sora2apid db off "$(fake_upstream_conf)
[limits]
job_slots = 0"
P_DB=$PORT PID_DB=$DPID
make_video table "$P_TAB"
V_TAB=$VIDEO
make_video db "$P_DB"
V_DB=$VIDEO
BODY_BYTES=$(wc -c <"$WORK/table/video.json")
MODELS_BYTES=$(curl -sSf -H "Authorization: Bearer $API_KEY" "http://127.0.0.1:$P_TAB/v1/models" | wc -c)
[[ $(metric "$P_TAB" sora2api_jobtab_slots_used) == 1 ]] ||
    die "the video has no slot in the job table of sora2apid (table)"
[[ $(metric "$P_DB" sora2api_jobtab_slots) == 0 ]] ||
    die "sora2apid (db) has a job table"

W_TAB=$(workers_of "$PID_TAB")
W_DB=$(workers_of "$PID_DB")

LABELS=(models retrieve retrieve-db)
declare -A URL=(
    [models]="http://127.0.0.1:$P_TAB/v1/models"
    [retrieve]="http://127.0.0.1:$P_TAB/v1/videos/$V_TAB"
    [retrieve-db]="http://127.0.0.1:$P_DB/v1/videos/$V_DB"
)
declare -A RPS=() P99=() REQS=()
NON2XX=0

echo "$ME: $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(nproc) CPUs, Video object $BODY_BYTES bytes," \
    "/v1/models $MODELS_BYTES bytes, wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds"
echo "$ME: table :$P_TAB (pid $PID_TAB, video $V_TAB), db :$P_DB (job_slots = 0, pid $PID_DB)," \
    "fake :$FAKE_PORT"

# run_wrk LABEL ROUND: one wrk run; records req/s, p99 (ms), requests.
run_wrk() {
    local label=$1 round=$2 out
    out="$WORK/wrk-$label-$round.txt"
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $API_KEY" \
        "${URL[$label]}" >"$out" 2>&1 || die "wrk against $label failed: $(cat "$out")"
    wrk_record "$label" "$round" "$out"
    printf '  round %d  %-12s %10.0f req/s  p99 %7.2f ms\n' "$round" "$label" \
        "${RPS[$label,$round]}" "${P99[$label,$round]}"
}

# warm-up: 2 s each, not counted
for label in "${LABELS[@]}"; do
    wrk -t"$THREADS" -c"$CONNS" -d2s -H "Authorization: Bearer $API_KEY" "${URL[$label]}" \
        >/dev/null 2>&1 || die "warm-up wrk against $label failed"
done

HITS0=$(metric "$P_TAB" sora2api_jobtab_hits_total)
FALLBACKS0=$(metric "$P_TAB" sora2api_jobtab_fallbacks_total)
for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < ${#LABELS[@]}; k++)); do
        label=${LABELS[(k + r - 1) % ${#LABELS[@]}]}
        sleep 1
        run_wrk "$label" "$r"
    done
done
HITS1=$(metric "$P_TAB" sora2api_jobtab_hits_total)
FALLBACKS1=$(metric "$P_TAB" sora2api_jobtab_fallbacks_total)

declare -A MED_RPS=() MED_P99=()
rps_p99_table

BELOW=0
ratio=$(awk -v a="${MED_RPS[retrieve]}" -v b="${MED_RPS[models]}" 'BEGIN { printf "%.3f", a / b }')
verdict=ok
if awk -v r="$ratio" -v t="$TARGET" 'BEGIN { exit !(r < t) }'; then
    verdict="BELOW TARGET"
    BELOW=1
fi
printf 'ratio retrieve    / models (median req/s): %s  (target >= %s: %s)\n' "$ratio" "$TARGET" "$verdict"
printf 'ratio retrieve-db / models (median req/s): %s  (job_slots = 0: a master round trip each)\n' \
    "$(awk -v a="${MED_RPS[retrieve-db]}" -v b="${MED_RPS[models]}" 'BEGIN { printf "%.3f", a / b }')"

# --- sanity checks -----------------------------------------------------------
FAIL=0
retrieves=0
for ((r = 1; r <= ROUNDS; r++)); do
    retrieves=$((retrieves + ${REQS[retrieve,$r]}))
done
echo "job table: $((HITS1 - HITS0)) retrieves answered from it during the measured runs" \
    "(wrk counted $retrieves), $((FALLBACKS1 - FALLBACKS0)) asked of the master"
HOLDS=$(metric "$P_TAB" sora2api_jobtab_lock_holds_total)
HOLD_S=$(metric "$P_TAB" sora2api_jobtab_lock_hold_seconds_total)
HOLD_MAX=$(metric "$P_TAB" sora2api_jobtab_lock_hold_max_seconds)
awk -v n="$HOLDS" -v t="$HOLD_S" -v m="$HOLD_MAX" 'BEGIN {
    printf "job table lock: %d holds, %.0f ns each on average, longest %.1f us\n",
        n, (n > 0 ? t * 1e9 / n : 0), m * 1e6 }'
if ((FALLBACKS1 != FALLBACKS0 || HITS1 - HITS0 < retrieves)); then
    echo "$ME: !!! retrieves on sora2apid (table) were not all answered from the table" >&2
    FAIL=1
fi
check_workers() {
    local now
    now=$(workers_of "$2")
    if [[ $now != "$3" ]]; then
        echo "$ME: !!! $1: workers changed during the run ($3-> $now): a crash?" >&2
        FAIL=1
    fi
}
check_workers table "$PID_TAB" "$W_TAB"
check_workers db "$PID_DB" "$W_DB"

stop_daemon table "$PID_TAB"
stop_daemon db "$PID_DB"
kill -TERM "$FPID"
wait "$FPID" || true
forget_pid "$FPID"

for name in table db; do
    odd=$(grep -v -e '\[notice\]' -e 'admin password is still the default' \
        -e 'API key is still the shipped default' "$WORK/$name/error.log" || true)
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
