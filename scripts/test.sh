#!/usr/bin/env bash
# The project's full test command:
#   cargo fmt --check, cargo clippy -D warnings, cargo test, then the ripgrep end-to-end check.
# Runs every step even if an earlier one fails, and exits non-zero if any failed.
#
# Environment: SKIP_E2E=1 skips scripts/e2e-ripgrep.sh (which has its own variables:
# PROFILES, LARDER_E2E_WORK, LARDER_BIN, ...).
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

step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
TEST_LOG="$(mktemp)"
trap 'rm -f "$TEST_LOG"' EXIT
run_tests() { cargo test --workspace --locked 2>&1 | tee "$TEST_LOG"; }
step test run_tests
if [ "${SKIP_E2E:-0}" = 1 ]; then
    echo
    echo "==> e2e: skipped (SKIP_E2E=1)"
else
    step e2e "$REPO/scripts/e2e-ripgrep.sh"
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
