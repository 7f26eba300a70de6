#!/usr/bin/env bash
# keys-models.sh: throughput of "GET /v1/models" with 1,000 named API keys
# defined and per-key accounting on, against the same daemon set-up with a
# single key, in the same run (docs/api-keys.md).
#
# Starts, on free 127.0.0.1 ports and under a temporary directory, two
# sora2apid daemons (2 workers each, access_log = off):
#   - one-key: only key 1 (the API key of the configuration), given an
#     rpm limit so that its window, its x-ratelimit headers and its usage
#     rows are kept on every request;
#   - 1000-keys: 1,000 more keys created through POST /api/keys, each with
#     the same rpm limit; the load uses all of them in turn.
# The limit (10,000,000 a minute, the largest a key may have) is never
# reached: the figures are the cost of the accounting, not of refusals.
# Both daemons get the same wrk
# Lua script (requests pre-formatted at start, one key per request in
# turn), so the client's work is the same; "wrk -t2 -c64 -d10s --latency"
# runs ROUNDS times against each, alternating the order every round.
# Prints req/s and p99 per round, the medians, and the ratio of median
# req/s 1000-keys / one-key (target >= 0.95).
#
# Fails (exit 1) when a tool is missing, a daemon does not start, a key
# cannot be created or does not work, wrk reports any non-2xx/3xx response,
# the usage rows do not reach the database, or a daemon does not stop
# cleanly. Everything started here is stopped on exit.
#
# Environment: ROUNDS (default 3), DURATION (wrk -d, default 10s), NKEYS
# (default 1000), SORA2APID (daemon binary), KEEP_TMP=1, STRICT=1 (also
# exit 1 when the ratio is below the 0.95 target).
set -euo pipefail

readonly ME=keys-models
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DAEMON=${SORA2APID:-$ROOT/build/sora2apid}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
NKEYS=${NKEYS:-1000}
THREADS=2
CONNS=64
API_KEY=han1234
RPM=10000000
TARGET=0.95
PIDS=()
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

for tool in wrk curl jq awk sort xargs pgrep sqlite3; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found (apt-get install -y wrk curl jq sqlite3 procps findutils)"
done
[[ -x $DAEMON ]] || die "$DAEMON not found (make -C $ROOT build/sora2apid)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $NKEYS =~ ^[1-9][0-9]*$ ]] || die "NKEYS must be a positive integer"

bench_setup




# admin_token PORT: an admin session (default credentials).
admin_token() {
    curl -sSf -H 'Content-Type: application/json' \
        -d '{"username":"admin","password":"admin"}' \
        "http://127.0.0.1:$1/api/login" | jq -r .token
}

start_sora2apid one-key
P_ONE=$PORT PID_ONE=$DPID
start_sora2apid many-keys
P_MANY=$PORT PID_MANY=$DPID

# --- keys -------------------------------------------------------------------
T_ONE=$(admin_token "$P_ONE")
T_MANY=$(admin_token "$P_MANY")
[[ -n $T_ONE && $T_ONE != null && -n $T_MANY && $T_MANY != null ]] ||
    die "admin login failed"
for pair in "$P_ONE:$T_ONE" "$P_MANY:$T_MANY"; do
    curl -sSf -X PUT -H "Authorization: Bearer ${pair#*:}" \
        -H 'Content-Type: application/json' -d "{\"rpm\":$RPM}" \
        "http://127.0.0.1:${pair%%:*}/api/keys/1" >/dev/null ||
        die "PUT /api/keys/1 failed"
done
echo "$API_KEY" >"$WORK/one.keys"

started=$(date +%s.%N)
mkdir "$WORK/created"
seq 1 "$NKEYS" | xargs -P 4 -I{} curl -sSf -o "$WORK/created/{}.json" \
    -H "Authorization: Bearer $T_MANY" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench-{}\",\"rpm\":$RPM}" "http://127.0.0.1:$P_MANY/api/keys" ||
    die "creating $NKEYS keys failed"
find "$WORK/created" -name '*.json' -exec cat {} + | jq -r .key >"$WORK/many.keys"
made=$(grep -c '^sk-[0-9a-f]\{48\}$' "$WORK/many.keys" || true)
((made == NKEYS)) || die "$made of $NKEYS keys created"
create_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
listed=$(curl -sSf -H "Authorization: Bearer $T_MANY" \
    "http://127.0.0.1:$P_MANY/api/keys" | jq '.data | length')
((listed == NKEYS + 1)) || die "GET /api/keys lists $listed keys, not $((NKEYS + 1))"

# every key answers, with its window
for f in one many; do
    port=$P_ONE
    [[ $f == many ]] && port=$P_MANY
    while read -r key; do
        hdr=$(curl -sSf -D - -o /dev/null -H "Authorization: Bearer $key" \
            "http://127.0.0.1:$port/v1/models") || die "a $f key was refused"
        grep -qi "^x-ratelimit-limit-requests: $RPM" <<<"$hdr" ||
            die "no x-ratelimit headers for a $f key"
    done < <(if [[ $f == many ]]; then sed -n '1p;$p' "$WORK/many.keys"; else cat "$WORK/one.keys"; fi)
