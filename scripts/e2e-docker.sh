#!/usr/bin/env bash
# End-to-end check of larder inside `docker build` with a real dockerd: ripgrep 14.1.1
# built by the Dockerfile that `larder docker init` writes, on base images made without
# any registry (scripts/dockerd.sh).
#
#   1. cold        root build, empty cache mounts, a password-protected Redis and an OCI
#                  registry as the remote tiers, passed as the BuildKit secret
#                  `larder_remote`: every unit a miss and stored; the image's `rg --version`
#                  works as the non-root runtime user
#   2. no change   the same build again: BuildKit reuses the step
#   3. code change one line added to ripgrep's own sources: cargo (its target dir a cache
#                  mount) rebuilds only ripgrep's own units, which miss and are stored
#   4. fresh runner `docker builder prune -af` (cache mounts gone) and a new dockerd, per
#                  way of carrying the cache: the secret naming the Redis alone, then the
#                  OCI registry alone (both were written by 1-3), then no remote but the
#                  file that the Dockerfile's `larder-cache` stage exported
#                  (`--target larder-cache --output type=local,dest=.larder`), which the
#                  build imports: every unit a hit, answered by that remote or the import
#   5. no secret   `docker history`, `docker image inspect` and `docker save` of every
#                  stage, and the build logs, never hold the Redis password
#   6. host store  ripgrep (debug) built on the host through larder; then inside a
#                  container of the builder image (other checkout path, other CARGO_HOME,
#                  the toolchain at another sysroot) with that store mounted: every unit
#                  a hit
#   7. non-root    `larder docker init --user builder`: from the remote every dependency a hit;
#                  after a code change the edited units miss and are stored in the mount
#                  (owned by the build user), no warning
# prints a table (scenario, wall seconds, units, hits, misses) and exits 1 if a check fails.
#
# Environment:
#   LARDER_DOCKER_WORK  work directory, emptied at start (default /tmp/larder-e2e-docker)
#   LARDER_BIN          use this larder binary (default: build the release binary)
#   REDIS_SERVER        redis-server binary (default: the one on PATH)
#   LARDER_TEST_OCI     the OCI registry (scripts/remote-servers.sh: oci://127.0.0.1:25000/...);
#                       a repository of its own under it per run
#   RG_VERSION          ripgrep version (default 14.1.1)
#   BUILD_SECS          deadline of one docker build (default 900)
# The engine and images come from scripts/dockerd.sh start (run here; cheap once done).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${LARDER_DOCKER_WORK:-/tmp/larder-e2e-docker}"
export RG_VERSION="${RG_VERSION:-14.1.1}"
REDIS_PORT=26390
BUILD_SECS="${BUILD_SECS:-900}" # deadline of one docker build

log() { echo "e2e-docker: $*" >&2; }
die() {
    echo "e2e-docker: FAIL: $*" >&2
    exit 1
}

case "$WORK" in
"" | / | "$HOME" | "$REPO") die "refusing to use LARDER_DOCKER_WORK=$WORK" ;;
esac
rm -rf "$WORK"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"

unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_RUSTC_WRAPPER CARGO_TARGET_DIR \
    CARGO_BUILD_TARGET_DIR LARDER_DIR LARDER_REPORT LARDER_DISABLE LARDER_REMOTE \
    LARDER_REMOTE_READ_ONLY LARDER_CONFIG
export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never

# ---------------------------------------------------------------------------------------------
# Engine, larder, sources, a Redis with a password
# ---------------------------------------------------------------------------------------------
"$REPO/scripts/dockerd.sh" start
# shellcheck disable=SC1090
source "$("$REPO/scripts/dockerd.sh" env)"
DOCKER="$LARDER_DOCKER"

if [ -n "${LARDER_BIN:-}" ]; then
    built="$LARDER_BIN"
else
    log "building larder: cargo build --release --locked -p larder"
    (cd "$REPO" && cargo build --release --locked -p larder) || die "building larder failed"
    built="$REPO/target/release/larder"
fi
# What a Dockerfile copies: the binary without debug info.
LARDER="$WORK/larder"
objcopy --strip-debug "$built" "$LARDER" 2>/dev/null || cp "$built" "$LARDER"

SRC="$WORK/ripgrep-src"
"$REPO/scripts/fetch-ripgrep.sh" "$SRC"
rm -rf "$SRC/target"

REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || true)}"
[ -x "$REDIS_SERVER" ] || die "no redis-server (install redis-server or set REDIS_SERVER)"
PASSWORD="larder-e2e-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$WORK/redis"
setsid "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK/redis" --requirepass "$PASSWORD" >"$WORK/redis/log" 2>&1 </dev/null &
REDIS_PID=$!
cleanup() { kill "$REDIS_PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" -a "$PASSWORD" --no-auth-warning ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
REDIS_URL="redis://:$PASSWORD@127.0.0.1:$REDIS_PORT/0"
[ -n "${LARDER_TEST_OCI:-}" ] ||
    die "LARDER_TEST_OCI is not set: start scripts/remote-servers.sh and source its env file"
OCI_URL="$LARDER_TEST_OCI/docker-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
export LARDER_REMOTE="$REDIS_URL,$OCI_URL"

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
ROWS=()
FAILS=0
check() { # condition-text, then the test as the remaining arguments
    local what="$1"
    shift
    if "$@"; then
        log "ok: $what"
    else
        log "FAIL: $what"
        FAILS=$((FAILS + 1))
    fi
}

# counts LOG: "units hits misses stored not_cacheable remote_hits" from larder's report
# lines in a build log (zeros when the step printed none, e.g. a step BuildKit reused).
counts() {
    python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
m = re.findall(r"larder: (\d+) units: (\d+) hits, (\d+) misses \((\d+) stored\), (\d+) not cacheable", text)
u = m[-1] if m else ("0",) * 5
remote = sum(int(n) for n in re.findall(r"larder: (\d+) hits from \S+", text))
print(*u, remote)
PY
}

# only_own LOG: whether every unit that missed (larder's "missed:" line) is one of
# ripgrep's own (its binary, its build script and that script's run).
only_own() {
    python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
own = {"rg", "ripgrep (build script)", "ripgrep (build script run)"}
names = set()
for m in re.findall(r"larder: missed: (.*?) \(`larder", text):
    names.update(n.strip() for n in m.split(","))
sys.exit(0 if names <= own else 1)
PY
}

# build NAME DIR [docker build args...]: a BuildKit build of DIR, log in $WORK/NAME.log,
# wall seconds in $WALL; sets U H M S NC R from larder's report line.
build() {
    local name="$1" dir="$2" t0
    shift 2
    t0="$(date +%s.%N)"
    # A deadline: a hung engine must fail the run, not stall CI.
    if ! (cd "$dir" && timeout "$BUILD_SECS" "$DOCKER" build --network host --progress plain "$@" .) \
        >"$WORK/$name.log" 2>&1; then
        tail -n 40 "$WORK/$name.log" >&2
        die "$name: docker build failed or took over ${BUILD_SECS}s (log $WORK/$name.log)"
    fi
    WALL="$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")"
    read -r U H M S NC R <<<"$(counts "$WORK/$name.log")"
    ROWS+=("$name $WALL $U $H $M")
    grep -E 'larder: ' "$WORK/$name.log" | sed 's/^/    /' | head -n 8 >&2 || true
}

edit() { # a line that changes ripgrep's own compiled code
    printf '\n#[allow(dead_code)]\nfn larder_e2e_edit_%s() {}\n' "$2" >>"$1/crates/core/main.rs"
}

# ---------------------------------------------------------------------------------------------
# 1-5: the generated Dockerfile, root build
# ---------------------------------------------------------------------------------------------
P="$WORK/root/ripgrep"
mkdir -p "$WORK/root"
cp -a "$SRC" "$P"
(cd "$P" && "$LARDER" docker init --bin rg --larder-binary "$LARDER" \
    --base "$LARDER_DOCKER_BUILDER" --runtime "$LARDER_DOCKER_BASE") >&2 ||
    die "larder docker init failed"
(cd "$P" && "$LARDER" docker init --check) >&2 || die "the generated Dockerfile fails its own --check"

"$REPO/scripts/dockerd.sh" fresh
build cold "$P" --secret id=larder_remote,env=LARDER_REMOTE -t larder-e2e/rg
check "cold: some units ($U), all missed and stored, none uncacheable" \
    test "$U" -gt 20 -a "$M" = "$U" -a "$S" = "$U" -a "$NC" = 0
