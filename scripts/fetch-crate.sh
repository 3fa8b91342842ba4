#!/usr/bin/env bash
# Put the source of a crates.io package into DEST, using only cargo.
#
#   scripts/fetch-crate.sh NAME VERSION DEST
#
# DEST ends up holding the package's sources as published (Cargo.toml, Cargo.lock if it
# ships one, build.rs, src/...). Builds of a package that ships a Cargo.lock should use
# `--locked`. All of its dependencies are fetched (`cargo fetch --locked` with a shipped
# lock file), so later builds of DEST need nothing beyond cargo's local cache.
#
# Idempotent: if DEST already holds NAME VERSION it is kept (only the dependency fetch is
# re-run, which is instant when cargo's cache is warm). If the extracted sources are already
# in cargo's registry cache, no download happens at all.
#
# Environment: CARGO (default cargo), CARGO_HOME.
set -euo pipefail

CARGO="${CARGO:-cargo}"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"

if [ $# -ne 3 ]; then
    echo "usage: $0 NAME VERSION DEST" >&2
    exit 2
fi
NAME="$1"
VERSION="$2"
DEST="$3"

log() { echo "fetch-crate: $*" >&2; }

# Is $1 a directory holding the package NAME VERSION?
is_package_src() {
    [ -f "$1/Cargo.toml" ] \
        && grep -qx "name = \"$NAME\"" "$1/Cargo.toml" \
        && grep -qx "version = \"$VERSION\"" "$1/Cargo.toml"
}

# Prints the extracted package directory in cargo's registry cache, if there is one.
find_registry_src() {
    local d
    for d in "$CARGO_HOME"/registry/src/*/"$NAME-$VERSION"; do
        # `.cargo-ok` is written by cargo once extraction has completed.
        if [ -f "$d/.cargo-ok" ] && is_package_src "$d"; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

if is_package_src "$DEST"; then
    log "$DEST already holds $NAME $VERSION"
else
    if [ -e "$DEST" ] && [ -n "$(ls -A "$DEST" 2>/dev/null)" ]; then
        echo "fetch-crate: $DEST exists, is not empty and is not $NAME $VERSION" >&2
        exit 1
    fi
    if ! src="$(find_registry_src)"; then
        # Let cargo download (and extract) the package: a throwaway project depending on it
        # (a package without a library target is still resolved and fetched).
        tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch-crate.XXXXXX")"
        trap 'rm -rf "$tmp"' EXIT
        mkdir -p "$tmp/src"
        cat >"$tmp/Cargo.toml" <<EOF
[package]
name = "larder-fetch-crate"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$NAME = "=$VERSION"

[workspace]
EOF
        echo 'fn main() {}' >"$tmp/src/main.rs"
        log "downloading $NAME $VERSION through cargo"
        (cd "$tmp" && "$CARGO" fetch --quiet)
        src="$(find_registry_src)" || {
            echo "fetch-crate: cargo fetched, but $NAME-$VERSION is not under" \
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

# Dependencies exactly as pinned by the package's own Cargo.lock, if it ships one.
if [ -f "$DEST/Cargo.lock" ]; then
    (cd "$DEST" && "$CARGO" fetch --locked --quiet)
else
    (cd "$DEST" && "$CARGO" fetch --quiet)
fi
log "ready: $DEST ($NAME $VERSION, dependencies fetched)"
