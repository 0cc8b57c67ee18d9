#!/bin/bash
# e2e-libvirt-hook.sh NODEDEV_HELPER -- the qemu hook under a real, namespaced libvirtd.
#
# tests/e2e/rig.sh (RIG_NAME=hk<pid>, no domain of its own, no sshd) starts libvirtd with our
# installed wrapper (hooks/libvirt/50-nodedev-helper, binary path filled in, plus --root for a
# fake host tree) in the rig's /etc/libvirt/hooks/qemu.d/. Guests are s390x TCG domains
# (qemu-system-s390x from qemu-system-misc: only the s390x QEMU has the vfio-ap device, so only
# there does libvirt accept a vfio-ap hostdev at define time). Observed with libvirt 9.0:
#   - a guest without crypto: libvirt runs the hook for prepare/start/started/stopped/release;
#     `virsh start` succeeds (the diskless guest then stops by itself: no boot device);
#   - a guest whose vfio-ap mdev is unknown: libvirt runs "prepare begin" BEFORE its own host
#     checks (without our hook it fails later with "Mediated host device assignment requires
#     VFIO support" on a host without vfio), so `virsh start` fails with our message.
# The hook's syslog lines go to <fake root>/dev/log, where this script listens.
set -euo pipefail
bin=$(readlink -f "$1")
repo=$(cd "$(dirname "$0")/../.." && pwd)
rig=$repo/tests/e2e/rig.sh
fail() { echo "check-hooks-e2e: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (tests/e2e/rig.sh)"
[ -x "$bin" ] || fail "$1 is not built (make release)"
command -v qemu-system-s390x >/dev/null || fail "qemu-system-s390x missing (scripts/deps.sh hooks)"
[ -x "$rig" ] || fail "$rig missing"

# one rig name per run: two `make check` on one machine never share or tear down each other's rig
export RIG_NAME=${HOOKS_RIG_NAME:-hk$$} RIG_DOMAIN_MODE=none RIG_SSH=0 RIG_IPV6=0 RIG_CHECK=0 RIG_NSS=debian
work=$(mktemp -d /tmp/vhk-hooks-e2e.XXXXXX)
export RIG_DIR=$work/rig                        # its lock file ($RIG_DIR.lock) goes with $work
listener=
cleanup() {
  "$rig" down >/dev/null 2>&1 || echo "check-hooks-e2e: WARNING: rig.sh down failed" >&2
  [ -z "$listener" ] || kill "$listener" 2>/dev/null || true
  # never rm -rf across a mount the rig may have left behind
  if grep -q " $work[/ ]" /proc/self/mountinfo; then echo "check-hooks-e2e: WARNING: mounts remain under $work; kept" >&2
  else rm -rf "$work"; fi
}
trap cleanup EXIT
t0=$(date +%s)

# fake host: vfio_ap loaded, no mdev defined or active; syslog socket
root=$work/root
mkdir -p "$root/sys/devices/vfio_ap/matrix" "$root/sys/bus/ap" "$root/etc/mdevctl.d/matrix" "$root/dev"
printf '0x%064x\n' 0 > "$root/sys/bus/ap/apmask"; cp "$root/sys/bus/ap/apmask" "$root/sys/bus/ap/aqmask"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
out = open(sys.argv[2], "a", buffering=1)
print("ready", flush=True)
while True: out.write(s.recv(8192).decode(errors="replace") + "\n")
' "$root/dev/log" "$work/syslog" > "$work/listener.out" &
listener=$!
for _ in $(seq 50); do [ -s "$work/listener.out" ] && break; sleep 0.1; done
[ -S "$root/dev/log" ] || fail "syslog listener did not start"

# mdevctl stand-in (a real mdevctl cannot create a device on plain files): start makes the
# fake mdev active, stop removes it; every call is logged
cat > "$work/mdevctl" <<MDEVCTL
#!/bin/sh
echo "\$*" >> '$work/mdevctl.log'
m='$root/sys/devices/vfio_ap/matrix'
case "\$1" in
start) mkdir "\$m/\$3" && echo 02.002b > "\$m/\$3/matrix" ;;
stop) rm -r "\$m/\$3" ;;
esac
MDEVCTL
chmod 755 "$work/mdevctl"
sed -e "s|@SBINDIR@/nodedev-helper|'$bin' --root '$root'|" -e "s|\"\\\$@\"\$|\"\$@\" --mdevctl '$work/mdevctl'|" \
  "$repo/hooks/libvirt/50-nodedev-helper" > "$work/50-nodedev-helper"
grep -q -- "libvirt-hook qemu \"\$@\" --mdevctl '$work/mdevctl'\$" "$work/50-nodedev-helper" \
  || fail "could not point the wrapper at the mdevctl stand-in: $(tail -n1 "$work/50-nodedev-helper")"
chmod 755 "$work/50-nodedev-helper"
RIG_QEMU_HOOKS=$work/50-nodedev-helper "$rig" up >/dev/null 2>"$work/rig-up.log" || { cat "$work/rig-up.log" >&2; fail "rig.sh up"; }
eval "$("$rig" env | grep '^RIG_DIR=')"
[ -x "$RIG_DIR/etc/hooks/qemu.d/50-nodedev-helper" ] || fail "the hook is not in the rig's /etc/libvirt/hooks/qemu.d"
V() { virsh -q -c "qemu:///system?socket=$RIG_DIR/run/libvirt-sock" "$@"; }

