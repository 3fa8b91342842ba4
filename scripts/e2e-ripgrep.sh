#!/usr/bin/env bash
# End-to-end check of larder on a real project: ripgrep 14.1.1 from crates.io.
#
# For each profile (debug, release):
#   1. plain cold build      cargo build --locked            in A, fresh target dir (baseline)
#   2. larder cold build     larder cargo build --locked     in B, fresh target dir, empty store
#   3. larder warm elsewhere larder cargo build --locked     in C (another path), fresh target
#      dir, same store: every unit (report line with a non-null `crate`) must be a `hit`
#   4. the warm-built `rg` must work
# and, for each profile in REMOTE_PROFILES when REMOTES is set, across "machines":
#   5. larder cold build with store A (its own LARDER_DIR and checkout path), every remote
#      in REMOTES a writable tier: it pushes to all of them (`larder cargo` returns once
#      the uploads are done; the wait is reported)
#   6. per remote: an empty LARDER_DIR, another checkout path, that remote alone as the
#      tier behind it: every unit must be a hit answered by the remote, and `rg` must work
# and prints summary tables. Exit status 1 if any check fails.
#
# Environment:
#   PROFILES               profiles to run (default "debug release")
#   LARDER_E2E_WORK        work directory, emptied at start (default /tmp/larder-e2e)
#   LARDER_BIN             use this larder binary instead of building one
#   LARDER_E2E_BIN_TARGET  target dir for building larder (default: $CARGO_TARGET_DIR, else
#                          the repo's target/); set it to avoid lock contention with other builds
#   RG_VERSION             ripgrep version (default 14.1.1)
#   REMOTES                space-separated name=URL pairs of remote tiers (e.g.
#                          "redis=redis://127.0.0.1:26379/0 s3=s3://larder-test/ci"); none: skip 5-6
#   REMOTE_PROFILES        profiles that run steps 5-6 (default "release")
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${LARDER_E2E_WORK:-/tmp/larder-e2e}"
PROFILES="${PROFILES:-debug release}"
export RG_VERSION="${RG_VERSION:-14.1.1}"

log() { echo "e2e: $*" >&2; }
die() {
    echo "e2e: FAIL: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Work directory
# ---------------------------------------------------------------------------------------------
case "$WORK" in
    "" | / | "$HOME" | "$REPO") die "refusing to use LARDER_E2E_WORK=$WORK" ;;
esac
for p in $PROFILES; do
    case "$p" in
        debug | release) ;;
        *) die "unknown profile '$p' in PROFILES (expected debug and/or release)" ;;
    esac
done
log "work dir $WORK (emptied)"
rm -rf "$WORK"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"

# Nothing from the caller's environment may reroute the ripgrep builds.
unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_RUSTC_WRAPPER \
    CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_TARGET_DIR CARGO_BUILD_BUILD_DIR \
    LARDER_DIR LARDER_REPORT LARDER_DISABLE LARDER_EXTRA_ENV LARDER_EXTRA_FILES \
    LARDER_REMOTE LARDER_REMOTE_READ_ONLY LARDER_CONFIG
export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never

# ---------------------------------------------------------------------------------------------
# larder binary
# ---------------------------------------------------------------------------------------------
if [ -n "${LARDER_BIN:-}" ]; then
    LARDER="$(cd "$(dirname "$LARDER_BIN")" && pwd)/$(basename "$LARDER_BIN")"
    [ -x "$LARDER" ] || die "LARDER_BIN=$LARDER_BIN is not an executable"
    log "using larder binary $LARDER"
else
    bin_target="${LARDER_E2E_BIN_TARGET:-${CARGO_TARGET_DIR:-$REPO/target}}"
    log "building larder: cargo build --release --locked -p larder (target dir $bin_target)"
    (cd "$REPO" && CARGO_TARGET_DIR="$bin_target" cargo build --release --locked -p larder) \
        || die "building larder failed"
    LARDER="$(cd "$bin_target" && pwd)/release/larder"
fi
unset CARGO_TARGET_DIR
"$LARDER" stats --json >/dev/null 2>&1 \
    || log "warning: '$LARDER stats --json' fails; continuing"

