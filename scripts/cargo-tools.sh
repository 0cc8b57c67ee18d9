#!/bin/bash
# cargo-tools.sh [--check] NAME[@VERSION]... -- install cargo tools from crates.io, idempotently.
#   cargo-fuzz        (fuzz targets; built with the stable toolchain + RUSTC_BOOTSTRAP=1)
# (mdevctl 1.4.0 is not one of these: `make mdevctl-1.4` builds it into the target dir.)
# --check: installs nothing; names a missing tool and the command that installs it, exits 1.
set -euo pipefail
check_only=0
[ "${1:-}" = --check ] && { check_only=1; shift; }
[ $# -gt 0 ] || exit 0
for spec in "$@"; do
  name=${spec%@*}; ver=; [ "$name" != "$spec" ] && ver=${spec#*@}
  bin=$name
  if [ -n "$ver" ]; then
    have=$(cargo install --list | awk -v n="$name" '$1 == n { gsub(/[v:]/, "", $2); print $2 }')
    [ "$have" = "$ver" ] && { echo "cargo-tools.sh: $name $ver installed"; continue; }
  elif command -v "$bin" >/dev/null 2>&1 || cargo install --list | grep -q "^$name "; then
    echo "cargo-tools.sh: $name installed"; continue
  fi
  if [ $check_only = 1 ]; then
    echo "cargo-tools.sh: $name ${ver:+$ver }is not installed: run $0 $spec (or make tools)" >&2
    exit 1
  fi
  echo "cargo-tools.sh: cargo install $name ${ver:+--version $ver}"
  RST2MAN=/bin/true cargo install --locked --quiet "$name" ${ver:+--version "$ver"}
done
