#!/usr/bin/env bash
# run-all.sh: runs every benchmark of this directory, one after the other,
# and exits non-zero when any of them failed. Takes about five minutes
# (gen-load runs its default, T = 100; "bench/gen-load.sh all" is the full
# 100 / 1000 / 3400 series). The environment variables of each script
# (ROUNDS, DURATION, CONNS, VIDEO_MB, WARMUP, SORA2APID, NGINX, KEEP_TMP,
# STRICT, GEN_LOAD_JSON_DIR) pass through.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
failed=()

for bench in models-vs-nginx videos-retrieve content-vs-nginx keys-models idle-memory gen-load; do
    echo "===== $bench ====="
    if ! "$HERE/$bench.sh"; then
        failed+=("$bench")
    fi
    echo
done

if ((${#failed[@]})); then
    echo "run-all: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "run-all: all benchmarks ran"
