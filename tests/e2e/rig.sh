#!/bin/bash
# rig.sh -- a REAL, namespaced libvirt host for the end-to-end tests and the demo of virt-hostkit.
#
#   rig.sh up             bring everything up (idempotent); prints KEY=VALUE facts on stdout
#   rig.sh down           tear everything down (idempotent; also cleans up a failed "up")
#   rig.sh status         exit 0 and print the facts if the rig is up and healthy
#   rig.sh env            print the facts of the rig (KEY=VALUE, shell-sourceable)
#   rig.sh exec CMD...    run CMD "on the libvirt host": rig mount ns (the rig's
#                         /var/lib/libvirt/dnsmasq, nsswitch.conf "hosts: files libvirt
#                         libvirt_guest", the installed NSS module, ssh client config in
#                         /root/.ssh) + rig netns, in a throw-away child mount ns.
#                         RIG_EXEC_NSS=debian: this command sees Debian's stock modules.
#                           rig.sh exec getent ahosts rigdom ; rig.sh exec ssh rigdom hostname
#   rig.sh virsh ARGS     virsh against the rig's libvirtd
#   rig.sh nss [ours|debian] [SO]   (re)install the NSS module in the running rig
#   rig.sh guest-exec CMD run CMD in the DHCP guest's network namespace
#
# Several rigs can run at once: give each its own RIG_NAME (<= 12 chars); the netns names,
# bridge, subnets and RIG_DIR derive from it. tests/e2e/README.md lists every knob.
# Needs root. Debian 12 packages (scripts/deps.sh e2e): libvirt-daemon libvirt-clients
#   libvirt-daemon-driver-lxc dnsmasq-base iptables busybox iproute2 util-linux
#   isc-dhcp-client (IPv6) openssh-server openssh-client (sshd) libnss-libvirt (the bind
#   mount targets + the reference module); qemu mode also qemu-system-x86 + make-qemu-guest.sh
#
# What "up" builds -- all traffic stays inside network namespaces created here:
#   netns ${RIG_NAME}-host   libvirtd (monolithic; Debian 12 ships no modular daemons),
#                            transient NAT network -> bridge $RIG_BRIDGE + libvirt's dnsmasq
#                            (+ libvirt_leaseshelper), libvirt_lxc / qemu of the domain
#   mount ns $RIG_DIR/mntns  private /run; /etc/libvirt /var/lib/libvirt /var/log/libvirt
#                            /var/cache/libvirt /run/libvirt /root bound from $RIG_DIR/*;
#                            /etc/nsswitch.conf + libnss_libvirt{,_guest}.so.2 bound over;
#                            a sysfs for the netns; cgroup v1 tree without cgroup2 "unified"
#   netns ${RIG_NAME}-g1     plain guest: veth in the bridge; busybox udhcpc (+ dhclient -6)
#                            send hostname $RIG_GUEST_NAME from $RIG_GUEST_MAC -> .status;
#                            sshd in its own UTS namespace (hostname $RIG_GUEST_NAME)
#   domain $RIG_DOMAIN_NAME  LXC container (default) with <interface type='network'>, MAC
#                            $RIG_DOMAIN_MAC, DHCP hostname $RIG_DOMAIN_HOSTNAME -> .macs;
#                            sshd inside (hostname = domain name)
set -euo pipefail