domain() {  # domain NAME DEVICES
  cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>
  <devices>
    <emulator>$(command -v qemu-system-s390x)</emulator>
    <memballoon model='none'/>
    $2
  </devices>
</domain>
XML
}
uuid=6dfd3ec5-e8b3-4e18-a6fe-57bc9eceb920
domain hkplain "" > "$work/plain.xml"
domain hkcrypto "<hostdev mode='subsystem' type='mdev' model='vfio-ap'><source><address uuid='$uuid'/></source></hostdev>" > "$work/crypto.xml"

# 1. no crypto: starts, and the hook ran for it (its prepare log line)
V define "$work/plain.xml" >/dev/null || fail "define hkplain"
V start hkplain >"$work/plain.out" 2>&1 || { cat "$work/plain.out" >&2; fail "a guest without crypto did not start"; }
for _ in $(seq 50); do grep -q "guest 'hkplain': prepare begin: no vfio-ap hostdev" "$work/syslog" 2>/dev/null && break; sleep 0.1; done
grep -q "guest 'hkplain': prepare begin: no vfio-ap hostdev" "$work/syslog" \
  || fail "no log line of the hook for hkplain; syslog: $(cat "$work/syslog" 2>/dev/null)"
echo "check-hooks-e2e: guest without crypto: virsh start OK, hook ran: $(grep -m1 hkplain "$work/syslog")"
V destroy hkplain >/dev/null 2>&1 || true

# 2. vfio-ap hostdev with an unknown mdev: virsh start fails with our message
if V define "$work/crypto.xml" >"$work/define.out" 2>&1; then
  if V start hkcrypto >"$work/crypto.out" 2>&1; then fail "hkcrypto started although its mdev $uuid is unknown"; fi
  grep -q "guest 'hkcrypto' needs vfio-ap mdev $uuid, which is unknown" "$work/crypto.out" \
    || { cat "$work/crypto.out" >&2; fail "virsh start error does not carry the hook's message"; }
  echo "check-hooks-e2e: guest with unknown vfio-ap mdev: virsh start refused:"
  sed 's/^/    /' "$work/crypto.out" | cut -c1-400
  grep -q "<27>nodedev-helper-hook\[[0-9]*\]: guest 'hkcrypto' needs vfio-ap mdev $uuid" "$work/syslog" \
    || fail "the refusal is not in syslog"
else
  cat "$work/define.out" >&2; fail "libvirt refused to define an s390x guest with a vfio-ap hostdev"
fi
[ -z "$(ls -A "$root/etc/mdevctl.d/matrix")" ] && [ ! -e "$root/run" ] && [ ! -e "$work/mdevctl.log" ] \
  || fail "the refused start changed the fake host"

# 3. a defined, inactive mdev: the hook starts it on prepare; whatever libvirt does next (here it
#    cannot assign an mdev on a host without vfio), libvirt's "release end" makes the hook stop it
uuid2=0f2f8b8a-1111-4e18-a6fe-57bc9eceb921
echo '{"mdev_type":"vfio_ap-passthrough","start":"manual","attrs":[{"assign_adapter":"2"},{"assign_domain":"43"}]}' \
  > "$root/etc/mdevctl.d/matrix/$uuid2"
domain hkdefined "<hostdev mode='subsystem' type='mdev' model='vfio-ap'><source><address uuid='$uuid2'/></source></hostdev>" > "$work/defined.xml"
V define "$work/defined.xml" >/dev/null || fail "define hkdefined"
if V start hkdefined >"$work/defined.out" 2>&1; then
  echo "check-hooks-e2e: hkdefined started (this host can assign mdevs); destroying it"
  V destroy hkdefined >/dev/null
fi
if grep -q "nodedev-helper:" "$work/defined.out"; then cat "$work/defined.out" >&2; fail "the hook refused hkdefined"; fi
for _ in $(seq 50); do grep -q "guest 'hkdefined': stopped" "$work/syslog" && break; sleep 0.1; done
want=$(printf 'start -u %s\nstop -u %s' "$uuid2" "$uuid2")
[ "$(cat "$work/mdevctl.log" 2>/dev/null)" = "$want" ] \
  || fail "expected the hook to run mdevctl start then stop; mdevctl log: $(cat "$work/mdevctl.log" 2>/dev/null)"
[ ! -e "$root/sys/devices/vfio_ap/matrix/$uuid2" ] && [ ! -e "$root/run/nodedev-helper/libvirt-hook/hkdefined" ] \
  || fail "the mdev started for hkdefined is still active or still recorded after release"
grep -q "guest 'hkdefined': stopped vfio-ap mdev $uuid2 (started by this hook)" "$work/syslog" || fail "release not logged"
echo "check-hooks-e2e: defined mdev: the hook started it on prepare; libvirt then: $(grep -v '^$' "$work/defined.out" | tail -n1 | cut -c1-160)"
echo "check-hooks-e2e: libvirt ran release end and the hook stopped the mdev it had started (mdevctl calls: $(paste -sd';' "$work/mdevctl.log"))"
echo "check-hooks-e2e: passed in $(( $(date +%s) - t0 )) s"
