#!/bin/bash
# cargo-tools.sh NAME[@VERSION]... -- install cargo tools from crates.io, idempotently.
#   cargo-fuzz        (fuzz targets; built with the stable toolchain + RUSTC_BOOTSTRAP=1)
#   mdevctl@1.4.0     (the real mdevctl >= 1.3 for callout tests; RST2MAN=/bin/true)
set -euo pipefail
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
  echo "cargo-tools.sh: cargo install $name ${ver:+--version $ver}"
  RST2MAN=/bin/true cargo install --locked --quiet "$name" ${ver:+--version "$ver"}
done