# ---------------------------------------------------------------- configuration
RIG_NAME=${RIG_NAME:-vhk}                       # prefix of the netns / veth names (<= 12 chars)
case "$RIG_NAME" in ""|*[!a-z0-9]*) echo "[rig] ERROR: RIG_NAME must be lower-case letters/digits (got '$RIG_NAME')" >&2; exit 2;; esac
[ ${#RIG_NAME} -le 12 ] || { echo "[rig] ERROR: RIG_NAME '$RIG_NAME' is longer than 12 characters (interface names)" >&2; exit 2; }
# a per-name number keeps default subnets of concurrent rigs distinct (each lives in its own
# netns anyway, but distinct addresses make logs and lease files unambiguous)
RIG_NUM=$(( $(printf '%s' "$RIG_NAME" | cksum | cut -d' ' -f1) % 150 + 50 ))
RIG_DIR=${RIG_DIR:-/tmp/vhk-rig-$RIG_NAME}      # all state lives here
RIG_NETWORK=${RIG_NETWORK:-${RIG_NAME}net}      # libvirt network name
RIG_BRIDGE=${RIG_BRIDGE:-${RIG_NAME}br0}        # bridge => lease files <bridge>.status / .macs
RIG_SUBNET=${RIG_SUBNET:-192.168.$RIG_NUM}      # a /24 that only exists inside ${RIG_NAME}-host
RIG_FORWARD=${RIG_FORWARD:-nat}                 # nat | open | none (isolated)
RIG_IPV6=${RIG_IPV6:-auto}                      # auto|1|0: dual-stack network + DHCPv6 (dhclient -6)
RIG_SUBNET6=${RIG_SUBNET6:-fd00:$RIG_NUM:64}    # ULA /64, only exists inside ${RIG_NAME}-host
RIG_GUEST_NAME=${RIG_GUEST_NAME:-myguest}       # DHCP hostname of the netns guest
RIG_GUEST_MAC=${RIG_GUEST_MAC:-52:54:00:aa:00:01}
RIG_DOMAIN_MODE=${RIG_DOMAIN_MODE:-lxc}         # lxc | qemu | port | none
RIG_DOMAIN_NAME=${RIG_DOMAIN_NAME:-rigdom}      # libvirt domain name (=> .macs)
RIG_DOMAIN_HOSTNAME=${RIG_DOMAIN_HOSTNAME:-rigdom-os}  # DHCP hostname the domain sends
RIG_DOMAIN_MAC=${RIG_DOMAIN_MAC:-52:54:00:bb:00:01}
RIG_NSS=${RIG_NSS:-auto}                        # auto | ours | debian : module bound in the rig
RIG_NSS_SO=${RIG_NSS_SO:-}                      # our module (one .so, both prefixes); auto-found if empty
RIG_SSH=${RIG_SSH:-1}                           # 1: sshd in the guest netns and in the domain
RIG_HOOKS_DIR=${RIG_HOOKS_DIR:-}                # copied into the rig's /etc/libvirt/hooks/ before libvirtd starts
RIG_QEMU_HOOKS=${RIG_QEMU_HOOKS:-}              # files copied into the rig's /etc/libvirt/hooks/qemu.d/
RIG_CHECK=${RIG_CHECK:-1}                       # 1: verify the leases resolve through the installed module
RIG_KEEP=${RIG_KEEP:-0}                         # 1: "down" keeps $RIG_DIR (logs)
RIG_TIMEOUT=${RIG_TIMEOUT:-30}                  # seconds to wait for each lease
RIG_QEMU_KERNEL=${RIG_QEMU_KERNEL:-}             # qemu mode: kernel + initrd from make-qemu-guest.sh
RIG_QEMU_INITRD=${RIG_QEMU_INITRD:-}
RIG_QEMU_ACCEL=${RIG_QEMU_ACCEL:-qemu}          # qemu (TCG) | kvm
RIG_NO_PING=${RIG_NO_PING:-1}                   # 1: dnsmasq "no-ping" (0: stock dnsmasq conf, ~7 s slower)
REPO=$(cd "$(dirname "$0")/../.." && pwd)

IPV6=0                                          # resolved RIG_IPV6 (by preflight / mode file)
NS_HOST=${RIG_NAME}-host
NS_GUEST=${RIG_NAME}-g1
NS_GUEST2=${RIG_NAME}-g2                        # only used with RIG_DOMAIN_MODE=port
VETH=${RIG_NAME}-v0                             # bridge side of the guest veths (<=15 chars)
VETH2=${RIG_NAME}-v1
MNTNS=$RIG_DIR/mntns
# every command but "up" acts on the mode the running rig was started with
if [ "${1:-}" != up ] && [ -s "$RIG_DIR/mode" ]; then read -r RIG_DOMAIN_MODE IPV6 < "$RIG_DIR/mode"; fi
if [ "$RIG_DOMAIN_MODE" = qemu ]; then DRV=qemu; else DRV=lxc; fi
URI="$DRV:///system?socket=$RIG_DIR/run/libvirt-sock"
LEASE_DIR=$RIG_DIR/lib/dnsmasq                  # == /var/lib/libvirt/dnsmasq inside the rig
STATE=$RIG_DIR/rig.env
LEASESHELPER=/usr/lib/libvirt/libvirt_leaseshelper
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH LC_ALL=C

# ---------------------------------------------------------------- helpers
T0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
log()  { printf '[rig %6ss] %s\n' "$(elapsed "$T0")" "$*" >&2; }
warn() { printf '[rig] WARNING: %s\n' "$*" >&2; }
die()  { printf '[rig] ERROR: %s\n' "$*" >&2; exit 1; }
V()    { virsh -q -c "$URI" "$@"; }
netns_exists() { [ -e "/run/netns/$1" ]; }
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${st#Z}" = "$st" ]; }  # zombie = dead
ino()  { stat -L -c %i "$1" 2>/dev/null || true; }

check_dir_safe() {
  case "$RIG_DIR" in /*) ;; *) die "RIG_DIR must be an absolute path (got '$RIG_DIR')";; esac
  case "${RIG_DIR%/}" in
    ""|/tmp|/run|/var|/var/tmp|/var/lib|/var/run|/etc|/usr|/home|/root|/opt|/srv|/mnt)
      die "refusing RIG_DIR='$RIG_DIR' (it gets bind-mounted and removed); use a dedicated dir";;
  esac
}

tail_logs() {
  local f
  for f in "$RIG_DIR/log/libvirtd.log" "$RIG_DIR/log/lxc/$RIG_DOMAIN_NAME.log" \
           "$RIG_DIR/log/qemu/$RIG_DOMAIN_NAME.log" "$RIG_DIR/log/qemu/$RIG_DOMAIN_NAME-serial.log" \
           "$RIG_DIR/log/guest-udhcpc.log" "$RIG_DIR/log/domain-udhcpc.log" \
           "$RIG_DIR/log/guest-dhclient6.log" "$RIG_DIR/log/domain-dhclient6.log"; do
    [ -s "$f" ] || continue
    printf '[rig] ---- last lines of %s ----\n' "$f" >&2
    grep -v -e dmidecode -e udevGetDMIData -e /dev/mem -e '^$' "$f" | tail -n 12 >&2 || true
  done
}

# ---------------------------------------------------------------- NSS module
# The module goes where glibc looks for it: bind mounts over the system's
# libnss_libvirt{,_guest}.so.2, inside the rig mount ns only (the host never sees them).
nss_system_path() {  # nss_system_path SERVICE -> /usr/lib/<multiarch>/libnss_SERVICE.so.2
  local p
  p=$(ldconfig -p 2>/dev/null | awk -v n="libnss_$1.so.2" '$1 == n { print $NF; exit }')
  [ -n "$p" ] || for p in /usr/lib/*/"libnss_$1.so.2" /usr/lib64/"libnss_$1.so.2" ""; do [ -e "$p" ] && break; done
  [ -n "$p" ] && [ -e "$p" ] || return 1
  readlink -f "$p"
}

# sets NSS_KIND (ours|debian) and NSS_SRC_MAIN / NSS_SRC_GUEST (files to bind; empty = Debian's)
nss_resolve_module() {  # [KIND] [SO]
  local kind=${1:-$RIG_NSS} so=${2:-$RIG_NSS_SO} d
  NSS_SYS_MAIN=$(nss_system_path libvirt) && NSS_SYS_GUEST=$(nss_system_path libvirt_guest) \
    || die "libnss_libvirt.so.2 / libnss_libvirt_guest.so.2 not found: apt-get install -y libnss-libvirt
    (the rig binds our module over Debian's files, and compares with them)"
  if [ -z "$so" ]; then
    for d in "${CARGO_TARGET_DIR:-}" "$REPO/target"; do
      [ -n "$d" ] && [ -f "$d/release/libnss_libvirt_guest.so" ] && { so=$d/release/libnss_libvirt_guest.so; break; }
    done
  fi
  case "$kind" in
    auto) if [ -n "$so" ] && [ -f "$so" ]; then kind=ours
          else kind=debian; warn "our NSS module not built (no libnss_libvirt_guest.so; set RIG_NSS_SO): using Debian's"; fi ;;
    ours) [ -n "$so" ] && [ -f "$so" ] || die "RIG_NSS=ours: module '${so:-libnss_libvirt_guest.so}' not found (make release, or set RIG_NSS_SO)" ;;
    debian) ;;
    *) die "RIG_NSS must be auto|ours|debian (got '$kind')" ;;
  esac
  NSS_KIND=$kind NSS_SRC_MAIN="" NSS_SRC_GUEST=""
  if [ "$kind" = ours ]; then
    so=$(readlink -f "$so"); d=$(dirname "$so")/nss
    # correctly SONAMEd copies made by the build (mk/nss.mk), else the one .so for both
    # (only when not older than the .so: a stale copy would test old code)
    if [ -f "$d/libnss_libvirt.so.2" ] && [ -f "$d/libnss_libvirt_guest.so.2" ] \
       && ! [ "$so" -nt "$d/libnss_libvirt.so.2" ] && ! [ "$so" -nt "$d/libnss_libvirt_guest.so.2" ]; then
      NSS_SRC_MAIN=$d/libnss_libvirt.so.2 NSS_SRC_GUEST=$d/libnss_libvirt_guest.so.2
    else
      NSS_SRC_MAIN=$so NSS_SRC_GUEST=$so
    fi
  fi
}

