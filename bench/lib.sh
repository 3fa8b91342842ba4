# Shared by the ripgrep benches (bench/trust.sh, bench/slow-remote.sh): sourced, not run.
#
#   bench_setup DEFAULT_WORK   WORK (from BENCH_WORK, else DEFAULT_WORK) emptied; LARDER
#                              (LARDER_BIN, else a release build); SRC, ripgrep's sources;
#                              RESULTS, an empty results file; larder's and cargo's
#                              variables of the caller's environment unset
#   fresh DIR                  a copy of SRC at DIR, without target/
#   timed LABEL DIR CMD...     runs CMD in DIR (its output in WORK/LABEL.log) and appends
#                              "LABEL<TAB>wall<TAB>cpu" (seconds) to RESULTS
#   medians LABEL...           a table of the medians of RESULTS, ratios to the first LABEL
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RG_VERSION="${RG_VERSION:-14.1.1}"

bench_setup() {
    WORK="${BENCH_WORK:-$1}"
    case "$WORK" in "" | / | "$HOME" | "$REPO") echo "refusing BENCH_WORK=$WORK" >&2; exit 2 ;; esac
    rm -rf "$WORK"
    mkdir -p "$WORK"
    LARDER="${LARDER_BIN:-}"
    if [ -z "$LARDER" ]; then
        (cd "$REPO" && cargo build --release --locked -p larder >&2)
        LARDER="$REPO/target/release/larder"
    fi
    SRC="$WORK/ripgrep-src"
    "$REPO/scripts/fetch-ripgrep.sh" "$SRC" >&2
    unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER LARDER_DIR LARDER_REMOTE LARDER_REMOTE_READ_ONLY \
        LARDER_SIGNING_KEY LARDER_TRUSTED_KEYS LARDER_REQUIRE_SIGNATURES LARDER_VERIFY \
        LARDER_CONFIG LARDER_REMOTE_WRITE
    export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never
    RESULTS="$WORK/results.tsv"
    : >"$RESULTS"
}

fresh() { rm -rf "$1" && mkdir -p "$(dirname "$1")" && cp -a "$SRC" "$1" && rm -rf "$1/target"; }

timed() {
    local label="$1" dir="$2" log
    shift 2
    log="$WORK/$label.log"
    (cd "$dir" && /usr/bin/time -f "%e %U %S" "$@") >"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
    tail -n 1 "$log" | awk -v l="$label" '{ printf "%s\t%s\t%.2f\n", l, $1, $2 + $3 }' | tee -a "$RESULTS" >&2
}

medians() {
    python3 - "$RESULTS" "$@" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, cpu = line.split("\t")
    rows.setdefault(label, []).append((float(wall), float(cpu)))
labels = sys.argv[2:]
ref = statistics.median(w for w, _ in rows[labels[0]])
print(f"{'build':<12} {'wall s':>8} {'CPU s':>8} {'x ' + labels[0]:>10}")
for label in labels:
    w = statistics.median(x for x, _ in rows[label])
    c = statistics.median(y for _, y in rows[label])
    print(f"{label:<12} {w:>8.2f} {c:>8.2f} {w / ref:>10.3f}")
PY
}