# ---------------------------------------------------------------------------------------------
# ripgrep sources (downloaded through cargo once; copied per build)
# ---------------------------------------------------------------------------------------------
SRC="$WORK/ripgrep-src"
"$REPO/scripts/fetch-ripgrep.sh" "$SRC"

# Copy of the pristine source at $1, without any target dir.
fresh_copy() {
    mkdir -p "$(dirname "$1")"
    cp -a "$SRC" "$1"
    rm -rf "$1/target"
}

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
ELAPSED=0
CPU=0
# run_timed LOG DIR CMD...: runs CMD in DIR, output to LOG; wall seconds into $ELAPSED, CPU
# seconds (user + sys of CMD and all its descendants, e.g. rustc) into $CPU. CPU time is less
# sensitive than wall time to other load on the machine.
run_timed() {
    local out="$1" dir="$2" rc t
    shift 2
    set +e
    t="$({ TIMEFORMAT='%3R %3U %3S'; time { (cd "$dir" && exec "$@") >"$out" 2>&1; }; } 2>&1)"
    rc=$?
    set -e
    read -r ELAPSED CPU <<<"$(awk '{ printf "%.1f %.1f", $1, $2 + $3 }' <<<"$t")"
    return "$rc"
}

build_failed() { # what, log
    echo "e2e: FAIL: $1 failed; last lines of $2:" >&2
    tail -n 40 "$2" >&2
    exit 1
}

# The `larder: ` lines (report, warnings) of a build log.
show_larder_lines() {
    grep '^larder: ' "$1" | head -n 20 | sed 's/^/    /' >&2 || true
}