done

# The same client work for both: pre-formatted requests, one key each.
cat >"$WORK/keys.lua" <<'EOF'
local reqs, i = {}, 0
-- In init, once wrk has set the Host header the requests need.
init = function(args)
    for key in io.lines(os.getenv("KEYS_FILE")) do
        reqs[#reqs + 1] = wrk.format("GET", "/v1/models",
            { ["Authorization"] = "Bearer " .. key })
    end
    -- Each thread starts at another place in the list.
    i = math.random(#reqs) - 1
end
request = function()
    i = i % #reqs + 1
    return reqs[i]
end
EOF

LABELS=(one-key "$NKEYS-keys")
declare -A URL=(
    [one-key]="http://127.0.0.1:$P_ONE/v1/models"
    ["$NKEYS-keys"]="http://127.0.0.1:$P_MANY/v1/models"
)
declare -A KEYS=([one-key]="$WORK/one.keys" ["$NKEYS-keys"]="$WORK/many.keys")
declare -A RPS=() P99=() REQS=()
NON2XX=0
W_ONE=$(workers_of "$PID_ONE")
W_MANY=$(workers_of "$PID_MANY")

echo "$ME: $(date -u '+%Y-%m-%dT%H:%M:%SZ') $(nproc) CPUs, $NKEYS keys created in ${create_s}s," \
    "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds"
echo "$ME: one-key :$P_ONE (pid $PID_ONE), $NKEYS-keys :$P_MANY (pid $PID_MANY)," \
    "every key rpm $RPM"

run_wrk() {
    local label=$1 round=$2 out
    out="$WORK/wrk-$label-$round.txt"
    KEYS_FILE=${KEYS[$label]} wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
        -s "$WORK/keys.lua" "${URL[$label]}" >"$out" 2>&1 ||
        die "wrk against $label failed: $(cat "$out")"
    wrk_record "$label" "$round" "$out"
    printf '  round %d  %-12s %10.0f req/s  p99 %7.2f ms\n' "$round" "$label" \
        "${RPS[$label,$round]}" "${P99[$label,$round]}"
}

for label in "${LABELS[@]}"; do
    KEYS_FILE=${KEYS[$label]} wrk -t"$THREADS" -c"$CONNS" -d2s -s "$WORK/keys.lua" \
        "${URL[$label]}" >/dev/null 2>&1 || die "warm-up wrk against $label failed"
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

ratio=$(awk -v a="${MED_RPS[$NKEYS-keys]}" -v b="${MED_RPS[one-key]}" \
    'BEGIN { printf "%.3f", a / b }')
BELOW=0
verdict=ok
if awk -v r="$ratio" -v t="$TARGET" 'BEGIN { exit !(r < t) }'; then
    verdict="BELOW TARGET"
    BELOW=1
fi
printf 'ratio %s / one-key (median req/s): %s  (target >= %s: %s)\n' \
    "$NKEYS-keys" "$ratio" "$TARGET" "$verdict"

# --- sanity checks ------------------------------------------------------------
FAIL=0
for pair in "one-key:$PID_ONE:$W_ONE" "$NKEYS-keys:$PID_MANY:$W_MANY"; do
    IFS=: read -r label pid before <<<"$pair"
    now=$(workers_of "$pid")
    if [[ $now != "$before" ]]; then
        echo "$ME: !!! $label: workers changed during the run ($before-> $now): a crash?" >&2
        FAIL=1
    fi
done

measured=0
for ((r = 1; r <= ROUNDS; r++)); do
    measured=$((measured + ${REQS[$NKEYS-keys,$r]}))
done
stop_daemon one-key "$PID_ONE"
stop_daemon "$NKEYS-keys" "$PID_MANY"

# The accounting reached the database: a usage row per key, and at least
# every measured request counted (warm-up and checks come on top).
db=$WORK/many-keys/data/sora2api.db
keys_used=$(sqlite3 "$db" 'SELECT COUNT(DISTINCT key_id) FROM api_key_usage WHERE key_id > 1')
counted=$(sqlite3 "$db" 'SELECT COALESCE(SUM(requests), 0) FROM api_key_usage WHERE key_id > 1')
echo "usage rows: $keys_used keys with usage, $counted requests counted;" \
    "wrk counted $measured in the measured runs (plus warm-up and checks)"
((keys_used == NKEYS)) || { echo "$ME: !!! $keys_used of $NKEYS keys have usage rows" >&2; FAIL=1; }
((counted >= measured)) || { echo "$ME: !!! $counted requests counted, fewer than $measured" >&2; FAIL=1; }

for name in one-key many-keys; do
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
