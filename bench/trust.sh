#!/usr/bin/env bash
# The cost of trusting a shared cache, on ripgrep 14.1.1 (release), side by side in one
# run: signing what a build stores, checking signatures on every restore, and verifying
# every restored unit by rebuild.
#
#   bench/trust.sh
#
# ROUNDS interleaved rounds (default 3), each:
#   plain        cargo build --locked, fresh target dir (the reference: ratios are to it)
#   cold         larder cold build, empty store, no key
#   cold+sign    larder cold build, empty store, LARDER_SIGNING_KEY
#   warm         larder in another checkout, fresh target dir, the `cold` store, nothing
#                required
#   warm+check   larder in another checkout, fresh target dir, the `cold+sign` store,
#                LARDER_TRUSTED_KEYS and LARDER_REQUIRE_SIGNATURES=1 (every record checked)
# then once, on the last round's signed store:
#   verify here      the checkout that made the entries: clean target, a build of all hits,
#                    `larder verify` (every rustc unit compiled again, compared byte for byte)
#   verify elsewhere another checkout: the same, where outputs embed the first checkout's paths
# Prints medians (wall and CPU seconds, ratio to plain's wall) and verify's counts.
# Knobs: LARDER_BIN (default: build one), ROUNDS, BENCH_WORK (/tmp/larder-bench-trust).
set -euo pipefail
ROUNDS="${ROUNDS:-3}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup /tmp/larder-bench-trust
KEY="$WORK/team-ci-1.secret"
PUBLIC="$("$LARDER" key generate --name team-ci-1 --out "$KEY")"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    fresh "$WORK/plain/rg"
    timed plain "$WORK/plain/rg" cargo build --release --locked
    for kind in cold cold+sign; do
        store="$WORK/store-$kind"
        rm -rf "$store"
        fresh "$WORK/$kind/rg"
        if [ "$kind" = cold+sign ]; then
            timed "$kind" "$WORK/$kind/rg" env LARDER_DIR="$store" LARDER_SIGNING_KEY="$KEY" \
                "$LARDER" cargo build --release --locked
        else
            timed "$kind" "$WORK/$kind/rg" env LARDER_DIR="$store" "$LARDER" cargo build --release --locked
        fi
    done
    fresh "$WORK/warm/elsewhere/rg"
    timed warm "$WORK/warm/elsewhere/rg" env LARDER_DIR="$WORK/store-cold" \
        "$LARDER" cargo build --release --locked
    fresh "$WORK/warm+check/elsewhere/rg"
    timed warm+check "$WORK/warm+check/elsewhere/rg" env LARDER_DIR="$WORK/store-cold+sign" \
        LARDER_TRUSTED_KEYS="$PUBLIC" LARDER_REQUIRE_SIGNATURES=1 \
        "$LARDER" cargo build --release --locked
    grep -q '0 misses' "$WORK/warm+check.log" || { tail -n 5 "$WORK/warm+check.log" >&2; echo "warm+check missed" >&2; exit 1; }
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "ripgrep $RG_VERSION release, $ROUNDS interleaved rounds, medians ($(nproc) cores)"
medians plain cold cold+sign warm warm+check
python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, _ = line.split("\t")
    rows.setdefault(label, []).append(float(wall))
pair = lambda a, b: statistics.median(y / x for x, y in zip(rows[a], rows[b]))
print(f"paired per round, medians: cold+sign / cold = {pair('cold', 'cold+sign'):.3f}; warm+check / warm = {pair('warm', 'warm+check'):.3f}")
EOF

# Verification by rebuild, every unit, on the signed store of the last round.
store="$WORK/store-cold+sign"
here="$WORK/cold+sign/rg"
rm -rf "$here/target"
(cd "$here" && env LARDER_DIR="$store" "$LARDER" cargo build --release --locked) >"$WORK/verify-build-here.log" 2>&1
timed "verify-here" "$here" env LARDER_DIR="$store" "$LARDER" verify
cp "$WORK/verify-here.log" "$WORK/verify-here.txt"
(cd "$here" && env LARDER_DIR="$store" "$LARDER" verify --json) >"$WORK/verify-here.json" || true
fresh "$WORK/verify-elsewhere/other/rg"
(cd "$WORK/verify-elsewhere/other/rg" && env LARDER_DIR="$store" "$LARDER" cargo build --release --locked) \
    >"$WORK/verify-build-elsewhere.log" 2>&1
(cd "$WORK/verify-elsewhere/other/rg" && env LARDER_DIR="$store" "$LARDER" verify) >"$WORK/verify-elsewhere.txt" 2>&1 || true
echo
echo "larder verify, every unit, in the checkout that made the entries:"
grep -v '^[0-9.]* [0-9.]* [0-9.]*$' "$WORK/verify-here.txt" | tail -n 20
echo "larder verify, every unit, in another checkout:"
tail -n 1 "$WORK/verify-elsewhere.txt"
