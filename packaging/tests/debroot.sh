#!/bin/bash
# debroot.sh ARCH DIR -- a pristine minimal Debian 12 root (debootstrap minbase + man-db), cached:
# a finished DIR carries DIR/.vhk-debroot-ok. For a foreign ARCH (s390x) the second stage runs
# under qemu-user through packaging/s390x/userns-binfmt.sh, in a user namespace mapping all
# system ids (dpkg chowns to them); `container=lxc` tells debootstrap not to test mknod there
# (a user namespace may not create device nodes; the first stage, run as real root, made them).
set -euo pipefail
arch=$1 dir=$2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ -f "$dir/.vhk-debroot-ok" ] && { echo "debroot.sh: $dir is ready"; exit 0; }
rm -rf "$dir.tmp"; start=$(date +%s)
if [ "$arch" = "$(dpkg --print-architecture)" ]; then
  debootstrap --arch="$arch" --variant=minbase --include=man-db bookworm "$dir.tmp" "$mirror" >"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; echo "debroot.sh: debootstrap failed, log: $dir.log" >&2; exit 1; }
else
  debootstrap --arch="$arch" --foreign --variant=minbase --include=man-db bookworm "$dir.tmp" "$mirror" >"$dir.log" 2>&1 \
    && VHK_USERNS_IDS=all "$(dirname "$0")/../s390x/userns-binfmt.sh" \
      env container=lxc chroot "$dir.tmp" /debootstrap/debootstrap --second-stage >>"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; echo "debroot.sh: debootstrap ($arch) failed, log: $dir.log" >&2; exit 1; }
fi
rm -rf "$dir"; mv "$dir.tmp" "$dir"; touch "$dir/.vhk-debroot-ok"
echo "debroot.sh: $arch root $dir in $(( $(date +%s) - start )) s"
