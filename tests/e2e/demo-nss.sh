#!/bin/bash
# demo-nss.sh -- `make demo`, NSS part: `ssh guestname` on a real (namespaced) libvirt host.
#
# Brings up tests/e2e/rig.sh (RIG_NAME=demo): a real libvirtd, a NAT network with libvirt's
# dnsmasq, a DHCP guest and a running LXC domain, our NSS module installed in the rig's mount
# namespace with "hosts: files libvirt libvirt_guest". Then runs, and shows, what an
# administrator would type. Tears everything down at the end.
#
#   DEMO_KEEP=1      keep the rig up afterwards, to explore (the commands to use are printed)
#   RIG_NSS_SO=PATH  our module (make passes $(RELEASE_DIR)/libnss_libvirt_guest.so)
#   NSS_CLI=PATH     the diagnostic CLI nss-libvirt-guest (make passes $(RELEASE_DIR)/nss-libvirt-guest)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RIG=$HERE/rig.sh
export RIG_NAME=${RIG_NAME:-demo}
DEMO_KEEP=${DEMO_KEEP:-0}
NSS_CLI=${NSS_CLI:-}
T0=$(date +%s)

if [ -t 1 ]; then B=$'\e[1m' D=$'\e[2m' N=$'\e[0m'; else B="" D="" N=""; fi
say()  { printf '\n%s%s%s\n' "$B" "$*" "$N"; }
note() { printf '%s%s%s\n' "$D" "$*" "$N"; }
# show CMD... : print the command as the administrator would type it, then run it in the rig
show() { show_as "$*" "$@"; }
show_as() {  # show_as "WHAT TO PRINT" CMD...
  printf '%s# %s%s\n' "$B" "$1" "$N"; shift
  "$RIG" exec "$@" 2>&1 | sed 's/^/  /'
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || note "  (exit status $rc)"
  return 0
}

finish() {
  if [ "$DEMO_KEEP" = 1 ]; then
    "$RIG" virsh create "$RIG_DIR/cfg/domain.xml" >/dev/null 2>&1 || true   # stopped by step 4
    say "The rig stays up (DEMO_KEEP=1). Explore it with:"
    echo "  RIG_NAME=$RIG_NAME $RIG exec getent ahosts $RIG_DOMAIN_NAME"
    echo "  RIG_NAME=$RIG_NAME $RIG exec ssh $RIG_DOMAIN_NAME 'hostname; ip -br addr'"
    echo "  RIG_NAME=$RIG_NAME $RIG virsh list --all"
    echo "  RIG_NAME=$RIG_NAME $RIG down          # when done"
  else
    say "Tearing the rig down (DEMO_KEEP=1 keeps it)"
    "$RIG" down 2>&1 | tail -n 1
  fi
  note "demo-nss: $(( $(date +%s) - T0 )) s"
}

[ "$(id -u)" = 0 ] || { echo "demo-nss: must run as root (the rig creates namespaces and runs libvirtd)" >&2; exit 1; }

say "== virt-hostkit: resolve libvirt guests by name (NSS module) =="
cat <<EOF
On a libvirt host, guests get their addresses from libvirt's dnsmasq. libvirt records the
leases in /var/lib/libvirt/dnsmasq/<bridge>.status and which domain owns which MAC in
<bridge>.macs. Our module reads those files, so with

    hosts: files libvirt libvirt_guest dns        (in /etc/nsswitch.conf)

every program finds a guest by the hostname it sent over DHCP (service libvirt) or by its
libvirt domain name (service libvirt_guest): ssh, ping, getent, ansible ...

This demo starts a real libvirtd with a NAT network, a DHCP guest and an LXC domain, all
inside namespaces, so nothing on this machine changes.
EOF

say "Starting the rig (real libvirtd, network, guest, domain) ..."
FACTS=$(RIG_NSS=${RIG_NSS:-auto} RIG_DOMAIN_MODE=lxc "$RIG" up) \
  || { echo "demo-nss: the rig did not come up (messages above)"; "$RIG" down >/dev/null 2>&1; exit 1; }
eval "$FACTS"
trap finish EXIT
if [ "$RIG_NSS" = ours ]; then
  note "module: ours ($RIG_NSS_SO), bound over the system's libnss_libvirt{,_guest}.so.2 in the rig"
else
  note "module: Debian's libnss_libvirt (ours is not built: run 'make release')"
fi

say "1. libvirt's own files (written by libvirtd, dnsmasq and libvirt_leaseshelper)"
show virsh -c lxc:///system list
show virsh -c lxc:///system net-dhcp-leases "$RIG_NETWORK"
show ls /var/lib/libvirt/dnsmasq/
show cat "/var/lib/libvirt/dnsmasq/$RIG_BRIDGE.macs"
show grep '^hosts' /etc/nsswitch.conf

say "2. Names resolve through glibc: the domain name, and the DHCP hostname of the guest"
show getent hosts "$RIG_DOMAIN_NAME"
show getent ahostsv4 "$RIG_DOMAIN_NAME"
show getent ahosts "$RIG_GUEST_NAME"
say "   ... and back: address -> name (libvirt's own modules cannot do this)"
show getent hosts "$RIG_GUEST_IP"
note "  (the domain's address: service libvirt comes first and answers with the hostname the"
note "   domain sent over DHCP; service libvirt_guest alone answers with the domain name)"
show getent hosts "$RIG_DOMAIN_IP"
show getent -s hosts:libvirt_guest hosts "$RIG_DOMAIN_IP"

say "3. ssh by name: each guest answers with its own hostname"
show ssh "$RIG_DOMAIN_NAME" hostname
show ssh "$RIG_GUEST_NAME" hostname

say "4. Diagnostics: nss-libvirt-guest"
if [ -n "$NSS_CLI" ] && [ -x "$NSS_CLI" ]; then
  show_as "nss-libvirt-guest check" "$NSS_CLI" check
  show_as "nss-libvirt-guest list" "$NSS_CLI" list
  note "Stop the domain: libvirt removes it from $RIG_BRIDGE.macs, and its name stops resolving."
  "$RIG" virsh destroy "$RIG_DOMAIN_NAME" >/dev/null
  show getent hosts "$RIG_DOMAIN_NAME"
  note "Why? --explain lists every lease considered and why it was taken or rejected:"
  show_as "nss-libvirt-guest lookup $RIG_DOMAIN_NAME --service libvirt_guest --explain" \
    "$NSS_CLI" lookup "$RIG_DOMAIN_NAME" --service libvirt_guest --explain
else
  note "The diagnostic CLI is not built yet (${NSS_CLI:-NSS_CLI unset}); this is where the demo shows"
  note "'nss-libvirt-guest list' and 'nss-libvirt-guest lookup NAME --explain'."
  note "Stop the domain: libvirt removes it from $RIG_BRIDGE.macs, and its name stops resolving."
  "$RIG" virsh destroy "$RIG_DOMAIN_NAME" >/dev/null
  show cat "/var/lib/libvirt/dnsmasq/$RIG_BRIDGE.macs"
  show getent hosts "$RIG_DOMAIN_NAME"
fi
