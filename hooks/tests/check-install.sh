#!/bin/bash
# check-install.sh DESTDIR SBINDIR QEMU_HOOKS_DIR MDEVCTL_LIB_CALLOUTS MDEVCTL_ETC_CALLOUTS UDEV_RULES LXC_HOOKS_DIR
# What `make install-hooks` put into DESTDIR: every file where its consumer looks, executable,
# valid shell, @SBINDIR@ filled in; the qemu hook wrapper passes its argv on unchanged; the
# mdevctl callouts are links to SBINDIR/nodedev-helper-callout (relative within /usr, absolute
# from /etc), so mdevctl execs the callout with no shell in between.
set -euo pipefail
d=$1 sbindir=$2
fail() { echo "check-hooks-install: FAIL: $*" >&2; exit 1; }
qemu=$d$3/50-nodedev-helper lib=$d$4/00-nodedev-helper etc=$d$5/00-nodedev-helper rule=$d$6/60-mdevctl.rules
for f in "$qemu"; do
  [ -f "$f" ] && [ -x "$f" ] || fail "$f missing or not executable"
  sh -n "$f" || fail "$f: shell syntax"
  ! grep -q '@[A-Z]*@' "$f" || fail "$f: unsubstituted @VAR@"
  grep -q "$sbindir/nodedev-helper" "$f" || fail "$f does not call $sbindir/nodedev-helper"
done
[ -f "$rule" ] && [ "$(stat -c %a "$rule")" = 644 ] || fail "$rule missing or not 0644"
for f in "$lib" "$etc"; do
  [ -L "$f" ] || fail "$f is not a symbolic link"
done
# the /usr/lib link is relative (it resolves inside DESTDIR), the /etc one absolute
[ "$(realpath -m "$lib")" = "$(realpath -m "$d$sbindir/nodedev-helper-callout")" ] ||
  fail "$lib -> $(readlink "$lib"), not $sbindir/nodedev-helper-callout"
case "$(readlink "$lib")" in /*) fail "$lib -> $(readlink "$lib") is absolute";; esac
[ "$(readlink "$etc")" = "$sbindir/nodedev-helper-callout" ] ||
  fail "$etc -> $(readlink "$etc"), not $sbindir/nodedev-helper-callout"

# run the qemu hook wrapper against a stand-in nodedev-helper that prints its argv
t=$(mktemp -d /tmp/check-hooks-run.XXXXXX); trap 'rm -rf "$t"' EXIT
printf '#!/bin/sh\ncat >/dev/null; printf "%%s|" "$@"\n' > "$t/nodedev-helper"; chmod 755 "$t/nodedev-helper"
sed "s|$sbindir/nodedev-helper|$t/nodedev-helper|g" "$qemu" > "$t/qemu.d"; chmod 755 "$t/qemu.d"
got=$(echo '<domain/>' | env -i LC_ALL=C PATH=/usr/bin:/bin "$t/qemu.d" 'my guest' prepare begin -)
[ "$got" = "libvirt-hook|qemu|my guest|prepare|begin|-|" ] || fail "qemu.d wrapper passed '$got'"
# the nss-libvirt-guest hooks (qemu.d and lxc.d): in place, argv passed on after the object,
# and exit 0 (stdin read) when nss-libvirt-guest is not installed
printf '#!/bin/sh\ncat >/dev/null; printf "%%s|" "$@"\n' > "$t/nss-libvirt-guest"; chmod 755 "$t/nss-libvirt-guest"
for obj in qemu lxc; do
  dir=$3; [ $obj = lxc ] && dir=$7
  f=$d$dir/60-nss-libvirt-guest
  [ -f "$f" ] && [ -x "$f" ] || fail "$f missing or not executable"
  sh -n "$f" || fail "$f: shell syntax"
  ! grep -q '@[A-Z]*@' "$f" || fail "$f: unsubstituted @VAR@"
  sed "s|$sbindir/nss-libvirt-guest|$t/nss-libvirt-guest|g" "$f" > "$t/nss-$obj"
  got=$(echo '<domain/>' | sh "$t/nss-$obj" 'my guest' started begin -)
  [ "$got" = "hook|$obj|my guest|started|begin|-|" ] || fail "$f passed '$got'"
  rc=0; sed "s|$sbindir/nss-libvirt-guest|$t/gone/nss-libvirt-guest|g" "$f" > "$t/gone-$obj"
  head -c 200000 /dev/zero | sh "$t/gone-$obj" x started begin - || rc=$?
  [ $rc = 0 ] || fail "$f without nss-libvirt-guest exited $rc, not 0"
done

echo "check-hooks-install: 6 files in place ($3, $7, $4, $5, $6), wrappers pass argv unchanged, the mdevctl callouts link to $sbindir/nodedev-helper-callout, nss hooks exit 0 without theirs"