# report_counts FILE [MODE]: for a LARDER_REPORT file, prints
#   (no MODE)       "invocations units hits misses not_cacheable errors probes bytes_restored
#                   saved_secs"; units are lines with a non-null `crate`, probes the others
#   --non-hits      the unit lines whose outcome is not `hit` (and unparsable lines)
#   --uncacheable   the unit lines whose outcome is neither `hit` nor `miss`
#   --remote-hits   the number of unit lines that are hits answered by a remote tier
#   --odd-probes    lines with a null `crate` whose outcome is not `not_cacheable` (the
#                   contract reserves a null crate for cargo's probes, which are not cacheable)
report_counts() {
    python3 - "$@" <<'PY'
import json, sys

path = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else ""
inv = units = hits = misses = nc = errors = probes = restored = 0
saved = 0.0
non_hits, uncacheable, odd = [], [], []
with open(path, encoding="utf-8", errors="replace") as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        inv += 1
        try:
            r = json.loads(line)
            if not isinstance(r, dict):
                raise ValueError("not an object")
        except ValueError:
            errors += 1
            units += 1
            non_hits.append("unparsable: " + line)
            uncacheable.append("unparsable: " + line)
            continue
        outcome = r.get("outcome")
        if r.get("crate") is None:
            probes += 1
            if outcome != "not_cacheable":
                odd.append(line)
            continue
        units += 1
        if outcome == "hit":
            hits += 1
        else:
            non_hits.append(line)
            if outcome == "miss":
                misses += 1
            else:
                uncacheable.append(line)
                if outcome == "not_cacheable":
                    nc += 1
                else:
                    errors += 1
        restored += int(r.get("bytes_restored") or 0)
        saved += float(r.get("saved_secs") or 0.0)
if mode == "--non-hits":
    print("\n".join(non_hits))
elif mode == "--uncacheable":
    print("\n".join(uncacheable))
elif mode == "--odd-probes":
    print("\n".join(odd))
elif mode == "--remote-hits":
    n = 0
    for line in open(path, encoding="utf-8", errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and r.get("crate") is not None and r.get("outcome") == "hit" and r.get("remote"):
            n += 1
    print(n)
else:
    print(inv, units, hits, misses, nc, errors, probes, restored, "%.1f" % saved)
PY
}

# note_odd_probes PROFILE WHAT REPORT: mentions non-probe invocations reported with a null crate.
note_odd_probes() {
    local odd
    odd="$(report_counts "$3" --odd-probes)"
    if [ -n "$odd" ]; then
        log "[$1] note: $2 report has lines with \"crate\": null that are not not_cacheable" \
            "(not counted as units; e.g. a build script's own rustc probe):"
        sed 's/^/    /' <<<"$odd" >&2
    fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
dir_bytes() { if [ -e "$1" ]; then du -sb "$1" | cut -f1; else echo 0; fi; }

# A file for rg to search: 3 matching lines out of 5.
PROBE_FILE="$WORK/rg-probe.txt"
printf 'alpha\nlarder one\nbeta\nlarder two\nthe larder three\n' >"$PROBE_FILE"

FAILURES=()
SUMMARY="$WORK/summary.tsv"
printf 'profile\tplain_cold_s\tlarder_cold_s\tcold_ratio\twarm_elsewhere_s\twarm_ratio\tcpu_s(plain/cold/warm)\twarm_hits/units\twarm_invocations\tcold_units\tstore_bytes\tplain_target_bytes\twarm_target_bytes\n' >"$SUMMARY"

# check_rg WHAT RG: the rg binary exists, counts the probe file's matches and has the right
# version; failures go to FAILURES.
check_rg() {
    local what="$1" rg="$2" out
    if [ ! -x "$rg" ]; then
        echo "e2e: FAIL: $what $rg missing after warm build" >&2
        FAILURES+=("$what rg binary missing")
        return
    fi
    out="$("$rg" -c larder "$PROBE_FILE" 2>&1)" || true
    if [ "$out" = 3 ]; then
        log "$what warm-built rg -c larder: $out (ok)"
    else
        echo "e2e: FAIL: $what '$rg -c larder $PROBE_FILE' printed '$out', expected 3" >&2
        FAILURES+=("$what warm-built rg gives wrong output")
    fi
    out="$("$rg" --version 2>&1 | head -n 1)" || true
    case "$out" in
        "ripgrep $RG_VERSION"*) log "$what warm-built rg --version: $out" ;;
        *)
            echo "e2e: FAIL: $what '$rg --version' printed '$out'" >&2
            FAILURES+=("$what warm-built rg --version wrong")
            ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# One profile
# ---------------------------------------------------------------------------------------------
run_profile() {
    local profile="$1" flags=() pdir="$WORK/$profile"
    [ "$profile" = release ] && flags=(--release)
    local a="$pdir/plain/ripgrep" b="$pdir/larder-cold/ripgrep"
    local c="$pdir/elsewhere/some/deeper/place/rg-copy"
    local store="$pdir/store"
    local cold_report="$pdir/cold-report.jsonl" warm_report="$pdir/warm-report.jsonl"
    mkdir -p "$pdir" "$store"
    fresh_copy "$a"
    fresh_copy "$b"
    fresh_copy "$c"

    # 1. plain cold
    log "[$profile] plain cold build in $a"
    run_timed "$pdir/plain.log" "$a" cargo build "${flags[@]}" --locked \
        || build_failed "[$profile] plain cargo build" "$pdir/plain.log"
    local plain_s="$ELAPSED" plain_cpu="$CPU"
    log "[$profile] plain cold: ${plain_s}s wall, ${plain_cpu}s CPU"

    # 2. larder cold, empty store
    log "[$profile] larder cold build in $b (LARDER_DIR=$store)"
    run_timed "$pdir/larder-cold.log" "$b" \
        env LARDER_DIR="$store" LARDER_REPORT="$cold_report" \
        "$LARDER" cargo build "${flags[@]}" --locked \
        || build_failed "[$profile] larder cold build" "$pdir/larder-cold.log"
    local cold_s="$ELAPSED" cold_cpu="$CPU"
    show_larder_lines "$pdir/larder-cold.log"
    [ -s "$cold_report" ] || die "[$profile] larder cold build wrote no LARDER_REPORT lines"
    local c_inv c_units c_hits c_misses c_nc c_err c_probes c_restored c_saved
    read -r c_inv c_units c_hits c_misses c_nc c_err c_probes c_restored c_saved \
        < <(report_counts "$cold_report")
    log "[$profile] larder cold: ${cold_s}s wall, ${cold_cpu}s CPU; $c_units units ($c_misses miss, $c_hits hit," \
        "$c_nc not cacheable, $c_err error), $c_probes probes"
    if [ "$c_nc" -gt 0 ] || [ "$c_err" -gt 0 ]; then
        log "[$profile] warning: cold build had units that were not cacheable or errors:"
        report_counts "$cold_report" --uncacheable | sed 's/^/    /' >&2
    fi
    note_odd_probes "$profile" cold "$cold_report"
    [ "$c_units" -gt 0 ] || die "[$profile] larder cold build reported no units (wrapper not used?)"

    # 3. larder warm, other path, same store
    log "[$profile] larder warm build elsewhere in $c (same store)"
    run_timed "$pdir/larder-warm.log" "$c" \
        env LARDER_DIR="$store" LARDER_REPORT="$warm_report" \
        "$LARDER" cargo build "${flags[@]}" --locked \
        || build_failed "[$profile] larder warm build" "$pdir/larder-warm.log"
    local warm_s="$ELAPSED" warm_cpu="$CPU"
    show_larder_lines "$pdir/larder-warm.log"
    [ -s "$warm_report" ] || die "[$profile] larder warm build wrote no LARDER_REPORT lines"
    local w_inv w_units w_hits w_misses w_nc w_err w_probes w_restored w_saved
    read -r w_inv w_units w_hits w_misses w_nc w_err w_probes w_restored w_saved \
        < <(report_counts "$warm_report")
    log "[$profile] larder warm elsewhere: ${warm_s}s wall, ${warm_cpu}s CPU; $w_hits/$w_units units hit" \
        "($w_misses miss, $w_nc not cacheable, $w_err error), $w_probes probes," \
        "$w_restored bytes restored, ${w_saved}s saved"
    note_odd_probes "$profile" warm "$warm_report"
    if [ "$w_units" -eq 0 ] || [ "$w_hits" -ne "$w_units" ]; then
        echo "e2e: FAIL: [$profile] warm build elsewhere: $w_hits/$w_units units hit; non-hit lines:" >&2
        report_counts "$warm_report" --non-hits | sed 's/^/    /' >&2
        FAILURES+=("[$profile] warm build elsewhere: $w_hits/$w_units hits")
    fi
    if [ "$w_units" -ne "$c_units" ]; then
        log "[$profile] note: cold build had $c_units units, warm build $w_units"
    fi

    # 4. the warm-built rg works
    check_rg "[$profile]" "$c/target/$profile/rg"

    LARDER_DIR="$store" "$LARDER" stats --json >"$pdir/stats.json" 2>&1 || true
    log "[$profile] larder stats --json: $(head -c 400 "$pdir/stats.json")"

    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$profile" "$plain_s" "$cold_s" "$(ratio "$cold_s" "$plain_s")" \
        "$warm_s" "$(ratio "$warm_s" "$plain_s")" "$plain_cpu/$cold_cpu/$warm_cpu" "$w_hits/$w_units" "$w_inv" "$c_units" \
        "$(dir_bytes "$store")" "$(dir_bytes "$a/target")" "$(dir_bytes "$c/target")" \
        >>"$SUMMARY"

    case " ${REMOTE_PROFILES:-release} " in
        *" $profile "*) [ -n "${REMOTES:-}" ] && run_remotes "$profile" "$plain_s" "$c_units" ;;
    esac
    return 0
}

