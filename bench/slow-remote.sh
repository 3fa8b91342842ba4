#!/usr/bin/env bash
# What a slow or dead remote costs a build, on ripgrep 14.1.1 (release), side by side in
# one run: ROUNDS interleaved rounds (default 3) of larder cold builds (empty store)
#   none   no remote
#   slow   a remote that answers every call after DELAY seconds (default 4, under the
#          5 s deadline): a bazel-remote HTTP server that finds nothing and takes every
#          write (a Python server started here)
#   dead   a Redis URL where nothing listens
# Prints medians (wall, CPU) and the ratio of each to `none`, and the remote's counters.
# Knobs: LARDER_BIN (default: build one), ROUNDS, DELAY, BENCH_WORK (/tmp/larder-bench-slow).
set -euo pipefail
ROUNDS="${ROUNDS:-3}"
DELAY="${DELAY:-4}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup /tmp/larder-bench-slow

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SLOW_PORT="$(free_port)"
DEAD_PORT="$(free_port)"
setsid python3 - "$SLOW_PORT" "$DELAY" >"$WORK/slow-server.log" 2>&1 <<'EOF' &
import http.server, socketserver, sys, time
delay = float(sys.argv[2])
class Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, code):
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        time.sleep(delay)
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()
    def do_GET(self): self.reply(404)
    def do_HEAD(self): self.reply(404)
    def do_PUT(self): self.reply(200)
    def log_message(self, *a): pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()
EOF
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq 1 "$ROUNDS"); do
    for kind in none slow dead; do
        dir="$WORK/$kind/rg"
        rm -rf "$WORK/store-$kind"
        fresh "$dir"
        case "$kind" in
            none) remote="" ;;
            slow) remote="http://127.0.0.1:$SLOW_PORT/cache" ;;
            dead) remote="redis://127.0.0.1:$DEAD_PORT/0" ;;
        esac
        timed "$kind" "$dir" env LARDER_DIR="$WORK/store-$kind" LARDER_REMOTE="$remote" \
            "$LARDER" cargo build --release --locked
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "ripgrep $RG_VERSION release, larder cold builds, $ROUNDS interleaved rounds, medians ($(nproc) cores), slow remote: ${DELAY} s per call"
medians none slow dead
for kind in slow dead; do
    echo "$kind: $(grep -h 'larder: warning' "$WORK/$kind.log" | head -n 2 | tr '\n' ' ')"
    (cd "$WORK/$kind/rg" && LARDER_DIR="$WORK/store-$kind" "$LARDER" stats --json) |
        python3 -c 'import json, sys; r = json.load(sys.stdin)["remotes"]; print("  ", json.dumps(r))'
done
