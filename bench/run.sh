#!/usr/bin/env bash
# larder bench: wall and CPU time of cargo builds of real crates.io projects with no cache,
# larder, sccache, kache and mbx, over seven scenarios (cold, no-op, one-line edit, dependency
# bump, fresh checkout elsewhere, cargo clean, next commit), debug and release. See
# bench/README.md.
#
#   bench/run.sh                      # the full matrix (hours on 2 cores)
#   RUNS=1 PROJECTS=ripgrep PROFILES=release bench/run.sh
#
# Knobs (environment): RUNS (3), PROJECTS (ripgrep,heavy; also hk, smoke),
# PROFILES (debug,release), TOOLS (cargo,larder,sccache,kache,mbx),
# SCENARIOS (a,b,c,d,e,f,g), BENCH_WORK (/tmp/larder-bench), LARDER_BIN, SCCACHE_BIN,
# KACHE_BIN, MBX_BIN, BENCH_TOOLS_ROOT (~/.larder-bench-tools), BENCH_NO_INSTALL=1,
# BENCH_KEEP=1, BENCH_CI=1 (every build with CI=true, as in a CI pipeline). Results:
# $BENCH_WORK/results.md and results.json.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v python3 >/dev/null || {
    echo "bench: python3 is required" >&2
    exit 2
}
exec python3 "$HERE/bench.py" "$@"
