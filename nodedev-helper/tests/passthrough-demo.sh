#!/bin/bash
# make demo-crypto: the crypto passthrough walkthrough (issue 5) on a host tree in a temp dir.
#
#   NODEDEV_HELPER=path/to/nodedev-helper  MDEVCTL=path/to/mdevctl(>= 1.3)  passthrough-demo.sh
#
# The host tree is plain files laid out like sysfs (cards 02 = CEX7 with domains 43/44, 05 =
# CEX3C), the real mdevctl runs over it through MDEVCTL_ENV_ROOT, the guest is libvirt's
# built-in test driver. Plain files cannot create a device when mdevctl writes `create`, so
# the full start is shown as a dry run and the real run shows the rollback; over the AP bus
# simulator's FUSE mount the same commands start the device.
set -euo pipefail
NH=${NODEDEV_HELPER:?set NODEDEV_HELPER}
MDEVCTL=${MDEVCTL:?set MDEVCTL}
R=$(mktemp -d /tmp/demo-crypto.XXXXXX)
trap 'rm -rf "$R"' EXIT
FULL=0x$(printf 'f%.0s' {1..64})

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "nodedev-helper $*"; "$NH" --root "$R" "$@" || printf '(exit %s)\n' "$?"; }

mkdir -p "$R"/sys/bus/ap/devices "$R"/sys/devices/vfio_ap/matrix "$R"/run/lock "$R"/etc/mdevctl.d \
  "$R"/usr/lib/mdevctl/scripts.d/{callouts,notifiers} "$R"/sys/bus/mdev/devices "$R"/sys/class/mdev_bus
echo "$FULL" >"$R"/sys/bus/ap/apmask
echo "$FULL" >"$R"/sys/bus/ap/aqmask
echo "4/4 (complete)" >"$R"/sys/bus/ap/bindings
for c in 02:13 05:9; do
  mkdir -p "$R/sys/bus/ap/devices/card${c%:*}"; echo "${c#*:}" >"$R/sys/bus/ap/devices/card${c%:*}/hwtype"
  for d in 002b 002c; do mkdir -p "$R/sys/bus/ap/devices/${c%:*}.$d"; echo 1 >"$R/sys/bus/ap/devices/${c%:*}.$d/online"; done
done
T="$R"/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough
mkdir -p "$T"; echo 65535 >"$T"/available_instances; echo vfio-ap >"$T"/device_api; : >"$T"/create
echo "VFIO AP Passthrough Device" >"$T"/name
ln -s ../../devices/vfio_ap/matrix "$R"/sys/class/mdev_bus/matrix

say "1. Inventory: cards, whether vfio_ap can take them, every APQN and its owner"
run ap list

say "2. The seed's mask examples (chzdev syntax), active and persistent"
run ap set apmask=-2 aqmask=-43
run ap show
printf '$ cat /etc/udev/rules.d/41-ap.rules\n'; cat "$R"/etc/udev/rules.d/41-ap.rules
run ap set apmask=+2,-4-8 aqmask=+43,-0-42
run ap show
run ap set apmask=5-3

say "3. A conflicting change is refused before anything is written"
run ap set apmask=0-255 aqmask=0-255
U=6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10
echo "(an auto-start mdev $U holding APQN 2.43 is active)"
mkdir -p "$R/sys/devices/vfio_ap/matrix/$U" "$R/etc/mdevctl.d/matrix"
echo "02.002b" >"$R/sys/devices/vfio_ap/matrix/$U/matrix"
echo '{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[{"assign_adapter":"2"},{"assign_domain":"43"}]}' \
  >"$R/etc/mdevctl.d/matrix/$U"
run ap set apmask=-2
run ap set apmask=+2
run ap set --active apmask=+2
run ap set --dry-run apmask=+3,-7
rm -rf "$R/sys/devices/vfio_ap/matrix/$U" "$R/etc/mdevctl.d/matrix/$U"
run ap set apmask=0-255 aqmask=0-255
run ap set --remove apmask --remove aqmask

say "4. Passthrough of APQN 2.44 to guest 'test' (libvirt test driver)"
run passthrough 2.44 --domain test --connect test:///default --dry-run
run passthrough 5.43
echo "(the real run, with the real mdevctl: on plain files nothing creates the device when"
echo " mdevctl writes 'create', so start fails — and every step done is undone)"
run passthrough 2.44 --uuid 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d --mdevctl "$MDEVCTL"
run ap show

say "5. Removal of a defined (not started) passthrough device"
printf '$ mdevctl define ... (2.44, manual)\n'
echo '{"mdev_type":"vfio_ap-passthrough","start":"manual","attrs":[{"assign_adapter":"2"},{"assign_domain":"44"}]}' |
  MDEVCTL_ENV_ROOT="$R" "$MDEVCTL" define -u 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d -p matrix --jsonfile /dev/stdin
"$NH" --root "$R" ap set apmask=-2 aqmask=-44 >/dev/null
run ap list
run passthrough --remove 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d --mdevctl "$MDEVCTL"
run ap show
