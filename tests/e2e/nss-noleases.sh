#!/bin/bash
# nss-noleases.sh -- guests without a lease, end to end, under a REAL libvirtd (tests/e2e/rig.sh).
#
# Brings up its own rig (RIG_NAME=nl<pid>) with our lxc hook wrapper installed in the rig's
# /etc/libvirt/hooks/lxc.d (hooks/libvirt/60-nss-libvirt-guest-lxc, pointing at the built
# nss-libvirt-guest), then defines and starts an LXC domain whose interface is type='bridge'
# on the rig's bridge (no libvirt network port: libvirt writes no .macs entry for it, and it
# sends no DHCP request: it configures a static address and pings the gateway). Checks, from
# the libvirt host: libvirt's hook recorded the domain's MAC; the domain's name resolves
# through getent to its static address, and the address back to the name; a neighbour entry
# whose MAC belongs to no running domain is never answered; after `virsh destroy` the name
# stops resolving. Tears the rig down at the end, also on failure.
#
#   NSS_CLI=PATH   the built nss-libvirt-guest (default: target/release/nss-libvirt-guest)
#   RIG_NSS_SO=PATH  our module (default: what rig.sh finds in the release dir)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RIG=$HERE/rig.sh
export RIG_NAME=${RIG_NAME:-nl$$}
NSS_CLI=${NSS_CLI:-$REPO/target/release/nss-libvirt-guest}
[ "$(id -u)" = 0 ] || { echo "nss-noleases: must run as root (the rig needs namespaces)" >&2; exit 1; }
[ -x "$NSS_CLI" ] || { echo "nss-noleases: $NSS_CLI is not built (cargo build --release -p nss-libvirt-guest-cli)" >&2; exit 1; }

PASS=0 FAIL=0 N=0
T0=$(date +%s)
pass() { N=$((N + 1)); PASS=$((PASS + 1)); printf 'ok      %2d  %s\n' "$N" "$1"; }
fail() { N=$((N + 1)); FAIL=$((FAIL + 1)); printf 'FAIL    %2d  %s\n' "$N" "$1"; printf '            %s\n' "${@:2}"; }
WORK=$(mktemp -d /tmp/nss-noleases.XXXXXX)

finish() {
  local rc=$?
  "$RIG" down >/dev/null 2>&1 || echo "nss-noleases: WARNING: '$RIG down' failed; run it again" >&2
  rm -f "/tmp/vhk-rig-$RIG_NAME.lock"
  rm -rf "$WORK"
  [ "$rc" = 0 ] || [ "$FAIL" -gt 0 ] || { echo "nss-noleases: aborted (rc=$rc) after $N checks"; FAIL=$((FAIL + 1)); }
  printf '\nnss-noleases: %d passed, %d failed in %d s\n' "$PASS" "$FAIL" $(( $(date +%s) - T0 ))
  [ "$FAIL" = 0 ] && exit 0 || exit 1
}
trap finish EXIT

# the installed lxc.d wrapper, pointing at the built binary
mkdir -p "$WORK/hooks/lxc.d"
sed "s|@SBINDIR@/nss-libvirt-guest|$NSS_CLI|g" "$REPO/hooks/libvirt/60-nss-libvirt-guest-lxc" \
  > "$WORK/hooks/lxc.d/60-nss-libvirt-guest"
chmod 755 "$WORK/hooks/lxc.d/60-nss-libvirt-guest"

RIG_HOOKS_DIR=$WORK/hooks RIG_SSH=0 "$RIG" up > "$WORK/facts" 2> "$WORK/rig-up.log" \
  || { cat "$WORK/rig-up.log" >&2; fail "rig.sh up"; exit 1; }
# shellcheck disable=SC1091
. "$WORK/facts"
[ -x "$RIG_DIR/etc/hooks/lxc.d/60-nss-libvirt-guest" ] \
  || { fail "the hook is not in the rig's /etc/libvirt/hooks/lxc.d"; exit 1; }

# A domain with a static address on the bridge, not on the libvirt network.
SUBNET=${RIG_GATEWAY%.1}
SIP=$SUBNET.77 SMAC=52:54:00:cc:00:77 SNAME=staticdom
# IPv6 too when the rig has it (RIG_IPV6=auto): outside the DHCPv6 range ::100-::1ff
SIP6=""
[ "${RIG_IPV6:-0}" = 1 ] && SIP6=${RIG_GATEWAY6%::1}::77
cat > "$RIG_DIR/cfg/static-init.sh" <<EOF
PATH=/usr/sbin:/usr/bin:/sbin:/bin
ip link set eth0 up
ip addr add $SIP/24 dev eth0
[ -n "$SIP6" ] && ip -6 addr add $SIP6/64 dev eth0 nodad
# traffic the host sees: a ping to the gateway(s) every 2 s
while :; do
  busybox ping -c 1 -W 1 $RIG_GATEWAY >/dev/null 2>&1
  [ -n "$SIP6" ] && busybox ping6 -c 1 -W 1 ${RIG_GATEWAY6:-::1} >/dev/null 2>&1
  sleep 2
done
EOF
cat > "$RIG_DIR/cfg/static-domain.xml" <<EOF
<domain type='lxc'>
  <name>$SNAME</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type>exe</type>
    <init>/bin/busybox</init>
    <initarg>sh</initarg>
    <initarg>$RIG_DIR/cfg/static-init.sh</initarg>
  </os>
  <devices>
    <console type='pty'/>
    <interface type='bridge'>
      <source bridge='$RIG_BRIDGE'/>
      <mac address='$SMAC'/>
    </interface>
  </devices>
