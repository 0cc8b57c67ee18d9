#!/bin/bash
# userns-binfmt.sh CMD... -- run CMD where s390x ELF files execute through qemu-s390x-static.
#
# Test suites exec their own binaries (CARGO_BIN_EXE_*, helpers, callouts); under plain
# qemu-user such an exec reaches the host kernel, which answers ENOEXEC. Since Linux 6.7 a
# user namespace can mount its own binfmt_misc instance, so we register qemu-s390x-static there
# (flag F: the interpreter is opened now, so it keeps working in mount namespaces the tests
# create) and never touch the host's binfmt_misc. The namespace maps uid 0 to the caller, so
# root-only tests keep their (namespaced) capabilities.
#
# VHK_USERNS_IDS=all (root only): map uids and gids 0-65535 to themselves instead of only 0,
# and add a pid namespace (so the command may mount a proc of its own). A Debian root needs
# this: dpkg's maintainer scripts chown to system groups (base-files: /var/mail to mail), apt
# drops to _apt, and mounting proc in a chroot needs a pid namespace the user namespace owns.
# The host writes the maps (it has CAP_SETUID/CAP_SETGID; unshare --map-users would want
# newuidmap and /etc/subuid entries).
#
# Without the outer re-exec ($VHK_IN_USERNS set) it enters the namespace and calls itself.
set -euo pipefail
QEMU=${QEMU_S390X:-/usr/bin/qemu-s390x-static}
if [ -z "${VHK_IN_USERNS:-}" ]; then
  [ -x "$QEMU" ] || { echo "userns-binfmt.sh: $QEMU missing (scripts/deps.sh s390x)" >&2; exit 1; }
  export VHK_IN_USERNS=1
  if [ "${VHK_USERNS_IDS:-root}" = all ]; then
    [ "$(id -u)" = 0 ] || { echo "userns-binfmt.sh: VHK_USERNS_IDS=all needs root" >&2; exit 1; }
    # the child waits until its namespace has maps, then runs us again inside
    unshare --user --pid --fork --kill-child --mount --propagation private -- \
      sh -c 'until [ -n "$(cat /proc/self/uid_map)" ]; do sleep 0.02; done; exec "$0" "$@"' "$0" "$@" <&0 &
    child=$!
    me=$(readlink /proc/self/ns/user)
    for _ in $(seq 250); do
      [ "$(readlink "/proc/$child/ns/user" 2>/dev/null || echo "$me")" != "$me" ] && break; sleep 0.02
    done
    echo '0 0 65536' > "/proc/$child/uid_map" && echo '0 0 65536' > "/proc/$child/gid_map" \
      || { echo "userns-binfmt.sh: cannot write the uid/gid maps of $child" >&2; kill "$child"; exit 1; }
    rc=0; wait "$child" || rc=$?
    exit $rc
  fi
  exec unshare --user --map-root-user --mount --propagation private -- "$0" "$@"
fi
if ! mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/tmp/vhk-binfmt.err; then
  echo "userns-binfmt.sh: cannot mount a namespaced binfmt_misc (needs Linux >= 6.7 and user namespaces): $(cat /tmp/vhk-binfmt.err)" >&2
  exit 1
fi
# ELF64, big-endian, e_machine 22 (EM_S390): the magic/mask qemu's own qemu-binfmt-conf.sh uses.
magic='\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16'
mask='\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff'
printf ':qemu-s390x:M::%s:%s:%s:F' "$magic" "$mask" "$QEMU" > /proc/sys/fs/binfmt_misc/register
exec "$@"