nss_install() {  # bind the module resolved by nss_resolve_module into the running rig
  local stamp
  stamp=$(date +%s%N)
  mkdir -p "$RIG_DIR/nss"
  rm -f "$RIG_DIR"/nss/*.so.2.*
  if [ "$NSS_KIND" = ours ]; then
    # private copies (fresh inodes): a rebuild never changes a running rig behind its back,
    # and two files keep glibc from treating both services as one already-loaded object
    cp "$NSS_SRC_MAIN" "$RIG_DIR/nss/libnss_libvirt.so.2.$stamp"
    cp "$NSS_SRC_GUEST" "$RIG_DIR/nss/libnss_libvirt_guest.so.2.$stamp"
  fi
  nsenter --mount="$MNTNS" -- /bin/sh -c '
    set -e
    for t in "$1" "$2"; do while mountpoint -q "$t"; do umount "$t"; done; done
    if [ "$3" = ours ]; then
      mount --bind "$4/libnss_libvirt.so.2.$5" "$1"
      mount --bind "$4/libnss_libvirt_guest.so.2.$5" "$2"
    fi' sh "$NSS_SYS_MAIN" "$NSS_SYS_GUEST" "$NSS_KIND" "$RIG_DIR/nss" "$stamp" \
    || die "cannot bind the NSS module over $NSS_SYS_MAIN / $NSS_SYS_GUEST in the rig"
  if [ "$NSS_KIND" = ours ]; then
    printf '%s\n' "$NSS_SRC_MAIN" > "$RIG_DIR/nss/installed"
  else
    printf 'debian\n' > "$RIG_DIR/nss/installed"
  fi
  log "NSS module in the rig: $NSS_KIND${NSS_SRC_MAIN:+ ($NSS_SRC_MAIN)}"
}

preflight() {
  [ "$(id -u)" = 0 ] || die "must run as root (creates netns / mount ns, runs libvirtd)"
  local c missing=() drv
  for c in ip nsenter unshare flock mountpoint awk libvirtd virsh dnsmasq iptables busybox; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ ${#missing[@]} = 0 ] || die "missing commands: ${missing[*]}
    fix: apt-get install -y libvirt-daemon libvirt-clients libvirt-daemon-driver-lxc dnsmasq-base iptables busybox iproute2 util-linux"
  [ -x "$LEASESHELPER" ] || die "$LEASESHELPER missing (package libvirt-daemon)"
  drv=$(ls -d /usr/lib/*/libvirt/connection-driver 2>/dev/null | head -n1)
  [ -f "$drv/libvirt_driver_network.so" ] || die "libvirt network driver missing (libvirt-daemon / libvirt-daemon-driver-network)"
  case "$RIG_DOMAIN_MODE" in
    lxc) [ -f "$drv/libvirt_driver_lxc.so" ] && [ -x /usr/lib/libvirt/libvirt_lxc ] \
           || die "libvirt LXC driver missing: apt-get install -y libvirt-daemon-driver-lxc (or RIG_DOMAIN_MODE=port)";;
    qemu) [ -f "$drv/libvirt_driver_qemu.so" ] || die "libvirt QEMU driver missing: apt-get install -y libvirt-daemon-driver-qemu"
          command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: apt-get install -y --no-install-recommends qemu-system-x86"
          [ -r "$RIG_QEMU_KERNEL" ] && [ -r "$RIG_QEMU_INITRD" ] \
            || die "qemu mode needs RIG_QEMU_KERNEL and RIG_QEMU_INITRD (build them with make-qemu-guest.sh DIR)"
          case "$RIG_QEMU_KERNEL$RIG_QEMU_INITRD" in *"'"*|*"<"*|*"&"*) die "odd characters in RIG_QEMU_* paths";; esac ;;
    port|none) ;;
    *) die "RIG_DOMAIN_MODE must be lxc|qemu|port|none";;
  esac
  case "$RIG_FORWARD" in nat|open|none) ;; *) die "RIG_FORWARD must be nat|open|none";; esac
  case "$RIG_IPV6" in
    0) IPV6=0 ;;
    1|auto)
      if [ -d /proc/sys/net/ipv6 ] && command -v dhclient >/dev/null 2>&1; then IPV6=1
      elif [ "$RIG_IPV6" = 1 ]; then
        die "RIG_IPV6=1 needs kernel IPv6 and dhclient (apt-get install -y isc-dhcp-client)"
      else IPV6=0; warn "IPv6 part disabled (no kernel IPv6 or no dhclient / isc-dhcp-client)"
      fi ;;
    *) die "RIG_IPV6 must be auto|1|0";;
  esac
  [ ${#VETH} -le 15 ] || die "RIG_NAME too long (interface name '$VETH' > 15 chars)"
  local v
  for v in RIG_GUEST_MAC RIG_DOMAIN_MAC; do
    echo "${!v}" | grep -Eqx '([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}' || die "$v='${!v}' is not a MAC address (xx:xx:xx:xx:xx:xx)"
  done
  for v in RIG_GUEST_NAME RIG_DOMAIN_NAME RIG_DOMAIN_HOSTNAME RIG_NETWORK RIG_BRIDGE; do
    echo "${!v}" | grep -Eqx '[A-Za-z0-9][A-Za-z0-9.-]*' || die "$v='${!v}': use letters, digits, '.' and '-'"
  done
  echo "$RIG_SUBNET" | grep -Eqx '[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}' || die "RIG_SUBNET='$RIG_SUBNET' must be the first three octets (a.b.c)"
  [ -f "$drv/libvirt_driver_storage.so" ] || warn "libvirt storage driver missing: pools will not work (apt-get install -y libvirt-daemon-driver-storage-disk or libvirt-daemon)"
  if [ "$RIG_SSH" = 1 ]; then
    for c in /usr/sbin/sshd ssh ssh-keygen; do
      command -v "$c" >/dev/null 2>&1 || die "RIG_SSH=1 needs $c: apt-get install -y openssh-server openssh-client (or RIG_SSH=0)"
    done
    getent passwd sshd >/dev/null || die "user 'sshd' (privilege separation) missing: apt-get install -y openssh-server"
  fi
  nss_resolve_module
  if [ -n "$RIG_HOOKS_DIR" ]; then [ -d "$RIG_HOOKS_DIR" ] || die "RIG_HOOKS_DIR='$RIG_HOOKS_DIR' is not a directory"; fi
  for c in $RIG_QEMU_HOOKS; do [ -f "$c" ] || die "RIG_QEMU_HOOKS: '$c' is not a file"; done
  [ ${#RIG_BRIDGE} -le 15 ] || die "RIG_BRIDGE too long (> 15 chars)"
}

# every pid that belongs to the rig: in our netns or our mount ns, plus descendants
rig_pids() {
  local roots=() p m ns
  for ns in "$NS_HOST" "$NS_GUEST" "$NS_GUEST2"; do
    if netns_exists "$ns"; then mapfile -t -O ${#roots[@]} roots < <(ip netns pids "$ns" 2>/dev/null); fi
  done
  if mountpoint -q "$MNTNS" 2>/dev/null; then
    m=$(ino "$MNTNS")
    for p in /proc/[0-9]*; do
      [ "$(ino "$p/ns/mnt")" = "$m" ] && roots+=("${p#/proc/}")
    done
  fi
  [ ${#roots[@]} = 0 ] && return 0
  ps -e -o pid=,ppid= | awk -v roots="${roots[*]}" -v self="$$" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { par[$1] = $2 }
    END { do { changed = 0
               for (p in par) if (!(p in keep) && (par[p] in keep)) { keep[p] = 1; changed = 1 }
          } while (changed)
          for (p in keep) if (p != self) print p }' | sort -un
}

libvirtd_pid() {   # pid of OUR libvirtd, if alive
  local pid
  pid=$(cat "$RIG_DIR/run/libvirtd.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q libvirtd || return 1
  [ "$(ino "/proc/$pid/ns/net")" = "$(ino "/run/netns/$NS_HOST")" ] || return 1
  echo "$pid"
}

lease_ip() {  # lease_ip MAC [4|6] -> address leased to MAC, from <bridge>.status
  local f="$LEASE_DIR/$RIG_BRIDGE.status"
  [ -s "$f" ] || return 1
  awk -v mac="$(echo "$1" | tr A-Z a-z)" -v fam="${2:-4}" '
    /"ip-address"/  { gsub(/[",]/, "", $2); ip = $2 }
    /"mac-address"/ { gsub(/[",]/, "", $2)
                      if (tolower($2) == mac && ((fam == 6) == (ip ~ /:/))) found = ip }
    END { if (found == "") exit 1; print found }' "$f"
}
lease_ip6() { lease_ip "$1" 6; }
domain_has_v6() { [ "$IPV6" = 1 ] && { [ "$RIG_DOMAIN_MODE" = lxc ] || [ "$RIG_DOMAIN_MODE" = port ]; }; }

macs_has_domain() { grep -q "\"domain\": \"$RIG_DOMAIN_NAME\"" "$LEASE_DIR/$RIG_BRIDGE.macs" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
  local t=$1 what=$2; shift 2
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { tail_logs; die "timed out after ${t}s waiting for: $what"; }
    sleep 0.1
  done
}

config_id() {  # everything "up" was asked for; a running rig with another config is rebuilt
  echo "$RIG_NAME|$RIG_NETWORK|$RIG_BRIDGE|$RIG_SUBNET|$RIG_FORWARD|$RIG_GUEST_NAME|$RIG_GUEST_MAC|$RIG_DOMAIN_MODE|$RIG_DOMAIN_NAME|$RIG_DOMAIN_HOSTNAME|$RIG_DOMAIN_MAC|$RIG_QEMU_KERNEL|$RIG_QEMU_INITRD|$RIG_QEMU_ACCEL|$RIG_NO_PING|$RIG_IPV6|$RIG_SUBNET6|$RIG_SSH|$RIG_HOOKS_DIR|$RIG_QEMU_HOOKS"
}

# healthy: 0 when the running rig is the one asked for and whole; otherwise 1, with the first
# failed check in $UNHEALTHY (logged by "up", so a rebuild says why it happened)
healthy() {
  UNHEALTHY=
  [ -s "$STATE" ] && mountpoint -q "$MNTNS" || { UNHEALTHY="no state file or mount namespace"; return 1; }
  if [ "$cmd" = up ] && [ "$(cat "$RIG_DIR/config-id" 2>/dev/null)" != "$(config_id)" ]; then
    UNHEALTHY="configured differently"; return 1
  fi
  libvirtd_pid >/dev/null || { UNHEALTHY="libvirtd not running in the rig"; return 1; }
  local info; info=$(V net-info "$RIG_NETWORK" 2>/dev/null) || { UNHEALTHY="virsh net-info failed"; return 1; }   # (no pipe: pipefail+grep -q)
  echo "$info" | grep -Eq '^Active:[[:space:]]+yes' || { UNHEALTHY="network $RIG_NETWORK not active"; return 1; }
  lease_ip "$RIG_GUEST_MAC" >/dev/null || { UNHEALTHY="no IPv4 lease for the guest"; return 1; }
  case "$RIG_DOMAIN_MODE" in
    lxc|qemu) [ "$(V domstate "$RIG_DOMAIN_NAME" 2>/dev/null)" = running ] || { UNHEALTHY="domain not running"; return 1; } ;;
  esac
  if [ "$RIG_DOMAIN_MODE" != none ]; then
    lease_ip "$RIG_DOMAIN_MAC" >/dev/null || { UNHEALTHY="no IPv4 lease for the domain"; return 1; }
    macs_has_domain || { UNHEALTHY="domain not in $RIG_BRIDGE.macs"; return 1; }
  fi
  if [ "$IPV6" = 1 ]; then
    lease_ip6 "$RIG_GUEST_MAC" >/dev/null || { UNHEALTHY="no IPv6 lease for the guest"; return 1; }
    if domain_has_v6; then lease_ip6 "$RIG_DOMAIN_MAC" >/dev/null || { UNHEALTHY="no IPv6 lease for the domain"; return 1; }; fi
  fi
}

# ---------------------------------------------------------------- down
do_down() {
  local pid pids left x ns
  if pid=$(libvirtd_pid); then
    log "destroying domain + network via libvirt, stopping libvirtd ($pid)"
    V destroy "$RIG_DOMAIN_NAME" >/dev/null 2>&1 || true
    V net-destroy "$RIG_NETWORK" >/dev/null 2>&1 || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.05; done
  fi
  pids=$(rig_pids || true)
  if [ -n "$pids" ]; then
    log "stopping remaining rig processes: $(echo $pids)"
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 60); do
      left=""; for x in $pids; do alive "$x" && left="$left $x"; done
      [ -z "$left" ] && break; sleep 0.05
    done
    [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
  fi
  for ns in "$NS_GUEST2" "$NS_GUEST" "$NS_HOST"; do   # veths/bridge die with their netns
    netns_exists "$ns" && { ip netns del "$ns" || warn "could not delete netns $ns"; }
  done
  # libvirtd removes a domain's cgroup (machine/lxc-<pid>-<name>.libvirt-lxc) when the
  # domain stops; if libvirtd was dead, do it here (rmdir fails on cgroups still in use).
  for x in /sys/fs/cgroup/*/machine/lxc-*-"$RIG_DOMAIN_NAME".libvirt-lxc \
           /sys/fs/cgroup/machine/lxc-*-"$RIG_DOMAIN_NAME".libvirt-lxc \
           /sys/fs/cgroup/*/machine/qemu-*-"$RIG_DOMAIN_NAME".libvirt-qemu/* \
           /sys/fs/cgroup/*/machine/qemu-*-"$RIG_DOMAIN_NAME".libvirt-qemu \
           /sys/fs/cgroup/machine/qemu-*-"$RIG_DOMAIN_NAME".libvirt-qemu; do
    [ -d "$x" ] && rmdir "$x" 2>/dev/null || true
  done
  # drop the "machine" partition dirs only if this rig created them (recorded by "up")
  # and they are empty (rmdir fails otherwise)
  if [ -s "$RIG_DIR/cgroups-created" ]; then
    while read -r x; do [ -d "$x" ] && rmdir "$x" 2>/dev/null || true; done < "$RIG_DIR/cgroups-created"
  fi
  if mountpoint -q "$MNTNS" 2>/dev/null; then umount "$MNTNS" || warn "umount $MNTNS failed"; fi
  if mountpoint -q "$RIG_DIR" 2>/dev/null; then umount "$RIG_DIR" || umount -l "$RIG_DIR" || warn "umount $RIG_DIR failed"; fi
  if [ -d "$RIG_DIR" ]; then
    if grep -q " ${RIG_DIR%/}[/ ]" /proc/self/mountinfo; then
      warn "mounts remain under $RIG_DIR; not deleting it"; return 1
    fi
    if [ "$RIG_KEEP" = 1 ]; then log "kept $RIG_DIR (RIG_KEEP=1)"; else rm -rf "$RIG_DIR"; fi
  fi
  [ -n "${LOCK:-}" ] && [ ! -e "$RIG_DIR" ] && rm -f "$LOCK"
  log "down"
}

# ---------------------------------------------------------------- up
write_configs() {
  mkdir -p "$RIG_DIR"/{etc/hooks/qemu.d,lib/dnsmasq,run,log/qemu,cache,cfg,home,nss}
  chmod 0700 "$RIG_DIR/home"
  # hooks of the hooks tests: in place before libvirtd starts (it reads the dir at start)
  if [ -n "$RIG_HOOKS_DIR" ]; then cp -a "$RIG_HOOKS_DIR/." "$RIG_DIR/etc/hooks/"; fi
  local h; for h in $RIG_QEMU_HOOKS; do cp -a "$h" "$RIG_DIR/etc/hooks/qemu.d/"; done
  # the host's nsswitch.conf with only the hosts line replaced
  awk -v hosts="${RIG_NSSWITCH_HOSTS:-files libvirt libvirt_guest}" '
    /^[[:space:]]*hosts[[:space:]]*:/ { print "hosts:          " hosts; done = 1; next } { print }
    END { if (!done) print "hosts:          " hosts }' /etc/nsswitch.conf > "$RIG_DIR/cfg/nsswitch.conf" \
    || die "cannot read /etc/nsswitch.conf"
  rm -f "$RIG_DIR/cfg/passwd" "$RIG_DIR/cfg/group"
  if ! getent passwd libvirt-qemu >/dev/null || ! getent group libvirt-qemu >/dev/null; then
    cp /etc/passwd "$RIG_DIR/cfg/passwd"; cp /etc/group "$RIG_DIR/cfg/group"
    getent passwd libvirt-qemu >/dev/null \
      || echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu (rig):/var/lib/libvirt:/usr/sbin/nologin' >> "$RIG_DIR/cfg/passwd"
    getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >> "$RIG_DIR/cfg/group"
  fi
  [ "$RIG_SSH" = 1 ] && write_ssh_configs
  echo "$RIG_DOMAIN_MODE $IPV6" > "$RIG_DIR/mode"
  config_id > "$RIG_DIR/config-id"
  cat > "$RIG_DIR/etc/libvirtd.conf" <<'EOF'
# rig: unix sockets only (no --listen), no auth, log to file
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
  printf 'security_driver = "none"\n' > "$RIG_DIR/etc/lxc.conf"
  # qemu as root: libvirt then never chowns the kernel/initrd files; no virtlogd needed
  printf 'security_driver = "none"\nstdio_handler = "file"\nuser = "root"\ngroup = "root"\n' > "$RIG_DIR/etc/qemu.conf"

  # udhcpc hook: configures the interface only -- never touches /etc/resolv.conf
  cat > "$RIG_DIR/cfg/udhcpc.script" <<'EOF'
#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" 2>/dev/null; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip -4 route replace default via "${router%% *}" dev "$interface"
    echo "$(date +%s) $1 $ip" ;;
esac
exit 0
EOF
  chmod 0755 "$RIG_DIR/cfg/udhcpc.script"

  # dhclient -6 hook: adds the address only -- never touches /etc/resolv.conf
  cat > "$RIG_DIR/cfg/dhclient6.script" <<'EOF'
#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    [ -n "$new_ip6_address" ] && ip -6 addr replace "$new_ip6_address/${new_ip6_prefixlen:-128}" dev "$interface" nodad
    echo "$(date +%s) $reason $new_ip6_address" ;;
esac
exit 0
EOF
  chmod 0755 "$RIG_DIR/cfg/dhclient6.script"
  # DHCPv6 carries the hostname in the client FQDN option (dnsmasq -> leaseshelper "hostname")
  for n in "$RIG_GUEST_NAME" "$RIG_DOMAIN_HOSTNAME"; do
    printf 'send fqdn.fqdn "%s";\nsend fqdn.server-update off;\ntimeout %s;\n' "$n" "$RIG_TIMEOUT" \
      > "$RIG_DIR/cfg/dhclient6-$n.conf"
  done

  # runs inside the new mount ns (already inside netns $NS_HOST); $1 = RIG_DIR
  cat > "$RIG_DIR/cfg/mnt-setup.sh" <<'EOF'
set -e
R=$1
fields() { awk '{ split($0, a, " - "); split(a[1], f, " "); split(a[2], b, " "); print f[5], b[1] }' /proc/self/mountinfo; }
# drop the copies of namespace bind mounts (e.g. other /run/netns/* entries): they would
# pin those namespaces for as long as the rig lives
for m in $(fields | awk '$2 == "nsfs" { print $1 }'); do umount -l "$m" 2>/dev/null || true; done
mkdir -p "$R/.cg"
mount --rbind /sys/fs/cgroup "$R/.cg"      # keep the cgroup tree,
umount -l /sys                             # drop the sysfs of the host netns,
mount -t sysfs sysfs /sys                  # mount one showing OUR netns,
mount --move "$R/.cg" /sys/fs/cgroup       # put the cgroup tree back.
# hybrid v1+v2 host: hide cgroup2 "unified" -- libvirt 9.0 LXC fails with it
# ("Unable to create directory /sys/fs/cgroup/unified"); pure v2 keeps its cgroup2.
if fields | awk '$2 == "cgroup" { f = 1 } END { exit !f }'; then
  for m in $(fields | awk '$2 == "cgroup2" { print $1 }'); do umount "$m"; done
fi
for m in $(fields | awk '$1 == "/run" || $1 ~ "^/run/" { print $1 }' | sort -r); do umount -l "$m" 2>/dev/null || true; done
mount -t tmpfs -o mode=0755 rig-run /run   # private /run: no host dbus/firewalld, pidfiles
mkdir -p /run/libvirt /run/lock
# bind targets that the host lacks (libvirt-daemon alone does not create /var/lib/libvirt
# etc.; libvirt-daemon-system does) are made inside this namespace only: the parent is
# shadowed by a tmpfs holding bind mounts of all its real entries plus the new directory.
# (Creating them on the host and removing them at "down" is not an option: since Linux 3.18
# an rmdir on the host silently detaches another rig's mount on that directory.)
n=0
for d in /etc/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
  [ -d "$d" ] && continue
  p=${d%/*}; n=$((n + 1)); s=$R/.shadow$n
  mkdir -p "$s"; mount --rbind "$p" "$s"; mount --make-rprivate "$s"
  mount -t tmpfs -o mode=0755 rig-shadow "$p"
  for e in "$s"/* "$s"/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    t=$p/${e##*/}
    if [ -L "$e" ]; then cp -P "$e" "$t"
    elif [ -d "$e" ]; then mkdir "$t"; mount --rbind "$e" "$t"
    else : > "$t"; mount --bind "$e" "$t"; fi
  done
  mkdir "$d"
  umount -l "$s"
done
mount --bind "$R/run"   /run/libvirt
mount --bind "$R/etc"   /etc/libvirt
mount --bind "$R/lib"   /var/lib/libvirt
mount --bind "$R/log"   /var/log/libvirt
mount --bind "$R/cache" /var/cache/libvirt
# what makes ordinary programs (getent, ssh) of the rig use the NSS modules, and keeps ssh
# away from the host's /root/.ssh: a private nsswitch.conf and a private home for root
mount --bind "$R/cfg/nsswitch.conf" /etc/nsswitch.conf
# libvirt's QEMU driver refuses to start without its user (created by libvirt-daemon-system,
# which the rig does not need): private passwd/group copies carry it if the host lacks it
[ -s "$R/cfg/passwd" ] && mount --bind "$R/cfg/passwd" /etc/passwd
[ -s "$R/cfg/group" ] && mount --bind "$R/cfg/group" /etc/group
mount --bind "$R/home" /root
mkdir -p /run/sshd && chmod 0755 /run/sshd   # sshd's privilege separation dir (private /run)
EOF

  local fwd="" opts="" ip6="" n
  [ "$IPV6" = 1 ] && ip6="<ip family='ipv6' address='$RIG_SUBNET6::1' prefix='64'><dhcp><range start='$RIG_SUBNET6::100' end='$RIG_SUBNET6::1ff'/></dhcp></ip>"
  case "$RIG_FORWARD" in nat) fwd="<forward mode='nat'/>";; open) fwd="<forward mode='open'/>";; esac
  # dnsmasq pings an address (~3 s) before offering it; libvirt's dnsmasq XML namespace
  # can pass "no-ping" through (the lease files libvirt writes are unchanged)
  [ "$RIG_NO_PING" = 1 ] && opts="<dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options>"
  cat > "$RIG_DIR/cfg/network.xml" <<EOF
<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>$RIG_NETWORK</name>
  $fwd
  <bridge name='$RIG_BRIDGE' stp='off' delay='0'/>
  <mac address='52:54:00:00:00:fe'/>
  <domain name='rig.test' localOnly='yes'/>
  <ip address='$RIG_SUBNET.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='$RIG_SUBNET.100' end='$RIG_SUBNET.200'/>
    </dhcp>
  </ip>
  $ip6
  $opts
</network>
EOF
  # init of the LXC domain (an "application container" sharing the host root fs):
  # busybox udhcpc, plus dhclient -6 once eth0's link-local address has passed DAD
  cat > "$RIG_DIR/cfg/lxc-init.sh" <<'EOF'
# $1 = DHCP hostname, $2 = rig dir, $3 = IPv6 (0|1), $4 = domain name, $5 = 1: start sshd
PATH=/usr/sbin:/usr/bin:/sbin:/bin
hostname "$4"   # the container has its own UTS namespace: "ssh <domain> hostname" shows it
if [ "$5" = 1 ]; then
  mkdir -p /run/sshd
  /usr/sbin/sshd -f "$2/ssh/sshd_config-domain" -E "$2/log/sshd-domain.log"
fi
busybox udhcpc -f -i eth0 -x "hostname:$1" -T 1 -A 1 -s "$2/cfg/udhcpc.script" >>"$2/log/domain-udhcpc.log" 2>&1 &
if [ "$3" = 1 ]; then
  (
    i=0
    until ip -6 addr show dev eth0 scope link -tentative | grep -q inet6 || [ $i -ge 100 ]; do
      sleep 0.1; i=$((i + 1))
    done
    exec dhclient -6 -d -D LL -cf "$2/cfg/dhclient6-$1.conf" -sf "$2/cfg/dhclient6.script" \
         -pf "$2/run/domain-dhclient6.pid" -lf "$2/lib/domain-dhclient6.leases" eth0
  ) >>"$2/log/domain-dhclient6.log" 2>&1 &
fi
wait
EOF
  cat > "$RIG_DIR/cfg/domain.xml" <<EOF
<domain type='lxc'>
  <name>$RIG_DOMAIN_NAME</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type>exe</type>
    <init>/bin/busybox</init>
    <initarg>sh</initarg>
    <initarg>$RIG_DIR/cfg/lxc-init.sh</initarg>
    <initarg>$RIG_DOMAIN_HOSTNAME</initarg>
    <initarg>$RIG_DIR</initarg>
    <initarg>$IPV6</initarg>
    <initarg>$RIG_DOMAIN_NAME</initarg>
    <initarg>$RIG_SSH</initarg>
  </os>
  <devices>
    <console type='pty'/>
    <interface type='network'>
      <source network='$RIG_NETWORK'/>
      <mac address='$RIG_DOMAIN_MAC'/>
    </interface>
  </devices>
</domain>
EOF
  # QEMU (TCG by default) direct kernel boot; the initrd's /init runs udhcpc with the
  # hostname given as rig.hostname= on the kernel command line
  cat > "$RIG_DIR/cfg/qemu-domain.xml" <<EOF
<domain type='$RIG_QEMU_ACCEL'>
  <name>$RIG_DOMAIN_NAME</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$RIG_QEMU_KERNEL</kernel>
    <initrd>$RIG_QEMU_INITRD</initrd>
    <cmdline>console=ttyS0 panic=-1 rig.hostname=$RIG_DOMAIN_HOSTNAME</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <interface type='network'>
      <source network='$RIG_NETWORK'/>
      <mac address='$RIG_DOMAIN_MAC'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='/var/log/libvirt/qemu/$RIG_DOMAIN_NAME-serial.log'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
EOF
  cat > "$RIG_DIR/cfg/port.xml" <<EOF
<networkport>
  <uuid>$(cat /proc/sys/kernel/random/uuid)</uuid>
  <owner><name>$RIG_DOMAIN_NAME</name><uuid>$(cat /proc/sys/kernel/random/uuid)</uuid></owner>
  <mac address='$RIG_DOMAIN_MAC'/>
</networkport>
EOF
}

write_ssh_configs() {  # keys + configs in $RIG_DIR/ssh, client config in the rig's /root/.ssh
  local S=$RIG_DIR/ssh n
  mkdir -p "$S" "$RIG_DIR/home/.ssh"; chmod 0700 "$S" "$RIG_DIR/home/.ssh"
  ssh-keygen -q -t ed25519 -N '' -C "rig-$RIG_NAME-client" -f "$RIG_DIR/home/.ssh/id_ed25519" </dev/null \
    || die "ssh-keygen failed"
  cp "$RIG_DIR/home/.ssh/id_ed25519.pub" "$S/authorized_keys"
  : > "$RIG_DIR/home/.ssh/known_hosts"
  for n in guest domain; do
    ssh-keygen -q -t ed25519 -N '' -C "rig-$RIG_NAME-$n" -f "$S/host_$n" </dev/null || die "ssh-keygen failed"
    cat > "$S/sshd_config-$n" <<EOF
# sshd of the rig's $n: own host key, own authorized_keys; nothing from /etc/ssh
ListenAddress 0.0.0.0
ListenAddress ::
HostKey $S/host_$n
AuthorizedKeysFile $S/authorized_keys
PidFile $RIG_DIR/run/sshd-$n.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# authorized_keys lives under RIG_DIR, typically below the world-writable /tmp
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
LogLevel VERBOSE
EOF
  done
  # the host key of each guest is known under the names it must be reached by, so
  # "StrictHostKeyChecking yes" also proves that the right guest answered
  printf '%s %s\n' "$RIG_GUEST_NAME" "$(cut -d' ' -f1,2 "$S/host_guest.pub")" >> "$RIG_DIR/home/.ssh/known_hosts"
  printf '%s,%s %s\n' "$RIG_DOMAIN_NAME" "$RIG_DOMAIN_HOSTNAME" "$(cut -d' ' -f1,2 "$S/host_domain.pub")" >> "$RIG_DIR/home/.ssh/known_hosts"
  cat > "$RIG_DIR/home/.ssh/config" <<EOF
# ssh client of the rig (the rig's /root/.ssh is $RIG_DIR/home/.ssh)
Host *
  User root
  IdentityFile ~/.ssh/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile ~/.ssh/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
EOF
  chmod 0600 "$RIG_DIR/home/.ssh/config"
}

start_sshd() {  # start_sshd NETNS_PATH HOSTNAME guest|domain : sshd in its own UTS namespace
  nsenter --mount="$MNTNS" --net="$1" -- unshare --uts -- /bin/sh -c \
    'hostname "$1" && exec /usr/sbin/sshd -f "$2" -E "$3"' sh "$2" "$RIG_DIR/ssh/sshd_config-$3" \
    "$RIG_DIR/log/sshd-$3.log" </dev/null 9>&- || { tail_logs; die "sshd of the $3 failed to start"; }
}

ssh_ready() {  # ssh_ready ADDRESS : something accepts TCP connections on ADDRESS:22
  nsenter --net="/run/netns/$NS_HOST" -- timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/22"' sh "$1"
}

netns_guest() {  # netns_guest NETNS VETH MAC : netns with eth0 (MAC) veth'ed into the bridge
  local ns=$1 veth=$2 mac=$3
  ip netns add "$ns" || die "ip netns add $ns failed"
  # no IPv6 DAD on the guest side: dhclient -6 can start at once
  [ "$IPV6" = 1 ] && nsenter --net="/run/netns/$ns" -- sysctl -qw \
    net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 >/dev/null
  ip -n "$NS_HOST" link add "$veth" type veth peer name eth0 netns "$ns" \
    || die "cannot create veth pair $veth (kernel veth support?)"
  ip -n "$ns" link set eth0 address "$mac"
  ip -n "$NS_HOST" link set "$veth" master "$RIG_BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
}

dhcp_in_netns() {  # dhcp_in_netns NETNS HOSTNAME PIDFILE LOG  (blocks until bound or failed)
  # nsenter, not "ip netns exec": the latter would give the daemon a private copy of the
  # host's mount table (pinning every netns mounted under /run/netns). udhcpc stays in
  # the foreground until a lease is bound (-n: give up after -t tries), then daemonizes
  # and keeps renewing; fd 9 (our lock) must not leak into the daemon.
  nsenter --net="/run/netns/$1" -- busybox udhcpc -i eth0 -x "hostname:$2" \
      -s "$RIG_DIR/cfg/udhcpc.script" -p "$3" -t "$RIG_TIMEOUT" -T 1 -A 1 -n \
      </dev/null >>"$4" 2>&1 9>&-
}

dhcp6_in_netns() {  # dhcp6_in_netns NETNS HOSTNAME TAG  (blocks until bound or failed)
  # -1: one attempt (bounded by "timeout" in the conf), then dhclient daemonizes and renews
  nsenter --net="/run/netns/$1" -- dhclient -6 -1 -D LL -cf "$RIG_DIR/cfg/dhclient6-$2.conf" \
      -sf "$RIG_DIR/cfg/dhclient6.script" -pf "$RIG_DIR/run/$3-dhclient6.pid" \
      -lf "$RIG_DIR/lib/$3-dhclient6.leases" eth0 </dev/null >>"$RIG_DIR/log/$3-dhclient6.log" 2>&1 9>&-
}

wait_guest() {
  wait "$GJOB" || { tail_logs; die "DHCP in netns $NS_GUEST failed (see $RIG_DIR/log/guest-udhcpc.log)"; }
  wait_for "$RIG_TIMEOUT" "lease of $RIG_GUEST_MAC in $LEASE_DIR/$RIG_BRIDGE.status" lease_ip "$RIG_GUEST_MAC"
}

do_up() {
  preflight
  if healthy; then log "rig already up and healthy"; cat "$STATE"; return 0; fi
  if [ -e "$RIG_DIR" ] || netns_exists "$NS_HOST" || netns_exists "$NS_GUEST" || netns_exists "$NS_GUEST2"; then
    log "existing rig is stale, partial or differently configured (${UNHEALTHY:-partial}) -> tearing it down first"
    do_down
  fi
  local t d; t=$(date +%s.%N)
  UP_STARTED=1
  write_configs
  : > "$RIG_DIR/cgroups-created"
  for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [ -d "${d}machine" ] || echo "${d}machine" >> "$RIG_DIR/cgroups-created"
  done

  log "netns $NS_HOST + private mount namespace $MNTNS"
  ip netns add "$NS_HOST" || die "ip netns add $NS_HOST failed"
  ip -n "$NS_HOST" link set lo up
  { mount --bind "$RIG_DIR" "$RIG_DIR" && mount --make-private "$RIG_DIR"; } \
    || die "cannot make $RIG_DIR a private bind mount"
  : > "$MNTNS"
  nsenter --net="/run/netns/$NS_HOST" -- unshare --mount="$MNTNS" --propagation private \
    /bin/sh "$RIG_DIR/cfg/mnt-setup.sh" "$RIG_DIR" || die "mount namespace setup failed"
  nss_install

  log "starting libvirtd"
  nsenter --mount="$MNTNS" --net="/run/netns/$NS_HOST" -- env -i PATH="$PATH" LC_ALL=C \
      libvirtd --daemon --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirt/libvirtd.pid \
      </dev/null >>"$RIG_DIR/log/libvirtd.stdio" 2>&1 9>&- \
    || { tail_logs; die "libvirtd failed to start"; }
  wait_for 20 "libvirtd socket $RIG_DIR/run/libvirt-sock" V version
  log "libvirtd up (pid $(libvirtd_pid))"

  log "network $RIG_NETWORK: bridge $RIG_BRIDGE, $RIG_SUBNET.0/24$([ "$IPV6" = 1 ] && echo " + $RIG_SUBNET6::/64"), forward=$RIG_FORWARD"
  V net-create "$RIG_DIR/cfg/network.xml" >/dev/null 9>&- || { tail_logs; die "virsh net-create failed"; }
  wait_for 10 "dnsmasq of network $RIG_NETWORK" test -s "$RIG_DIR/run/network/$RIG_NETWORK.pid"

  log "guest netns $NS_GUEST: DHCP hostname '$RIG_GUEST_NAME', MAC $RIG_GUEST_MAC"
  netns_guest "$NS_GUEST" "$VETH" "$RIG_GUEST_MAC"
  dhcp_in_netns "$NS_GUEST" "$RIG_GUEST_NAME" "$RIG_DIR/run/guest-udhcpc.pid" "$RIG_DIR/log/guest-udhcpc.log" &
  GJOB=$!
  # stock dnsmasq pings an address for ~3 s before offering it and is deaf to all other
  # DHCP packets meanwhile (a parallel client's REQUEST times out) -> serialize the clients
  # unless no-ping is on
  [ "$RIG_NO_PING" = 1 ] || wait_guest
  if [ "$IPV6" = 1 ]; then
    dhcp6_in_netns "$NS_GUEST" "$RIG_GUEST_NAME" guest &
    G6JOB=$!
  fi

  case "$RIG_DOMAIN_MODE" in
    lxc)
      log "LXC domain $RIG_DOMAIN_NAME: MAC $RIG_DOMAIN_MAC, DHCP hostname '$RIG_DOMAIN_HOSTNAME'"
      V create "$RIG_DIR/cfg/domain.xml" >/dev/null 9>&- \
        || { tail_logs; die "LXC domain failed to start (RIG_DOMAIN_MODE=port avoids LXC)"; }
      wait_for "$RIG_TIMEOUT" "lease of domain MAC $RIG_DOMAIN_MAC" lease_ip "$RIG_DOMAIN_MAC"
      ;;
    qemu)
      log "QEMU domain $RIG_DOMAIN_NAME (type=$RIG_QEMU_ACCEL): MAC $RIG_DOMAIN_MAC, DHCP hostname '$RIG_DOMAIN_HOSTNAME'"
      V create "$RIG_DIR/cfg/qemu-domain.xml" >/dev/null 9>&- \
        || { tail_logs; die "QEMU domain failed to start (see $RIG_DIR/log/qemu/)"; }
      wait_for "$RIG_TIMEOUT" "lease of domain MAC $RIG_DOMAIN_MAC (serial console: $RIG_DIR/log/qemu/$RIG_DOMAIN_NAME-serial.log)" \
        lease_ip "$RIG_DOMAIN_MAC"
      ;;
    port)
      # no domain: a network port owned by "$RIG_DOMAIN_NAME" makes libvirt write the
      # .macs entry; a second netns with that MAC takes the DHCP lease
      log "port mode: network port owned by '$RIG_DOMAIN_NAME' + netns $NS_GUEST2 DHCP"
      V net-port-create "$RIG_NETWORK" "$RIG_DIR/cfg/port.xml" >/dev/null 9>&- \
        || { tail_logs; die "virsh net-port-create failed"; }
      netns_guest "$NS_GUEST2" "$VETH2" "$RIG_DOMAIN_MAC"
      [ "$IPV6" = 1 ] && { dhcp6_in_netns "$NS_GUEST2" "$RIG_DOMAIN_HOSTNAME" domain & D6JOB=$!; }
      dhcp_in_netns "$NS_GUEST2" "$RIG_DOMAIN_HOSTNAME" "$RIG_DIR/run/g2-udhcpc.pid" "$RIG_DIR/log/domain-udhcpc.log" \
        || { tail_logs; die "DHCP in netns $NS_GUEST2 failed"; }
      [ -z "${D6JOB:-}" ] || wait "$D6JOB" || { tail_logs; die "DHCPv6 in netns $NS_GUEST2 failed"; }
      wait_for "$RIG_TIMEOUT" "lease of $RIG_DOMAIN_MAC" lease_ip "$RIG_DOMAIN_MAC"
      ;;
  esac
  [ "$RIG_NO_PING" != 1 ] || wait_guest
  if [ "$IPV6" = 1 ]; then
    wait "$G6JOB" || { tail_logs; die "DHCPv6 in netns $NS_GUEST failed (see $RIG_DIR/log/guest-dhclient6.log)"; }
    wait_for "$RIG_TIMEOUT" "IPv6 lease of $RIG_GUEST_MAC" lease_ip6 "$RIG_GUEST_MAC"
    if domain_has_v6; then
      wait_for "$RIG_TIMEOUT" "IPv6 lease of domain MAC $RIG_DOMAIN_MAC" lease_ip6 "$RIG_DOMAIN_MAC"
    fi
  fi
  if [ "$RIG_DOMAIN_MODE" != none ]; then
    macs_has_domain || { tail_logs; die "libvirt did not write '$RIG_DOMAIN_NAME' into $LEASE_DIR/$RIG_BRIDGE.macs"; }
  fi
  if [ "$RIG_SSH" = 1 ]; then
    log "sshd in $NS_GUEST (hostname $RIG_GUEST_NAME)$( [ "$RIG_DOMAIN_MODE" = lxc ] && echo " and in domain $RIG_DOMAIN_NAME")$( [ "$RIG_DOMAIN_MODE" = port ] && echo " and in $NS_GUEST2 (hostname $RIG_DOMAIN_NAME)")"
    start_sshd "/run/netns/$NS_GUEST" "$RIG_GUEST_NAME" guest
    [ "$RIG_DOMAIN_MODE" = port ] && start_sshd "/run/netns/$NS_GUEST2" "$RIG_DOMAIN_NAME" domain
    wait_for 10 "sshd of the guest on $(lease_ip "$RIG_GUEST_MAC"):22" ssh_ready "$(lease_ip "$RIG_GUEST_MAC")"
    case "$RIG_DOMAIN_MODE" in lxc|port)
      wait_for 10 "sshd of the domain on $(lease_ip "$RIG_DOMAIN_MAC"):22" ssh_ready "$(lease_ip "$RIG_DOMAIN_MAC")" ;;
    esac
  fi

  local gip dip="" gip6="" dip6="" gw6=""
  gip=$(lease_ip "$RIG_GUEST_MAC")
  [ "$RIG_DOMAIN_MODE" = none ] || dip=$(lease_ip "$RIG_DOMAIN_MAC")
  if [ "$IPV6" = 1 ]; then
    gw6=$RIG_SUBNET6::1; gip6=$(lease_ip6 "$RIG_GUEST_MAC")
    domain_has_v6 && dip6=$(lease_ip6 "$RIG_DOMAIN_MAC")
  fi
  cat > "$STATE" <<EOF
RIG_DIR=$RIG_DIR
RIG_LEASE_DIR=$LEASE_DIR
RIG_STATUS_FILE=$LEASE_DIR/$RIG_BRIDGE.status
RIG_MACS_FILE=$LEASE_DIR/$RIG_BRIDGE.macs
RIG_MOUNT_NS=$MNTNS
RIG_NET_NS=/run/netns/$NS_HOST
RIG_URI='$URI'
RIG_NETWORK=$RIG_NETWORK
RIG_BRIDGE=$RIG_BRIDGE
RIG_GATEWAY=$RIG_SUBNET.1
RIG_IPV6=$IPV6
RIG_GATEWAY6=$gw6
RIG_GUEST_NAME=$RIG_GUEST_NAME
RIG_GUEST_IP=$gip
RIG_GUEST_MAC=$RIG_GUEST_MAC
RIG_GUEST_IP6=$gip6
RIG_DOMAIN_MODE=$RIG_DOMAIN_MODE
RIG_DOMAIN_NAME=$RIG_DOMAIN_NAME
RIG_DOMAIN_HOSTNAME=$RIG_DOMAIN_HOSTNAME
RIG_DOMAIN_IP=$dip
RIG_DOMAIN_MAC=$RIG_DOMAIN_MAC
RIG_DOMAIN_IP6=$dip6
RIG_NSS=$NSS_KIND
RIG_NSS_SO=$NSS_SRC_MAIN
RIG_SSH=$RIG_SSH
RIG_HOOKS=$RIG_DIR/etc/hooks
RIG_NAME=$RIG_NAME
RIG_NETNS_HOST=$NS_HOST
RIG_NETNS_GUEST=$NS_GUEST
EOF
  [ "$RIG_CHECK" = 1 ] && self_check
  log "up in $(elapsed "$t")s"
  cat "$STATE"
}

self_check() {
  # 1. the rig itself: Debian's stock modules (binds hidden) must see exactly the leases
  nss_expect debian libvirt ahostsv4 "$RIG_GUEST_NAME" "$gip"
  [ "$IPV6" = 1 ] && nss_expect debian libvirt ahostsv6 "$RIG_GUEST_NAME" "$gip6"
  if [ "$RIG_DOMAIN_MODE" != none ]; then
    nss_expect debian libvirt_guest ahostsv4 "$RIG_DOMAIN_NAME" "$dip"
    [ -z "$dip6" ] || nss_expect debian libvirt_guest ahostsv6 "$RIG_DOMAIN_NAME" "$dip6"
  fi
  # 2. the installed module through the rig's nsswitch.conf; only a warning, so that a
  #    broken module under development does not take the rig away from the other tests
  if [ "$NSS_KIND" = ours ]; then
    nss_expect ours "" ahostsv4 "$RIG_GUEST_NAME" "$gip" || true
    if [ "$RIG_DOMAIN_MODE" != none ]; then nss_expect ours "" ahostsv4 "$RIG_DOMAIN_NAME" "$dip" || true; fi
  fi
  return 0
}

# nss_expect debian|ours SERVICE|"" DB NAME EXPECTED_ADDRESS : first address getent prints
nss_expect() {
  local got src=${2:+-s hosts:$2}
  # shellcheck disable=SC2086
  got=$(rig_exec "$1" getent $src "$3" "$4" 2>/dev/null | awk 'NR == 1 { print $1 }') || true
  if [ "$got" != "$5" ]; then
    [ "$1" = debian ] || { warn "our module: getent ${2:+-s hosts:$2 }$3 $4 gave '$got', lease says '$5'"; return 1; }
    die "reference check failed: Debian's module: getent ${2:+-s hosts:$2 }$3 $4 gave '$got', lease says '$5'"
  fi
  log "$(printf '%-6s %-22s %-8s %-10s -> %s' "$1" "${2:+hosts:$2}" "$3" "$4" "$got")"
}

rig_exec() {  # rig_exec ours|debian|"" CMD... : CMD in a throw-away child of the rig's mount ns
  local view=$1; shift
  nsenter --mount="$MNTNS" --net="/run/netns/$NS_HOST" -- \
    unshare --mount --propagation private -- /bin/sh -c '
      if [ "$1" = debian ]; then   # uncover Debian s stock modules for this command only
        for t in "$2" "$3"; do while mountpoint -q "$t"; do umount "$t" || exit 125; done; done
      fi
      shift 3; exec "$@"' sh "$view" "$NSS_SYS_MAIN" "$NSS_SYS_GUEST" "$@"
}

# ---------------------------------------------------------------- main
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
cmd=${1:-}; [ $# -gt 0 ] && shift
case "$cmd" in
  up|down)
    [ "$(id -u)" = 0 ] || die "must run as root (creates netns / mount ns, runs libvirtd)"
    check_dir_safe
    LOCK=${RIG_DIR%/}.lock
    # "down" removes the lock file while holding it; a waiter that then gets the lock on the
    # removed file must retry on the current one (compare the inodes)
    while :; do
      exec 9>"$LOCK"
      flock -w 300 9 || die "another rig.sh holds $LOCK"
      [ "$(stat -L -c %i /proc/self/fd/9)" = "$(stat -c %i "$LOCK" 2>/dev/null)" ] && break
    done
    UP_STARTED=0
    # shellcheck disable=SC2154  # rc is assigned inside the trap string
    trap 'rc=$?
          if [ $rc != 0 ] && [ "$cmd" = up ] && [ "$UP_STARTED" = 1 ]; then
            warn "up failed (rc=$rc): tearing down, keeping $RIG_DIR for inspection (logs in $RIG_DIR/log)"
            set +e; RIG_KEEP=1 do_down; exit $rc
          fi' EXIT
    "do_$cmd" ;;
  status) if healthy; then cat "$STATE"; else echo "rig $RIG_NAME is not up (or not healthy)" >&2; exit 1; fi ;;
  env)    [ -s "$STATE" ] && cat "$STATE" || die "rig $RIG_NAME is not up ($STATE missing)" ;;
  exec)   [ $# -gt 0 ] || die "usage: $0 exec CMD [ARGS...]"
          mountpoint -q "$MNTNS" 2>/dev/null || die "rig $RIG_NAME is not up"
          case "${RIG_EXEC_NSS:-}" in ""|installed) view="" ;; debian) view=debian ;;
            *) die "RIG_EXEC_NSS must be debian or installed (got '$RIG_EXEC_NSS')" ;; esac
          NSS_SYS_MAIN=$(nss_system_path libvirt) || die "libnss_libvirt.so.2 missing (libnss-libvirt)"
          NSS_SYS_GUEST=$(nss_system_path libvirt_guest) || die "libnss_libvirt_guest.so.2 missing (libnss-libvirt)"
          rig_exec "$view" "$@" ;;
  guest-exec)
          [ $# -gt 0 ] || die "usage: $0 guest-exec CMD [ARGS...]"
          netns_exists "$NS_GUEST" || die "rig $RIG_NAME is not up (no netns $NS_GUEST)"
          exec nsenter --net="/run/netns/$NS_GUEST" -- "$@" ;;
  nss)    mountpoint -q "$MNTNS" 2>/dev/null || die "rig $RIG_NAME is not up"
          nss_resolve_module "${1:-$RIG_NSS}" "${2:-$RIG_NSS_SO}"
          nss_install
          sed -i -e "s|^RIG_NSS=.*|RIG_NSS=$NSS_KIND|" -e "s|^RIG_NSS_SO=.*|RIG_NSS_SO=$NSS_SRC_MAIN|" "$STATE" ;;
  virsh)  exec virsh -c "$URI" "$@" ;;
  help|-h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
