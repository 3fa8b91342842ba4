#!/usr/bin/env bash
# Put the source of ripgrep (default 14.1.1) from crates.io into DEST, using only cargo.
#
#   scripts/fetch-ripgrep.sh DEST
#
# DEST ends up holding ripgrep's packaged sources (Cargo.toml, Cargo.lock, build.rs,
# crates/core/...). The crates.io package ships a Cargo.lock, so builds of DEST should use
# `--locked`. All of ripgrep's dependencies are fetched (`cargo fetch --locked`), so later
# builds of DEST need nothing beyond cargo's local cache.
#
# Idempotent: if DEST already holds ripgrep $RG_VERSION it is kept (only the dependency
# fetch is re-run, which is instant when cargo's cache is warm). If the extracted sources are
# already in cargo's registry cache, no download happens at all.
#
# Environment: RG_VERSION (default 14.1.1), CARGO (default cargo), CARGO_HOME.
set -euo pipefail

RG_VERSION="${RG_VERSION:-14.1.1}"
CARGO="${CARGO:-cargo}"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"

if [ $# -ne 1 ]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi
DEST="$1"

log() { echo "fetch-ripgrep: $*" >&2; }

# Is $1 a directory holding the ripgrep $RG_VERSION package?
is_ripgrep_src() {
    [ -f "$1/Cargo.toml" ] && [ -f "$1/Cargo.lock" ] \
        && grep -qx 'name = "ripgrep"' "$1/Cargo.toml" \
        && grep -qx "version = \"$RG_VERSION\"" "$1/Cargo.toml"
}

# Prints the extracted package directory in cargo's registry cache, if there is one.
find_registry_src() {
    local d
    for d in "$CARGO_HOME"/registry/src/*/"ripgrep-$RG_VERSION"; do
        # `.cargo-ok` is written by cargo once extraction has completed.
        if [ -f "$d/.cargo-ok" ] && is_ripgrep_src "$d"; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

if is_ripgrep_src "$DEST"; then
    log "$DEST already holds ripgrep $RG_VERSION"
else
    if [ -e "$DEST" ] && [ -n "$(ls -A "$DEST" 2>/dev/null)" ]; then
        echo "fetch-ripgrep: $DEST exists, is not empty and is not ripgrep $RG_VERSION" >&2
        exit 1
    fi
    if ! src="$(find_registry_src)"; then
        # Let cargo download (and extract) the package: a throwaway project depending on it.
        # ripgrep has no library target; cargo still resolves and fetches it.
        tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch-ripgrep.XXXXXX")"
        trap 'rm -rf "$tmp"' EXIT
        mkdir -p "$tmp/src"
        cat >"$tmp/Cargo.toml" <<EOF
[package]
name = "larder-fetch-ripgrep"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
ripgrep = "=$RG_VERSION"

[workspace]
EOF
        echo 'fn main() {}' >"$tmp/src/main.rs"
        log "downloading ripgrep $RG_VERSION through cargo"
        (cd "$tmp" && "$CARGO" fetch --quiet)
        src="$(find_registry_src)" || {
            echo "fetch-ripgrep: cargo fetched, but ripgrep-$RG_VERSION is not under" \
                "$CARGO_HOME/registry/src" >&2
            exit 1
        }
    fi
    log "copying $src -> $DEST"
    mkdir -p "$DEST"
    cp -a "$src/." "$DEST/"
    rm -f "$DEST/.cargo-ok"
    # Registry sources may be read-only in some setups; builds write nothing into the
    # source tree, but make it writable so that callers can add files and clean it up.
    chmod -R u+w "$DEST"
fi

# Dependencies exactly as pinned by ripgrep's own Cargo.lock.
(cd "$DEST" && "$CARGO" fetch --locked --quiet)
log "ready: $DEST (ripgrep $RG_VERSION, dependencies fetched)"