# The first line, without `| head` (under pipefail a writer cut off by head exits 141).
out="$("$DOCKER" run --rm larder-e2e/rg --version 2>&1)"
out="${out%%$'\n'*}"
check "the image runs rg ($out)" grep -q "^ripgrep $RG_VERSION" <<<"$out"
user="$("$DOCKER" run --rm --entrypoint id larder-e2e/rg -un 2>&1)"
check "the runtime user is not root ($user)" test "$user" = app

build no-change "$P" --secret id=larder_remote,env=LARDER_REMOTE -t larder-e2e/rg
check "no change: BuildKit reused the build step" grep -q "CACHED" "$WORK/no-change.log"

edit "$P" 1
build code-change "$P" --secret id=larder_remote,env=LARDER_REMOTE -t larder-e2e/rg
check "code change: cargo rebuilt only ripgrep's own units ($M), each a miss that was stored" \
    test "$M" -ge 1 -a "$M" -le 3 -a "$U" = "$M" -a "$S" = "$M" -a "$NC" = 0
check "code change: no dependency missed" only_own "$WORK/code-change.log"

# A fresh runner per way of carrying the cache. (A unit fewer than cold when a hit
# build-script run makes a compiler probe unneeded.)
for via in redis oci; do
    case "$via" in
    redis) LARDER_REMOTE="$REDIS_URL" ;;
    oci) LARDER_REMOTE="$OCI_URL" ;;
    esac
    "$REPO/scripts/dockerd.sh" fresh
    build "fresh-runner-$via" "$P" --secret id=larder_remote,env=LARDER_REMOTE -t larder-e2e/rg
    check "fresh runner from $via: all $U units hits ($H), all from the remote ($R)" \
        test "$U" -gt 20 -a "$M" = 0 -a "$H" = "$U" -a "$R" = "$U"
done
t0="$(date +%s.%N)"
(cd "$P" && timeout "$BUILD_SECS" "$DOCKER" build --network host --progress plain \
    --target larder-cache --output type=local,dest=.larder .) >"$WORK/export.log" 2>&1 ||
    { tail -n 30 "$WORK/export.log" >&2; die "exporting through the larder-cache stage failed"; }
size="$(stat -c %s "$P/.larder/cache.tar.zst" 2>/dev/null || echo 0)"
ROWS+=("export-stage $(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$t0") - - -")
check "the larder-cache stage wrote .larder/cache.tar.zst ($size bytes)" test "$size" -gt 1000000
"$REPO/scripts/dockerd.sh" fresh
LARDER_REMOTE="$REDIS_URL,$OCI_URL"
build fresh-runner-import "$P" -t larder-e2e/rg
check "fresh runner from the exported file, no remote: all $U units hits ($H), none remote ($R)" \
    test "$U" -gt 20 -a "$M" = 0 -a "$H" = "$U" -a "$R" = 0
check "the build imported the file" grep -q "imported [1-9][0-9]* entries" "$WORK/fresh-runner-import.log"
rm -f "$P/.larder/cache.tar.zst"

# Every stage as an image: history, config and saved layers must not hold the password.
for stage in larder build; do
    (cd "$P" && "$DOCKER" build --network host -q --target "$stage" \
        --secret id=larder_remote,env=LARDER_REMOTE -t "larder-e2e/rg-$stage" .) >/dev/null ||
        die "building stage $stage failed"
done
leaks=0
for image in larder-e2e/rg larder-e2e/rg-larder larder-e2e/rg-build; do
    if "$DOCKER" history --no-trunc "$image" | grep -qF "$PASSWORD" ||
        "$DOCKER" image inspect "$image" | grep -qF "$PASSWORD"; then
        log "the password is in the history or config of $image"
        leaks=$((leaks + 1))
    fi
done
# `docker save` writes uncompressed layer tars inside an uncompressed tar: grep it whole.
"$DOCKER" save -o "$WORK/images.tar" larder-e2e/rg larder-e2e/rg-larder larder-e2e/rg-build
if grep -qaF "$PASSWORD" "$WORK/images.tar"; then
    log "the password is in the saved images"
    leaks=$((leaks + 1))
