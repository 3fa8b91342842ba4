#!/usr/bin/env bash
# Put the source of hk (default 2.11.0, a git hook manager: about 400 units per profile,
# aws-lc-sys's C code among them; needs rustc 1.94) from crates.io into DEST, using only cargo
# (scripts/fetch-crate.sh). hk ships a Cargo.lock: build DEST with `--locked`.
#
#   scripts/fetch-hk.sh DEST
#
# Environment: HK_VERSION (default 2.11.0), CARGO, CARGO_HOME.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi
exec "$(dirname "${BASH_SOURCE[0]}")/fetch-crate.sh" hk "${HK_VERSION:-2.11.0}" "$1"
