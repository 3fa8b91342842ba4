#!/usr/bin/env bash
# Put the source of ripgrep (default 14.1.1) from crates.io into DEST, using only cargo
# (scripts/fetch-crate.sh). ripgrep ships a Cargo.lock: build DEST with `--locked`.
#
#   scripts/fetch-ripgrep.sh DEST
#
# Environment: RG_VERSION (default 14.1.1), CARGO, CARGO_HOME.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi
exec "$(dirname "${BASH_SOURCE[0]}")/fetch-crate.sh" ripgrep "${RG_VERSION:-14.1.1}" "$1"