</domain>
EOF
"$RIG" virsh define "$RIG_DIR/cfg/static-domain.xml" >/dev/null \
  && "$RIG" virsh start "$SNAME" >/dev/null \
  || { fail "define and start $SNAME" "$(tail -n 20 "$RIG_DIR/log/libvirtd.log" 2>/dev/null)"; exit 1; }

map=$("$RIG" exec cat /run/virt-hostkit/guests.macs 2>&1)
if grep -q "\"$SNAME\"" <<<"$map" && grep -q "$SMAC" <<<"$map"; then
  pass "libvirt ran the lxc hook on start: /run/virt-hostkit/guests.macs has $SNAME with $SMAC"
else
  fail "the hook recorded $SNAME" "$map"
fi
grep -q "$SMAC" "$RIG_DIR/lib/dnsmasq/$RIG_BRIDGE.macs" 2>/dev/null \
  && fail "precondition: $SMAC must not be in libvirt's $RIG_BRIDGE.macs (type='bridge')" \
  || pass "precondition: libvirt wrote no .macs entry and no lease for $SNAME (type='bridge', static address)"

# wait until the host has seen the domain's traffic
i=0
until "$RIG" exec ip neigh show "$SIP" 2>/dev/null | grep -qi "$SMAC"; do
  i=$((i + 1)); [ $i -ge 40 ] && break; sleep 0.25
done
neigh=$("$RIG" exec ip neigh show "$SIP" 2>&1)
got=$("$RIG" exec getent ahostsv4 "$SNAME" 2>&1)
if [ "$(awk 'NR == 1 {print $1}' <<<"$got")" = "$SIP" ]; then
  pass "getent ahostsv4 $SNAME -> $SIP (neighbour entry: $neigh)"
else
  fail "getent ahostsv4 $SNAME" "got '$got', neighbour entry '$neigh'"
fi
if [ -n "$SIP6" ]; then
  i=0
  until "$RIG" exec ip -6 neigh show "$SIP6" 2>/dev/null | grep -qi "$SMAC"; do
    i=$((i + 1)); [ $i -ge 40 ] && break; sleep 0.25
  done
  got=$("$RIG" exec getent ahostsv6 "$SNAME" 2>&1)
  [ "$(awk 'NR == 1 {print $1}' <<<"$got")" = "$SIP6" ] && pass "getent ahostsv6 $SNAME -> $SIP6" \
    || fail "getent ahostsv6 $SNAME" "got '$got', neighbour '$("$RIG" exec ip -6 neigh show "$SIP6" 2>&1)'"
  got=$("$RIG" exec getent hosts "$SIP6" 2>&1)
  [ "$(awk '{print $2}' <<<"$got")" = "$SNAME" ] && pass "getent hosts $SIP6 -> $SNAME (reverse)" \
    || fail "getent hosts $SIP6" "got '$got'"
else
  echo "nss-noleases: the rig has no IPv6 (RIG_IPV6=${RIG_IPV6:-0}): IPv4 only"
fi
got=$("$RIG" exec getent hosts "$SIP" 2>&1)
[ "$(awk '{print $2}' <<<"$got")" = "$SNAME" ] && pass "getent hosts $SIP -> $SNAME (reverse)" \
  || fail "getent hosts $SIP" "got '$got'"
got=$("$RIG" exec "$NSS_CLI" lookup "$SNAME" --service libvirt_guest --json 2>&1)
grep -q '"sources":\["neighbour"' <<<"$got" && pass "nss-libvirt-guest lookup says the answer came from the neighbour table" \
  || fail "lookup --json source" "$got"

# a neighbour whose MAC belongs to no running domain is never answered
"$RIG" exec ip neigh replace "$SUBNET.99" lladdr 52:54:00:dd:00:99 dev "$RIG_BRIDGE" nud reachable
got=$("$RIG" exec getent hosts "$SUBNET.99" 2>&1); rc=$?
[ $rc != 0 ] && pass "a neighbour of no running domain ($SUBNET.99) is not answered" \
  || fail "getent hosts $SUBNET.99 must fail" "got '$got'"

# the map lost (as after a reboot while libvirtd kept its state): the next event rebuilds it
# from libvirt's status files, so the rig's other running domain is back in it
"$RIG" exec rm -f /run/virt-hostkit/guests.macs
# stopped: the hook removes it, the name stops resolving
"$RIG" virsh destroy "$SNAME" >/dev/null 2>&1
got=$("$RIG" exec getent hosts "$SNAME" 2>&1); rc=$?
map=$("$RIG" exec cat /run/virt-hostkit/guests.macs 2>&1)
if [ $rc != 0 ] && ! grep -q "\"$SNAME\"" <<<"$map"; then
  pass "after virsh destroy: $SNAME is out of the map and does not resolve"
else
  fail "after virsh destroy" "getent exit $rc '$got'; map: $map"
fi
if [ "${RIG_DOMAIN_MODE:-lxc}" = lxc ]; then
  grep -q "\"$RIG_DOMAIN_NAME\"" <<<"$map" && grep -q "$RIG_DOMAIN_MAC" <<<"$map" \
    && pass "the map, deleted before the stop, was rebuilt from /run/libvirt/lxc: $RIG_DOMAIN_NAME ($RIG_DOMAIN_MAC) is in it" \
    || fail "rebuilt map has $RIG_DOMAIN_NAME" "$map"
fi
