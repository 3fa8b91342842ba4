#!/usr/bin/env bash
# A fresh runner served by a remote that is 0, 10 or 50 ms away, against the local warm
# build, on ripgrep 14.1.1 (release), side by side in one run. Machine A builds cold once
# and pushes to Redis (scripts/remote-servers.sh's); then ROUNDS interleaved rounds
# (default 3) of, each in a fresh checkout at another path:
#   local       larder with A's local store (warm), no remote
#   rttN        larder with an empty local store, served by Redis through a delay line
#               of N ms round trip (bench/delay-proxy.py; RTTS, default "0 10 50")
#   rttN-nopf   the same with LARDER_PREFETCH=0
# Prints medians (wall, CPU) and ratios to `local`, then the floor: the same blobs fetched,
# decompressed, written and checked without larder (bench/remote-floor.py).
# Knobs: LARDER_BIN (default: build one), ROUNDS, RTTS, BENCH_WORK (/tmp/larder-bench-latency).
set -euo pipefail
ROUNDS="${ROUNDS:-3}"
RTTS="${RTTS:-0 10 50}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup /tmp/larder-bench-latency

env_file="$("$REPO/scripts/remote-servers.sh" env)"
redis-cli -p 26379 ping >/dev/null 2>&1 || "$REPO/scripts/remote-servers.sh" start >&2
redis-cli -p 26379 flushall >/dev/null

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
declare -A URL
for rtt in $RTTS; do
    if [ "$rtt" = 0 ]; then
        URL[$rtt]="redis://127.0.0.1:26379/0"
        continue
    fi
    port="$(free_port)"
    setsid python3 "$REPO/bench/delay-proxy.py" "$port" 127.0.0.1:26379 \
        "$(python3 -c "print($rtt / 2)")" >"$WORK/proxy-$rtt.log" 2>&1 &
    PIDS+=($!)
    URL[$rtt]="redis://127.0.0.1:$port/0"
done
sleep 0.5
# shellcheck disable=SC1090
source "$env_file"
unset LARDER_REMOTE

fresh "$WORK/a/rg"
timed machine-a "$WORK/a/rg" env LARDER_DIR="$WORK/store-a" \
    LARDER_REMOTE="redis://127.0.0.1:26379/0" "$LARDER" cargo build --release --locked
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
labels=(local)
for rtt in $RTTS; do labels+=("rtt$rtt" "rtt$rtt-nopf"); done
for round in $(seq 1 "$ROUNDS"); do
    for label in "${labels[@]}"; do
        dir="$WORK/$label/elsewhere/rg"
        fresh "$dir"
        case "$label" in
            local)
                timed local "$dir" env LARDER_DIR="$WORK/store-a" \
                    "$LARDER" cargo build --release --locked
                ;;
            *)
                rtt="${label#rtt}"
                rtt="${rtt%-nopf}"
                pf=1
                [[ "$label" == *-nopf ]] && pf=0
                rm -rf "$WORK/store-$label"
                timed "$label" "$dir" env LARDER_DIR="$WORK/store-$label" LARDER_PREFETCH="$pf" \
                    LARDER_REMOTE="${URL[$rtt]}" "$LARDER" cargo build --release --locked
                ;;
        esac
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "ripgrep $RG_VERSION release, a fresh runner (empty local store, another checkout) from Redis at each round trip, $ROUNDS interleaved rounds, medians ($(nproc) cores)"
medians "${labels[@]}"
for label in "${labels[@]}"; do
    line="$(grep -h '^larder: prefetched' "$WORK/$label.log" | tail -n 1 || true)"
    if [ -n "$line" ]; then echo "$label: $line"; fi
done
echo
echo "the floor: machine A's blobs from Redis without larder (bench/remote-floor.py)"
python3 "$REPO/bench/remote-floor.py" 26379
