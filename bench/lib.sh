# lib.sh: what the shell benchmarks share, sourced after they set ME
# (their name, for messages), DAEMON and NGINX, and PIDS=() (servers that
# cleanup must stop). It gives: die, a private work directory $WORK with
# a renamed copy of the daemon in $BIN (removed on exit with every server
# in PIDS, unless KEEP_TMP=1) made by bench_setup, forget_pid, free_port
# and start_nginx.
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
