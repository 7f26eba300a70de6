#!/usr/bin/env bash
# gen-load.sh: streaming video generation under load (bench/gen-load.js),
# for one or more pool sizes T, with N = 3T concurrent streams each.
#
# usage: bench/gen-load.sh [T ...|all] [-- gen-load.js options]
#   bench/gen-load.sh                 T = 100 (about 40 s)
#   bench/gen-load.sh 1000            T = 1000, N = 3000
#   bench/gen-load.sh all             T = 100, 1000 and 3400 (N = 10,200)
#   bench/gen-load.sh 100 -- --duration 10 --keep
#
# Raises "ulimit -n" (10,200 streams need about 10,500 descriptors in the
# client and half that in each daemon worker), then runs gen-load.js once
# per T and exits non-zero when any run failed. Each run starts its own
# fake upstream and daemon on 127.0.0.1 and stops them on exit; should the
# node process die outright, this script stops what it had started.
#
# Environment: SORA2APID (daemon binary, default build/sora2apid),
# KEEP_TMP=1 (keep each run's temporary directory), STRICT=1 (a missed
# target is a failure), GEN_LOAD_JSON_DIR (write gen-load-T<T>.json there).
set -uo pipefail

readonly ME=gen-load
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DAEMON=${SORA2APID:-$ROOT/build/sora2apid}

die() {
    echo "$ME: FAIL: $*" >&2
    exit 1
}

sizes=()
extra=()
while (($#)); do
    case $1 in
    all) sizes+=(100 1000 3400) ;;
    --) shift; extra=("$@"); break ;;
    -h | --help)
        sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        [[ $1 =~ ^[1-9][0-9]*$ ]] || die "bad argument \"$1\" (a token count, \"all\", or -- options)"
        sizes+=("$1")
        ;;
    esac
    shift
done
((${#sizes[@]})) || sizes=(100)

command -v node >/dev/null 2>&1 || die "node not found"
[[ -x $DAEMON ]] || die "$DAEMON not found (make -C $ROOT -j2)"
export SORA2APID=$DAEMON

# As many descriptors as allowed (at least 16384 wanted for T = 3400).
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]] || ((hard > 65536)); then
    ulimit -n 65536 2>/dev/null || true
else
    ulimit -n "$hard" 2>/dev/null || true
fi
max_t=0
for t in "${sizes[@]}"; do ((t > max_t)) && max_t=$t; done
if (($(ulimit -n) < 3 * max_t + 512)); then
    echo "$ME: warning: ulimit -n is $(ulimit -n), short of $((3 * max_t + 512)) for T = $max_t" >&2
fi

PIDFILE=$(mktemp "${TMPDIR:-/tmp}/gen-load-pids.XXXXXX")
NODE_PID=
cleanup() {
    local i what arg kept
    trap - EXIT INT TERM
    set +e
    if [[ -n $NODE_PID ]] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill -TERM "$NODE_PID" 2>/dev/null
        for ((i = 0; i < 300; i++)); do
            kill -0 "$NODE_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$NODE_PID" 2>/dev/null
    fi
    # Whatever gen-load.js started and did not stop (it was killed outright):
    # processes ("pid N") and its temporary directory ("dir PATH"), unless
    # it was asked to keep that ("keep PATH", from --keep).
    kept=$'\n'$(grep '^keep ' "$PIDFILE" 2>/dev/null)$'\n'
    while read -r what arg; do
        if [[ $what == dir && $kept == *$'\n'"keep $arg"$'\n'* ]]; then
            continue
        fi
        if [[ $what == pid && $arg =~ ^[0-9]+$ ]]; then
            if grep -qa -e s2abench -e gen-load "/proc/$arg/cmdline" 2>/dev/null; then
                kill -KILL "$arg" 2>/dev/null
            fi
        elif [[ $what == dir && $arg == */sora2api-genload-* && -d $arg ]]; then
            [[ ${KEEP_TMP:-0} == 1 ]] || rm -rf "$arg"
        fi
    done <"$PIDFILE"
    rm -f "$PIDFILE"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=()
for t in "${sizes[@]}"; do
    echo "===== gen-load T=$t (N=$((3 * t))) ====="
    args=(--tokens "$t")
    if [[ -n ${GEN_LOAD_JSON_DIR:-} ]]; then
        mkdir -p "$GEN_LOAD_JSON_DIR"
        args+=(--json "$GEN_LOAD_JSON_DIR/gen-load-T$t.json")
    fi
    GEN_LOAD_PIDFILE=$PIDFILE node "$HERE/gen-load.js" "${args[@]}" "${extra[@]}" &
    NODE_PID=$!
    wait "$NODE_PID"
    rc=$?
    NODE_PID=
    ((rc == 130)) && exit 130 # interrupted: stop the series
    ((rc == 0)) || failed+=("T=$t (exit $rc)")
    echo
done

if ((${#failed[@]})); then
    echo "$ME: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "$ME: done"
