#!/usr/bin/env bash
# The project's full test command:
#   cargo fmt --check, cargo clippy -D warnings, cargo doc -D warnings, cargo test, the
#   ripgrep end-to-end check, the Docker end-to-end check (scripts/e2e-docker.sh), then the
#   differential suite (scripts/differential.py: zstd from crates.io built through larder in
#   14 states and compared with plain cargo's clean builds).
# Runs every step even if an earlier one fails, and exits non-zero if any failed.
#
# Before the tests it installs (if missing) and starts the servers the remote backends are
# tested against (scripts/remote-servers.sh: memcached, Redis, an S3 server, nginx WebDAV,
# BuildGrid on 127.0.0.1) and stops them at the end; the tests then require them
# (LARDER_TEST_REQUIRE_REMOTES=1), and the ripgrep end-to-end run pushes to every one and
# builds again from each.
#
# Environment: SKIP_E2E=1 skips scripts/e2e-ripgrep.sh (which has its own variables:
# PROFILES, LARDER_E2E_WORK, LARDER_BIN, ...). SKIP_DOCKER=1 skips scripts/e2e-docker.sh
# (a private dockerd from scripts/dockerd.sh, base images by debootstrap, ripgrep built by
# the generated Dockerfile; it needs root or sudo and Redis from the servers). SKIP_DIFFERENTIAL=1 skips the differential
# suite (its variables: LARDER_DIFF_WORK, LARDER_BIN). SKIP_REMOTES=1 starts no servers (the
# remote tests then skip, saying so).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

passed=()
failed=()
T0="$(date +%s)"

step() { # name, command...
    local name="$1" t0 rc
    shift
    echo
    echo "==> $name: $*"
    t0="$(date +%s)"
    "$@"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "==> $name: ok ($(($(date +%s) - t0))s)"
        passed+=("$name")
    else
        echo "==> $name: FAILED (exit $rc, $(($(date +%s) - t0))s)"
        failed+=("$name")
    fi
}

if [ "${SKIP_REMOTES:-0}" != 1 ]; then
    step servers "$REPO/scripts/remote-servers.sh" start
    SERVERS_ENV="$("$REPO/scripts/remote-servers.sh" env)"
    SHARED_DIR="$(mktemp -d)" # the shared-directory (NFS-style) remote of the e2e run
    if [ -f "$SERVERS_ENV" ]; then
        # shellcheck disable=SC1090
        source "$SERVERS_ENV"
        export LARDER_TEST_REQUIRE_REMOTES=1
        export REMOTES="${REMOTES-memcached=$LARDER_TEST_MEMCACHED redis=$LARDER_TEST_REDIS s3=$LARDER_TEST_S3 webdav=$LARDER_TEST_WEBDAV http=$LARDER_TEST_HTTP grpc=$LARDER_TEST_GRPC oci=$LARDER_TEST_OCI dir=file://$SHARED_DIR}"
    fi
fi
step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
step doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
TEST_LOG="$(mktemp)"
cleanup() {
    rm -f "$TEST_LOG"
    if [ "${SKIP_REMOTES:-0}" != 1 ]; then
        "$REPO/scripts/remote-servers.sh" stop >/dev/null 2>&1 || true
        rm -rf "$SHARED_DIR"
    fi
    if [ -n "${DOCKERD_STARTED:-}" ]; then
        "$REPO/scripts/dockerd.sh" stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
run_tests() { cargo test --workspace --locked 2>&1 | tee "$TEST_LOG"; }
step test run_tests
if [ "${SKIP_E2E:-0}" = 1 ]; then
    echo
    echo "==> e2e: skipped (SKIP_E2E=1)"
else
    step e2e "$REPO/scripts/e2e-ripgrep.sh"
fi
if [ "${SKIP_DOCKER:-0}" = 1 ]; then
    echo
    echo "==> docker: skipped (SKIP_DOCKER=1)"
else
    DOCKERD_STARTED=1
    step docker "$REPO/scripts/e2e-docker.sh"
fi
if [ "${SKIP_DIFFERENTIAL:-0}" = 1 ]; then
    echo
    echo "==> differential: skipped (SKIP_DIFFERENTIAL=1)"
else
    # No remote tier: one local store, as the suite describes.
    step differential env -u LARDER_REMOTE python3 "$REPO/scripts/differential.py"
fi

echo
total=$(($(date +%s) - T0))
# Totals over every `test result:` line of cargo test (unit, integration and doc tests).
read -r tests_passed tests_failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$TEST_LOG")
if [ "${#failed[@]}" -gt 0 ] && [ "$tests_failed" -eq 0 ]; then
    tests_failed=1 # a failed step (fmt, clippy, e2e) counts as one failure
fi
if [ "${#failed[@]}" -eq 0 ]; then
    echo "test.sh: ALL PASSED (${passed[*]}) in ${total}s"
else
    echo "test.sh: FAILED: ${failed[*]}; passed: ${passed[*]:-none}; ${total}s"
fi
echo "tests: $tests_passed passed, $tests_failed failed"
[ "${#failed[@]}" -eq 0 ]
