# lib.sh: what the shell benchmarks share, sourced after they set ME
# (their name, for messages), DAEMON and NGINX, and PIDS=() (servers that
# cleanup must stop). It gives: die, a private work directory $WORK with
# a renamed copy of the daemon in $BIN (removed on exit with every server
# in PIDS, unless KEEP_TMP=1) made by bench_setup, forget_pid, free_port,
# start_nginx, start_fake, fake_upstream_conf, start_sora2apid,
# stop_daemon and workers_of.
# shellcheck shell=bash

die() {
    local f
    echo "$ME: FAIL: $*" >&2
    for f in "${PIDS[@]}"; do
        [[ -n $f ]] || continue
        if kill -0 "$f" 2>/dev/null; then
            echo "  pid $f alive, children: $(pgrep -P "$f" | tr '\n' ' ')" >&2
        else
            echo "  pid $f is gone" >&2
        fi
    done
    for f in "${WORK:-/nonexistent}"/*/error.log; do
        [[ -s $f ]] || continue
        echo "--- last lines of $f" >&2
        tail -n 15 "$f" >&2
        if grep -q 'graceful stop requested' "$f"; then
            echo "  (a SIGTERM came from outside this script: something on the" \
                "machine is killing sora2apid processes)" >&2
        fi
    done
    exit 1
}

cleanup() {
    local pid i
    trap - EXIT INT TERM
    set +e
    for pid in "${PIDS[@]}"; do
        [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        [[ -n $pid ]] || continue
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "$ME: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    return 0
}

# bench_setup: the work directory and the daemon's private copy; from here
# on everything is stopped and removed on exit.
bench_setup() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/sora2api-$ME.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    # nginx drops its workers to "nobody" when started as root: let them in.
    chmod 711 "$WORK"
    # Run a private copy of the daemon, under another name: a "pkill
    # sora2apid" by a concurrent test run cannot stop it mid-measurement,
    # and its text pages are not shared with (and so not discounted by)
    # other instances' PSS.
    mkdir "$WORK/bin"
    cp "$DAEMON" "$WORK/bin/s2abench"
    # shellcheck disable=SC2034 # read by the benchmark scripts
    BIN=$WORK/bin/s2abench
}

forget_pid() {
    local i
    for i in "${!PIDS[@]}"; do
        [[ ${PIDS[i]} == "$1" ]] && PIDS[i]=
    done
    return 0
}

# free_port: sets PORT to a TCP port nobody uses on this machine, below the
# ephemeral range so that wrk's own client ports cannot collide with it.
declare -a TAKEN=()
free_port() {
    local i p used
    used=$(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }')
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + RANDOM % 12000))
        grep -qx "$p" <<<"$used" && continue
        [[ " ${TAKEN[*]} " == *" $p "* ]] && continue
        TAKEN+=("$p")
        PORT=$p
        return 0
    done
    die "no free port found"
}

# start_fake [CONFIG_JSON]: the fake Sora upstream (tests/fake-sora),
# with CONFIG_JSON as its --config when given; sets FAKE_PORT, FPID.
start_fake() {
    local dir=$WORK/fake i args=()
    mkdir -p "$dir"
    if [[ -n ${1:-} ]]; then
        echo "$1" >"$dir/config.json"
        args=(--config "$dir/config.json")
    fi
    : >"$dir/stdout.log"
    node "$ROOT/tests/fake-sora/server.js" --port 0 "${args[@]}" \
        >"$dir/stdout.log" 2>"$dir/stderr.log" &
    FPID=$!
    PIDS+=("$FPID")
    for ((i = 0; i < 100; i++)); do
        FAKE_PORT=$(awk '/^listening on / { n = split($3, a, ":"); print a[n] }' "$dir/stdout.log")
        [[ -n $FAKE_PORT ]] && return 0
        kill -0 "$FPID" 2>/dev/null || die "the fake upstream exited at start: $(cat "$dir/stderr.log")"
        sleep 0.1
    done
    die "the fake upstream is not listening after 10 s"
}

# fake_upstream_conf: the [upstream] section of a daemon that talks to the
# fake on FAKE_PORT (printed last, so that more upstream keys can follow).
fake_upstream_conf() {
    local fake=http://127.0.0.1:$FAKE_PORT
    printf '%s\n' '[upstream]' "base_url = $fake/backend" \
        "session_url = $fake/api/auth/session" \
        "oauth_url = $fake/oauth/token" 'poll_interval_ms = 100'
}

# start_sora2apid NAME [ACCESS_LOG [EXTRA]]: sora2apid with 2 workers in
# $WORK/NAME (access log ACCESS_LOG, default off; the lines of EXTRA added
# to its configuration), waits for its "ready:" line; sets PORT and DPID.
start_sora2apid() {
    local name=$1 alog=${2:-off} extra=${3:-} dir=$WORK/$1 i
    free_port
    mkdir -p "$dir/ui"
    printf '%s\n' '[server]' "listen = 127.0.0.1:$PORT" 'workers = 2' \
        "pidfile = $dir/sora2apid.pid" '[paths]' "data_dir = $dir/data" \
        "cache_dir = $dir/cache" "admin_ui_dir = $dir/ui" '[log]' \
        "error_log = $dir/error.log" "access_log = $alog" 'level = notice' \
        "$extra" >"$dir/sora2api.conf"
    "$BIN" -f -c "$dir/sora2api.conf" >"$dir/stdout.log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    for ((i = 0; i < 100; i++)); do
        grep -q 'ready:' "$dir/error.log" 2>/dev/null && return 0
        kill -0 "$DPID" 2>/dev/null ||
            die "sora2apid ($name) exited at start: $(cat "$dir/error.log" "$dir/stdout.log" 2>/dev/null)"
        sleep 0.1
    done
    die "sora2apid ($name) not ready after 10 s: $(cat "$dir/error.log" 2>/dev/null)"
}

# stop_daemon NAME PID: SIGTERM, and insist on exit status 0.
stop_daemon() {
    local rc=0
    kill -TERM "$2"
    wait "$2" || rc=$?
    forget_pid "$2"
    [[ $rc == 0 ]] || die "sora2apid ($1) exited $rc on SIGTERM"
}

# workers_of PID: the child pids of PID, sorted, on one line.
workers_of() {
    pgrep -P "$1" | sort -n | tr '\n' ' '
}

# start_nginx BODY_FILE [URI [TYPE]]: serves BODY_FILE at URI (default
# /v1/models) as TYPE (default application/json); sets PORT, NPID.
start_nginx() {
    local dir=$WORK/nginx i uri=${2:-/v1/models} type=${3:-application/json}
    free_port
    mkdir -p "$dir/html$(dirname "$uri")" "$dir/tmp"
    cp "$1" "$dir/html$uri"
    chmod -R a+rX "$dir/html"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    server_tokens off;
    types { }
    default_type $type;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=16 inactive=60s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT reuseport;
        root $dir/html;
        location = $uri { }
        location / { return 404; }
    }
}
EOF
    "$NGINX" -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" ||
        die "nginx rejects its config: $(cat "$dir/error.log" 2>/dev/null)"
    "$NGINX" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
        -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
    NPID=$!
    PIDS+=("$NPID")
    for ((i = 0; i < 100; i++)); do
        curl -sf -o /dev/null "http://127.0.0.1:$PORT$uri" && return 0
        kill -0 "$NPID" 2>/dev/null ||
            die "nginx exited at start: $(cat "$dir/error.log" 2>/dev/null)"
        sleep 0.1
    done
    die "nginx not answering after 10 s"
}

# --- wrk rounds: parsing, medians, the round table ---------------------
# The scripts keep RPS, P99 and REQS as associative arrays indexed
# "label,round", NON2XX as a running total and LABELS as the order.

# The p99 latency of wrk output file $1, in ms.
wrk_p99_ms() {
    awk '$1 == "99%" {
        v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000
        else if (u == "m") v *= 60000
        printf "%.2f", v }' "$1"
}

# Records round $2 of label $1 from wrk output file $3 into RPS, P99 and
# REQS; counts non-2xx answers into NON2XX, warns on socket errors.
wrk_record() {
    local label=$1 round=$2 out=$3 n2 serr
    RPS[$label,$round]=$(awk '$1 == "Requests/sec:" { print $2 }' "$out")
    P99[$label,$round]=$(wrk_p99_ms "$out")
    REQS[$label,$round]=$(awk '$2 == "requests" && $3 == "in" { print $1 }' "$out")
    [[ -n ${RPS[$label,$round]} && -n ${P99[$label,$round]} ]] ||
        die "cannot parse wrk output: $(cat "$out")"
    n2=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$out")
    if [[ -n $n2 && $n2 != 0 ]]; then
        echo "$ME: !!! $label round $round: $n2 non-2xx/3xx responses" >&2
        NON2XX=$((NON2XX + n2))
    fi
    serr=$(grep 'Socket errors' "$out" || true)
    [[ -z $serr ]] || echo "$ME: warning: $label round $round:$serr" >&2
}

# The median of the numbers given, two decimals.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]
              else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Fills MED_RPS and MED_P99 (declare them -A first) from ROUNDS rounds of
# every label, then prints req/s and p99 per round and the medians.
rps_p99_table() {
    local label r
    local -a rps p99
    for label in "${LABELS[@]}"; do
        rps=() p99=()
        for ((r = 1; r <= ROUNDS; r++)); do
            rps+=("${RPS[$label,$r]}")
            p99+=("${P99[$label,$r]}")
        done
        MED_RPS[$label]=$(median "${rps[@]}")
        MED_P99[$label]=$(median "${p99[@]}")
    done
    echo
    printf '%-7s' ''
    for label in "${LABELS[@]}"; do printf ' | %-20s' "$label"; done
    echo
    printf '%-7s' round
    for label in "${LABELS[@]}"; do printf ' | %10s %9s' req/s "p99 ms"; done
    echo
    for ((r = 1; r <= ROUNDS; r++)); do
        printf '%-7s' "$r"
        for label in "${LABELS[@]}"; do
            printf ' | %10.0f %9.2f' "${RPS[$label,$r]}" "${P99[$label,$r]}"
        done
        echo
    done
    printf '%-7s' median
    for label in "${LABELS[@]}"; do
        printf ' | %10.0f %9.2f' "${MED_RPS[$label]}" "${MED_P99[$label]}"
    done
    echo
    echo
}