REMOTE_SUMMARY="$WORK/remote-summary.tsv"
printf 'profile\tbackend\twarm_elsewhere_s\tratio_to_plain_cold\tcpu_s\thits/units\tfrom_remote\n' >"$REMOTE_SUMMARY"

# Steps 5 and 6 for one profile: PROFILE PLAIN_COLD_SECS COLD_UNITS.
run_remotes() {
    local profile="$1" plain_s="$2" c_units="$3" flags=() pdir="$WORK/$profile/remote"
    [ "$profile" = release ] && flags=(--release)
    local urls=() pair
    for pair in $REMOTES; do urls+=("${pair#*=}"); done
    local all
    all="$(IFS=,; echo "${urls[*]}")"

    # 5. store A pushes to every remote
    local a="$pdir/machine-a/src/ripgrep" report="$pdir/push-report.jsonl"
    fresh_copy "$a"
    log "[$profile] remote push: larder cold build in $a with ${#urls[@]} remote tiers"
    run_timed "$pdir/push.log" "$a" \
        env LARDER_DIR="$pdir/store-a" LARDER_REPORT="$report" LARDER_REMOTE="$all" \
        "$LARDER" cargo build "${flags[@]}" --locked \
        || build_failed "[$profile] remote push build" "$pdir/push.log"
    show_larder_lines "$pdir/push.log"
    log "[$profile] remote push: ${ELAPSED}s wall (uploads included), ${CPU}s CPU"
    LARDER_DIR="$pdir/store-a" "$LARDER" stats >"$pdir/push-stats.txt" 2>&1 || true
    sed -n '/^remote /,$p' "$pdir/push-stats.txt" | sed 's/^/    /' >&2

    # 6. each remote alone serves a new machine
    local name url
    for pair in $REMOTES; do
        name="${pair%%=*}"
        url="${pair#*=}"
        local b="$pdir/machine-$name/elsewhere/rg" wr="$pdir/warm-$name-report.jsonl"
        fresh_copy "$b"
        log "[$profile] remote $name: warm build in $b, empty local store, LARDER_REMOTE=$url"
        run_timed "$pdir/warm-$name.log" "$b" \
            env LARDER_DIR="$pdir/store-$name" LARDER_REPORT="$wr" LARDER_REMOTE="$url" \
            "$LARDER" cargo build "${flags[@]}" --locked \
            || build_failed "[$profile] remote $name warm build" "$pdir/warm-$name.log"
        local warm_s="$ELAPSED" warm_cpu="$CPU"
        show_larder_lines "$pdir/warm-$name.log"
        local w_inv w_units w_hits w_misses w_nc w_err w_probes w_restored w_saved from_remote
        read -r w_inv w_units w_hits w_misses w_nc w_err w_probes w_restored w_saved \
            < <(report_counts "$wr")
        from_remote="$(report_counts "$wr" --remote-hits)"
        log "[$profile] remote $name: ${warm_s}s wall, $w_hits/$w_units hits, $from_remote from the remote"
        if [ "$w_units" -eq 0 ] || [ "$w_hits" -ne "$w_units" ] || [ "$from_remote" -ne "$w_units" ]; then
            echo "e2e: FAIL: [$profile] remote $name: $w_hits/$w_units hits, $from_remote from the remote; non-hits:" >&2
            report_counts "$wr" --non-hits | sed 's/^/    /' >&2
            FAILURES+=("[$profile] remote $name: $w_hits/$w_units hits, $from_remote from the remote")
        fi
        [ "$w_units" -eq "$c_units" ] || log "[$profile] note: remote $name build had $w_units units, cold $c_units"
        check_rg "[$profile] remote $name" "$b/target/$profile/rg"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$profile" "$name" "$warm_s" \
            "$(ratio "$warm_s" "$plain_s")" "$warm_cpu" "$w_hits/$w_units" "$from_remote" >>"$REMOTE_SUMMARY"
        rm -rf "$pdir/machine-$name" # keep the disk use bounded
    done
}

T0="$(date +%s)"
for profile in $PROFILES; do
    run_profile "$profile"
done

echo
echo "== larder e2e: ripgrep $RG_VERSION ($(nproc) cores, $(rustc --version)) =="
print_table() {
    python3 - "$1" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for r in rows:
    print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
PY
}
print_table "$SUMMARY"
echo "(ratios are to the plain cold build; store = du -sb LARDER_DIR; target = du -sb of the"
echo " plain build's and the warm build's target dirs; logs and reports under $WORK)"
if [ -n "${REMOTES:-}" ]; then
    echo
    echo "== remote tiers: warm build elsewhere with an empty local store, ratio to the plain cold build =="
    print_table "$REMOTE_SUMMARY"
fi
echo "e2e total: $(($(date +%s) - T0))s"

if [ "${#FAILURES[@]}" -gt 0 ]; then
    echo "e2e: FAILED:" >&2
    printf '  %s\n' "${FAILURES[@]}" >&2
    exit 1
fi
echo "e2e: OK"
