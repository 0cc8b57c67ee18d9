#!/bin/bash
# sysroot.sh DIR -- an s390x Debian 12 sysroot with the C libraries the workspace links
# (libvirt, libudev, libfuse3), for cross-linking and for running the tests under qemu-user.
#
# The s390x -dev packages are not co-installable with the amd64 ones on the host (the s390x
# archive lags the amd64 security updates, so shared libraries clash), so we take Debian's
# own packages into a directory instead: debootstrap's first stage resolves and downloads
# the dependency closure, and unpacking every .deb with dpkg-deb -x is all a linker and
# qemu-user need (no maintainer scripts, no second stage, no emulation).
# Idempotent: a finished DIR carries DIR/.vhk-sysroot-ok listing the packages.
set -euo pipefail
dir=${1:?usage: sysroot.sh DIR}
pkgs=${S390X_SYSROOT_PACKAGES:-libvirt-dev,libudev-dev,libfuse3-dev}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -f "$dir/.vhk-sysroot-ok" ] && [ "$(cat "$dir/.vhk-sysroot-ok")" = "$pkgs" ]; then
  echo "sysroot.sh: $dir is ready ($pkgs)"; exit 0
fi
rm -rf "$dir.tmp"
start=$(date +%s)
debootstrap --arch=s390x --foreign --variant=minbase --include="$pkgs" bookworm "$dir.tmp" "$mirror" \
  >"$dir.log" 2>&1 || { tail -n 20 "$dir.log" >&2; echo "sysroot.sh: debootstrap failed, log: $dir.log" >&2; exit 1; }
n=0
for deb in "$dir.tmp"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$dir.tmp"; n=$((n + 1)); done
# pkg-config files of Debian carry absolute /usr paths; PKG_CONFIG_SYSROOT_DIR prefixes them.
# Absolute symlinks (libfoo.so -> /lib/...) would point into the host: make them relative.
find "$dir.tmp/usr/lib/s390x-linux-gnu" -maxdepth 1 -type l -lname '/*' | while read -r l; do
  ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$dir.tmp$(readlink "$l")")" "$l"
done
rm -rf "$dir"; mv "$dir.tmp" "$dir"
echo "$pkgs" > "$dir/.vhk-sysroot-ok"
echo "sysroot.sh: $dir: $n packages unpacked in $(( $(date +%s) - start )) s"
