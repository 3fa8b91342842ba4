#!/usr/bin/env bash
# larder against sccache through one shared Redis, side by side in one run, on ripgrep
# 14.1.1 (release): plain cargo's cold build; then per tool a cold build on "machine A"
# (empty local state, the Redis empty) that pushes to Redis, and a build on "machine B"
# (another checkout path, empty local state) served by Redis.
#
#   bench/remote.sh
#
# Needs the servers of scripts/remote-servers.sh (started here if they are not up) and
# redis-cli. Knobs: LARDER_BIN (default: build one), SCCACHE_BIN (default: sccache on PATH,
# else ~/.larder-bench-tools/bin/sccache; skipped if absent), BENCH_WORK
# (/tmp/larder-bench-remote). Prints one line per build: wall and CPU seconds.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${BENCH_WORK:-/tmp/larder-bench-remote}"
case "$WORK" in "" | / | "$HOME" | "$REPO") echo "refusing BENCH_WORK=$WORK" >&2; exit 2 ;; esac
rm -rf "$WORK"
mkdir -p "$WORK"

env_file="$("$REPO/scripts/remote-servers.sh" env)"
redis-cli -p 26379 ping >/dev/null 2>&1 || "$REPO/scripts/remote-servers.sh" start >&2
# shellcheck disable=SC1090
source "$env_file"

LARDER="${LARDER_BIN:-}"
if [ -z "$LARDER" ]; then
    (cd "$REPO" && cargo build --release --locked -p larder >&2)
    LARDER="$REPO/target/release/larder"
fi
SCCACHE="${SCCACHE_BIN:-$(command -v sccache || echo "$HOME/.larder-bench-tools/bin/sccache")}"

SRC="$WORK/ripgrep-src"
"$REPO/scripts/fetch-ripgrep.sh" "$SRC" >&2
copy() { mkdir -p "$(dirname "$1")" && cp -a "$SRC" "$1" && rm -rf "$1/target"; }

unset RUSTC_WRAPPER LARDER_DIR LARDER_REMOTE LARDER_REMOTE_READ_ONLY
export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never
# timed LABEL DIR CMD...: runs CMD in DIR and prints "LABEL: wall, CPU" (CPU: cargo's tree).
timed() {
    local label="$1" dir="$2" log
    shift 2
    log="$WORK/$(tr -c 'a-z0-9\n' '_' <<<"$label").log"
    (cd "$dir" && /usr/bin/time -f "$label: %e s wall, %U+%S s CPU" "$@") >"$log" 2>&1 \
        || { tail -n 30 "$log" >&2; exit 1; }
    tail -n 1 "$log"
}

copy "$WORK/plain/rg"
timed "cargo, cold" "$WORK/plain/rg" cargo build --release --locked

redis-cli -p 26379 flushall >/dev/null
copy "$WORK/larder-a/rg"
timed "larder, machine A, cold, pushing" "$WORK/larder-a/rg" \
    env LARDER_DIR="$WORK/larder-a-store" LARDER_REMOTE="$LARDER_TEST_REDIS" \
    "$LARDER" cargo build --release --locked
copy "$WORK/larder-b/elsewhere/rg"
timed "larder, machine B, from Redis" "$WORK/larder-b/elsewhere/rg" \
    env LARDER_DIR="$WORK/larder-b-store" LARDER_REMOTE="$LARDER_TEST_REDIS" \
    "$LARDER" cargo build --release --locked

if [ -x "$SCCACHE" ]; then
    redis-cli -p 26379 flushall >/dev/null
    export SCCACHE_REDIS_ENDPOINT="tcp://127.0.0.1:26379" SCCACHE_IDLE_TIMEOUT=0
    for machine in a b; do
        dir="$WORK/sccache-$machine/elsewhere-$machine/rg"
        copy "$dir"
        "$SCCACHE" --stop-server >/dev/null 2>&1 || true
        SCCACHE_DIR="$WORK/sccache-$machine-dir" "$SCCACHE" --start-server >/dev/null 2>&1
        label="sccache, machine $machine"
        [ "$machine" = a ] && label="$label, cold, pushing" || label="$label, from Redis"
        timed "$label" "$dir" env RUSTC_WRAPPER="$SCCACHE" cargo build --release --locked
        "$SCCACHE" --show-stats | grep -E "^(Cache hits|Cache misses|Non-cacheable calls) " | sed 's/^/    /'
        "$SCCACHE" --stop-server >/dev/null 2>&1 || true
    done
else
    echo "sccache not found: skipped (set SCCACHE_BIN)"
fi