fi
grep -qF "$PASSWORD" "$WORK"/*.log && {
    log "the password is in a build log"
    leaks=$((leaks + 1))
}
check "no stage's history, config, layers or build log holds the secret" test "$leaks" = 0
rm -f "$WORK/images.tar"

# ---------------------------------------------------------------------------------------------
# 6: a store filled on the host gives hits inside a container
# ---------------------------------------------------------------------------------------------
H_SRC="$WORK/host/ripgrep"
mkdir -p "$WORK/host"
cp -a "$SRC" "$H_SRC"
t0=$SECONDS
# The host is a laptop: its workspace crates compile incrementally, as the container's do
# (under CI's variables larder would drop `-C incremental`, which is in the key).
(cd "$H_SRC" && env -u LARDER_REMOTE LARDER_INCREMENTAL=on LARDER_DIR="$WORK/host-store" \
    "$LARDER" cargo build --locked) \
    >"$WORK/host.log" 2>&1 || { tail -n 30 "$WORK/host.log" >&2; die "host build failed"; }
read -r U H M S NC R <<<"$(counts "$WORK/host.log")"
ROWS+=("host-debug $((SECONDS - t0)) $U $H $M")
check "host debug build: $U units stored ($S)" test "$U" -gt 20 -a "$S" = "$U"
C_SRC="$WORK/container/checkout/rg"
mkdir -p "$(dirname "$C_SRC")"
cp -a "$SRC" "$C_SRC"
t0=$SECONDS
"$DOCKER" run --rm --network host \
    -v "$LARDER:/usr/local/bin/larder:ro" -v "$WORK/host-store:/larder-store" \
    -v "$C_SRC:/work/rg" -w /work/rg \
    -e LARDER_DIR=/larder-store -e CARGO_HOME=/cargo-home -e CARGO_TERM_COLOR=never \
    "$LARDER_DOCKER_BUILDER" larder cargo build --locked >"$WORK/container.log" 2>&1 ||
    { tail -n 30 "$WORK/container.log" >&2; die "container build failed"; }
read -r U H M S NC R <<<"$(counts "$WORK/container.log")"
ROWS+=("host-store-in-container $((SECONDS - t0)) $U $H $M")
grep -E 'larder: ' "$WORK/container.log" | sed 's/^/    /' | head -n 5 >&2 || true
check "host store in a container: all $U units hits ($H)" test "$U" -gt 20 -a "$M" = 0 -a "$H" = "$U"

# ---------------------------------------------------------------------------------------------
# 7: a non-root build user
# ---------------------------------------------------------------------------------------------
Q="$WORK/user/ripgrep"
mkdir -p "$WORK/user"
cp -a "$SRC" "$Q"
edit "$Q" 1 # the state the remote has from step 3
(cd "$Q" && "$LARDER" docker init --bin rg --user builder --larder-binary "$LARDER" \
    --base "$LARDER_DOCKER_BUILDER" --runtime "$LARDER_DOCKER_BASE") >&2 ||
    die "larder docker init --user failed"
build user-remote "$Q" --secret id=larder_remote,env=LARDER_REMOTE -t larder-e2e/rg-user
# Its Dockerfile differs from the root build's, and ripgrep's build script (no
# rerun-if-changed) depends on every file of the package: that run may miss.
check "non-root, fresh mounts: $H of $U units hits, all from the remote ($R)" \
    test "$U" -gt 20 -a "$H" -ge $((U - 3)) -a "$R" = "$H"
check "non-root, fresh mounts: no dependency missed" only_own "$WORK/user-remote.log"
edit "$Q" 2
build user-change "$Q" -t larder-e2e/rg-user
check "non-root code change: $M misses all stored ($S) in the build user's mount, the rest hits" \
    test "$M" -ge 1 -a "$M" -le 3 -a "$S" = "$M" -a "$H" = $((U - M)) -a "$NC" = 0
check "non-root: no larder warning" bash -c "! grep -q 'larder: warning' '$WORK/user-remote.log' '$WORK/user-change.log'"

# ---------------------------------------------------------------------------------------------
echo
printf '%-26s %8s %6s %6s %7s\n' scenario wall_s units hits misses
for row in "${ROWS[@]}"; do
    # shellcheck disable=SC2086
    printf '%-26s %8s %6s %6s %7s\n' $row
done
echo
if [ "$FAILS" -gt 0 ]; then
    die "$FAILS check(s) failed"
fi
log "all checks passed"
