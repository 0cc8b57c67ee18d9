#!/bin/bash
# make demo-crypto: the crypto passthrough walkthrough on the AP bus simulator.
#
#   NODEDEV_HELPER=.../nodedev-helper  AP_SIM=.../ap-sim  MDEVCTL=.../mdevctl(>= 1.3)  passthrough-demo.sh
#
# The simulator (ap-sim, a model of the s390 AP bus and vfio_ap) is mounted over FUSE on
# $R/sys: cards 02 (CEX7) and 03 (CEX8) with domains 43/44, 05 (CEX3C) with domain 43. The
# real mdevctl runs over $R through MDEVCTL_ENV_ROOT and really creates the device; the guest
# is libvirt's built-in test driver. Needs root and /dev/fuse (the FUSE mount).
set -euo pipefail
NH=${NODEDEV_HELPER:?set NODEDEV_HELPER}
AP_SIM=${AP_SIM:?set AP_SIM}
MDEVCTL=${MDEVCTL:?set MDEVCTL}
[ "$(id -u)" = 0 ] && [ -c /dev/fuse ] || { echo "demo-crypto: needs root and /dev/fuse (FUSE mount of the simulator)" >&2; exit 1; }
R=$(mktemp -d /tmp/demo-crypto.XXXXXX)
SIM_PID=
cleanup() {
  if [ -n "$SIM_PID" ]; then kill -TERM "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
  rm -rf "$R"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "nodedev-helper $*"; "$NH" --root "$R" "$@" || printf '(exit %s)\n' "$?"; }

mkdir -p "$R"/etc/mdevctl.d "$R"/usr/lib/mdevctl/scripts.d/{callouts,notifiers} "$R"/run/lock
"$AP_SIM" mount "$R" --ready-file "$R"/ready &
SIM_PID=$!
for _ in $(seq 100); do [ -e "$R"/ready ] && break; sleep 0.1; done
[ -e "$R"/ready ] || { echo "demo-crypto: the simulator did not come up" >&2; exit 1; }
echo "(AP bus simulator mounted on $R/sys; every path below is relative to --root $R)"

say "1. Inventory: cards, whether vfio_ap can take them, every APQN and its owner"
run ap list

say "2. The documentation's mask examples (chzdev syntax), active and persistent"
run ap set apmask=-2 aqmask=-43
run ap show
printf '$ cat /etc/udev/rules.d/41-ap.rules\n'; cat "$R"/etc/udev/rules.d/41-ap.rules
run ap set apmask=+2,-4-8 aqmask=+43,-0-42
run ap show
run ap set apmask=5-3
run ap set apmask=0-255 aqmask=0-255
run ap set --remove apmask --remove aqmask

say "3. Passthrough of APQN 2.43 to guest 'test' (libvirt test driver)"
U=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
run passthrough 5.43
run passthrough 2.43 --uuid $U --domain test --connect test:///default --dry-run
run passthrough 2.43 --uuid $U --mdevctl "$MDEVCTL" --domain test --connect test:///default
printf '$ cat /sys/devices/vfio_ap/matrix/%s/matrix\n' $U; cat "$R"/sys/devices/vfio_ap/matrix/$U/matrix
run ap list

say "4. A conflicting change is refused before anything is written"
run ap set apmask=+2 aqmask=+43
run ap set --active apmask=0-255 aqmask=0-255
printf '$ echo +43 > /sys/bus/ap/aqmask && echo +2 > /sys/bus/ap/apmask   (the kernel itself refuses)\n'
{ echo +43 >"$R"/sys/bus/ap/aqmask && echo +2 >"$R"/sys/bus/ap/apmask; } 2>&1 | sed 's/^/  /' || true
run ap show

say "5. Removal: stop, undefine, give the APQN back to the host"
run passthrough --remove $U --mdevctl "$MDEVCTL"
run ap show
run ap list
