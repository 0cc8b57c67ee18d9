#!/bin/bash
# nss-e2e.sh -- end-to-end tests of the NSS module against a REAL libvirt (tests/e2e/rig.sh).
#
# Brings up its own rig (RIG_NAME=e2e<pid>), with our module bound over the system's
# libnss_libvirt{,_guest}.so.2 and "hosts: files libvirt libvirt_guest", and checks what
# ordinary programs (getent, ssh) get, against what libvirt itself wrote in the lease files
# (read independently by leases.py). Tears the rig down at the end, also on failure.
#
#   E2E_NSS=ours|debian   module under test (default ours; debian = Debian's stock module,
#                         to develop the tests; tests of what only ours does are then SKIPPED)
#   RIG_NSS_SO=PATH       our module (default: what rig.sh finds in the release dir)
#   E2E_KEEP=1            leave the rig up afterwards (it prints how to take it down)
#   E2E_EXPIRY=0          skip the lease-expiry test (it waits for a 2-minute lease to run out)
#
# Prints one line per check and "N passed, M failed, K skipped"; exit 1 if any failed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RIG=$HERE/rig.sh
LEASES=$HERE/leases.py
# a name per run: two `make check` on one machine must not share (and tear down) one rig
export RIG_NAME=${RIG_NAME:-e2e$$}
E2E_NSS=${E2E_NSS:-ours}
E2E_KEEP=${E2E_KEEP:-0}
E2E_EXPIRY=${E2E_EXPIRY:-1}
case "$E2E_NSS" in ours|debian) ;; *) echo "nss-e2e: E2E_NSS must be ours or debian" >&2; exit 2;; esac
[ "$(id -u)" = 0 ] || { echo "nss-e2e: must run as root (the rig needs namespaces); CI runs as root" >&2; exit 1; }

PASS=0 FAIL=0 SKIP=0 N=0
T0=$(date +%s)
pass() { N=$((N + 1)); PASS=$((PASS + 1)); printf 'ok      %2d  %s\n' "$N" "$1"; }
fail() { N=$((N + 1)); FAIL=$((FAIL + 1)); printf 'FAIL    %2d  %s\n' "$N" "$1"; printf '            %s\n' "${@:2}"; }
skip() { N=$((N + 1)); SKIP=$((SKIP + 1)); printf 'SKIPPED %2d  %s (%s)\n' "$N" "$1" "$2"; }
section() { printf '\n## %s\n' "$*"; }

finish() {
  local rc=$?
  # the netns of the expiring guest is ours, not the rig's
  if [ -n "${XNS_MADE:-}" ] && [ -e "/run/netns/$XNS" ]; then ip netns del "$XNS" || true; fi
  if [ "$E2E_KEEP" = 1 ]; then
    [ -e "$RIG_DIR/mntns" ] && echo "nss-e2e: rig left up (E2E_KEEP=1): RIG_NAME=$RIG_NAME $RIG down"
  else
    "$RIG" down >/dev/null 2>&1 || echo "nss-e2e: WARNING: '$RIG down' failed; run it again" >&2
    rm -f "${RIG_DIR:-/tmp/vhk-rig-$RIG_NAME}.lock"   # the name is this run's alone
  fi
  [ "$rc" = 0 ] || [ "$FAIL" -gt 0 ] || { echo "nss-e2e: aborted (rc=$rc) after $N checks"; FAIL=$((FAIL + 1)); }
  printf '\nnss-e2e (module: %s): %d passed, %d failed, %d skipped in %d s\n' \
    "$E2E_NSS" "$PASS" "$FAIL" "$SKIP" $(( $(date +%s) - T0 ))
  [ "$FAIL" = 0 ] && exit 0 || exit 1
}
trap finish EXIT

# ---------------------------------------------------------------- helpers
# rx VIEW CMD... : CMD on the rig's libvirt host; VIEW ours = the installed module, debian =
# Debian's stock module for this one command
rx() { local v=$1; shift; if [ "$v" = debian ]; then RIG_EXEC_NSS=debian "$RIG" exec "$@"; else "$RIG" exec "$@"; fi; }

# answers VIEW SERVICE|"" DB NAME -> sorted unique addresses getent prints ("" = nsswitch.conf)
answers() { rx "$1" getent ${2:+-s "hosts:$2"} "$3" "$4" 2>/dev/null | awk '{ print $1 }' | sort -u; }

# leased hostname|domain NAME 4|6|any -> what libvirt's files say (sorted), never empty on success
leased() { "$LEASES" "$RIG_LEASE_DIR" "$@" | sort -u; }

# same DESC EXPECTED ACTUAL : pass if equal and EXPECTED is not empty
same() {
  if [ -z "$2" ]; then fail "$1" "nothing to compare: the lease files have no matching live lease"
  elif [ "$2" = "$3" ]; then pass "$1 -> $(echo $3)"
  else fail "$1" "expected: $(echo $2)" "got:      $(echo ${3:-<nothing>})"
  fi
}

# fails DESC CMD... : pass if CMD exits non-zero
fails() {
  local desc=$1 out rc=0; shift
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" != 0 ]; then pass "$desc (exit $rc)"; else fail "$desc" "unexpectedly succeeded: $(echo $out)"; fi
}

wait_until() {  # wait_until SECONDS CMD... : poll until CMD succeeds
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.2; done
}

# ---------------------------------------------------------------- rig
# what the host looks like before: the rig must leave all of it as it was
host_state() {  # only what the rig could touch: the machine is shared with other work
  {
    iptables-save 2>/dev/null | grep -v '^#'; ip6tables-save 2>/dev/null | grep -v '^#'
    sha256sum /etc/nsswitch.conf "$(readlink -f /usr/lib/*/libnss_libvirt.so.2)" \
      "$(readlink -f /usr/lib/*/libnss_libvirt_guest.so.2)" 2>&1
    getent passwd libvirt-qemu; getent group libvirt-qemu
    find /root/.ssh /etc/ssh -type f -exec sha256sum {} + 2>&1 | sort
    ls -A /etc/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /run/libvirt /run/sshd 2>&1
    # links and mounts of THIS rig only: other rigs may come and go meanwhile
    ip -o link show | awk '{ print $2 }' | grep "^$RIG_NAME" || true
    awk '{ print $5 }' /proc/self/mountinfo | grep -e "^/tmp/vhk-rig-$RIG_NAME" -e "^${RIG_DIR:-/tmp/vhk-rig-$RIG_NAME}" \
      -e "^/run/netns/$RIG_NAME-" -e '^/etc/' -e '^/root' -e libnss_libvirt -e '^/var/lib/libvirt' | sort
  } 2>&1
}
HOST_BEFORE=$(host_state)
echo "nss-e2e: bringing up rig '$RIG_NAME' (module: $E2E_NSS)"
FACTS=$(RIG_NSS=$E2E_NSS RIG_DOMAIN_MODE=lxc RIG_IPV6=1 RIG_SSH=1 "$RIG" up) \
  || { echo "nss-e2e: rig.sh up failed (messages above)"; exit 1; }
eval "$FACTS"
section "the rig"
again=$(RIG_NSS=$E2E_NSS RIG_DOMAIN_MODE=lxc RIG_IPV6=1 RIG_SSH=1 "$RIG" up 2>&1)
echo "$again" | grep -q "already up and healthy" && [ "$(echo "$again" | grep '^RIG_')" = "$FACTS" ] \
  && pass "rig.sh up again: already up and healthy, same facts" || fail "rig.sh up is idempotent" "$again"
[ "$RIG_NSS" = "$E2E_NSS" ] && pass "module installed in the rig: $RIG_NSS ${RIG_NSS_SO}" \
  || fail "module installed in the rig" "wanted $E2E_NSS, rig says $RIG_NSS"
if [ "$E2E_NSS" = ours ]; then
  n=$(rx ours sh -c 'cat /proc/self/mountinfo' | awk '$5 ~ /libnss_libvirt(_guest)?\.so\.2$/' | wc -l)
  [ "$n" = 2 ] && pass "our module is bind-mounted over both libnss_libvirt{,_guest}.so.2 in the rig" \
    || fail "our module bind-mounted over both system modules in the rig" "$n bind mounts found"
fi
G=$RIG_GUEST_NAME D=$RIG_DOMAIN_NAME DH=$RIG_DOMAIN_HOSTNAME
echo "nss-e2e: module ${RIG_NSS_SO:-debian}; guest $G ($RIG_GUEST_IP, $RIG_GUEST_IP6); domain $D / $DH ($RIG_DOMAIN_IP, $RIG_DOMAIN_IP6)"

# The expiry test needs a lease that really runs out: a static host with a 2-minute lease
# (dnsmasq's minimum), taken once by a client that never renews (udhcpc -q). It is set up
# first and checked last, so the wait overlaps the other tests.
XNAME=expguest XMAC=52:54:00:ee:00:01 XNS=${RIG_NAME}-gx XIP=${RIG_GATEWAY%.*}.250
expiry_setup() {
  "$RIG" virsh net-update "$RIG_NETWORK" add ip-dhcp-host \
    "<host mac='$XMAC' name='$XNAME' ip='$XIP'><lease expiry='2' unit='minutes'/></host>" --live >/dev/null \
    || return 1
  ip netns add "$XNS" || return 1
  ip -n "$RIG_NETNS_HOST" link add "${RIG_NAME}-vx" type veth peer name eth0 netns "$XNS" || return 1
  ip -n "$XNS" link set eth0 address "$XMAC" && ip -n "$XNS" link set eth0 up || return 1
  ip -n "$RIG_NETNS_HOST" link set "${RIG_NAME}-vx" master "$RIG_BRIDGE" up || return 1
  # -q: quit once bound, so nobody renews (and nobody releases) the lease
  nsenter --net="/run/netns/$XNS" -- busybox udhcpc -q -n -i eth0 -x "hostname:$XNAME" -t 20 -T 1 -A 1 \
    -s "$RIG_DIR/cfg/udhcpc.script" >"$RIG_DIR/log/expguest-udhcpc.log" 2>&1 </dev/null || return 1
  wait_until 10 "$LEASES" "$RIG_LEASE_DIR" hostname "$XNAME" 4
}
if [ "$E2E_EXPIRY" = 1 ]; then
  XNS_MADE=1
  expiry_setup || { echo "nss-e2e: could not set up the expiring lease (see $RIG_DIR/log/expguest-udhcpc.log)"; exit 1; }
fi

# ---------------------------------------------------------------- forward lookups
section "forward lookups through glibc (getent), module: $E2E_NSS"
for db in ahosts ahostsv4 ahostsv6; do
  fam=any; [ $db = ahostsv4 ] && fam=4; [ $db = ahostsv6 ] && fam=6
  same "getent -s hosts:libvirt $db $G (DHCP hostname)" "$(leased hostname "$G" $fam)" "$(answers ours libvirt $db "$G")"
  same "getent -s hosts:libvirt_guest $db $D (domain name)" "$(leased domain "$D" $fam)" "$(answers ours libvirt_guest $db "$D")"
done
same "getent ahosts $G (nsswitch: files libvirt libvirt_guest)" "$(leased hostname "$G" any)" "$(answers ours "" ahosts "$G")"
same "getent ahosts $D (nsswitch: files libvirt libvirt_guest)" "$(leased domain "$D" any)" "$(answers ours "" ahosts "$D")"
same "getent ahosts $DH (the domain's DHCP hostname, service libvirt)" "$(leased hostname "$DH" any)" "$(answers ours libvirt ahosts "$DH")"
same "getent ahosts ${D^^} (names are case-insensitive)" "$(leased domain "$D" any)" "$(answers ours libvirt_guest ahosts "${D^^}")"
# `getent hosts` goes through gethostbyname2/3: one family, the name as typed
out=$(rx ours getent -s hosts:libvirt_guest hosts "$D" 2>&1)
if echo "$out" | awk -v n="$D" 'NR == 1 && NF == 2 && $2 == n { ok = 1 } END { exit !ok }' \
   && leased domain "$D" any | grep -qxF "$(echo "$out" | awk 'NR == 1 { print $1 }')"; then
  pass "getent hosts $D -> $out"
else
  fail "getent hosts $D: one leased address and the name as typed" "got: $out"
fi
canon=$(rx ours getent -s hosts:libvirt ahostsv4 MyGuest 2>&1 | awk 'NR == 1 { print $3 }')
[ "$canon" = MyGuest ] && pass "canonical name is the query as typed (MyGuest)" \
  || fail "canonical name is the query as typed" "got '$canon'"
fails "getent -s hosts:libvirt ahosts nosuchguest: not found" rx ours getent -s hosts:libvirt ahosts nosuchguest
fails "getent -s hosts:libvirt_guest ahosts nosuchguest: not found" rx ours getent -s hosts:libvirt_guest ahosts nosuchguest
fails "a DHCP hostname is not a domain name: -s hosts:libvirt_guest $G" rx ours getent -s hosts:libvirt_guest ahosts "$G"

# NOTFOUND, not UNAVAIL, for an unknown name (spec: "[NOTFOUND=return]" must work; Debian's
# guest module returns UNAVAIL, so glibc goes on to "files" and finds localhost)
notfound_return() {  # VIEW : exit 0 if "libvirt_guest [NOTFOUND=return] files" stops at our module
  rx "$1" /bin/sh -c 'printf "hosts: libvirt_guest [NOTFOUND=return] files\n" > /tmp/.nss-e2e-nsswitch.$$ &&
    mount --bind /tmp/.nss-e2e-nsswitch.$$ /etc/nsswitch.conf && rm -f /tmp/.nss-e2e-nsswitch.$$ &&
    ! getent ahosts localhost >/dev/null'
}
if [ "$E2E_NSS" = ours ]; then
  notfound_return ours && pass "hosts: libvirt_guest [NOTFOUND=return] files: localhost is not looked up in files" \
    || fail "[NOTFOUND=return] after libvirt_guest" "an unknown name did not return NOTFOUND (glibc went on to 'files')"
else
  skip "[NOTFOUND=return] after libvirt_guest" "Debian's guest module returns UNAVAIL: a known defect"
fi

# ---------------------------------------------------------------- reverse lookups
section "reverse lookups (gethostbyaddr_r: ours only; Debian's module has none)"
reverse() {  # reverse SERVICE|"" ADDRESS EXPECTED-NAME
  local out
  out=$(rx ours getent ${1:+-s "hosts:$1"} hosts "$2" 2>&1)
  if [ "$(echo "$out" | awk 'NR == 1 { print $1 " " $2 }')" = "$2 $3" ]; then pass "getent ${1:+-s hosts:$1 }hosts $2 -> $3"
  else fail "getent ${1:+-s hosts:$1 }hosts $2 -> $3" "got: ${out:-<nothing>}"; fi
}
if [ "$E2E_NSS" = ours ]; then
  reverse libvirt "$RIG_GUEST_IP" "$G"
  reverse libvirt "$RIG_GUEST_IP6" "$G"
  reverse libvirt_guest "$RIG_DOMAIN_IP" "$D"
  reverse libvirt_guest "$RIG_DOMAIN_IP6" "$D"
  reverse "" "$RIG_GUEST_IP" "$G"
  reverse libvirt "$RIG_DOMAIN_IP" "$DH"
  fails "getent -s hosts:libvirt hosts $RIG_GATEWAY (not leased): not found" rx ours getent -s hosts:libvirt hosts "$RIG_GATEWAY"
else
  skip "reverse lookups" "Debian's module does not implement gethostbyaddr_r"
fi

# ---------------------------------------------------------------- agreement with Debian's module
section "agreement with Debian's libnss_libvirt{,_guest} on the same lease files"
if [ "$E2E_NSS" = ours ]; then
  for q in "libvirt ahosts $G" "libvirt ahostsv4 $G" "libvirt ahostsv6 $G" "libvirt ahosts $DH" \
           "libvirt_guest ahosts $D" "libvirt_guest ahostsv4 $D" "libvirt_guest ahostsv6 $D"; do
    set -- $q
    same "ours = Debian's: getent -s hosts:$1 $2 $3" "$(answers debian "$1" "$2" "$3")" "$(answers ours "$1" "$2" "$3")"
  done
else
  skip "agreement" "module under test is Debian's"
fi

# ---------------------------------------------------------------- ssh
section "ssh by name (sshd in each guest's own UTS namespace; host keys pinned per name)"
ssh_hostname() {  # ssh_hostname NAME EXPECTED
  local out
  out=$(rx ours ssh "$1" hostname 2>&1)
  [ "$out" = "$2" ] && pass "ssh $1 hostname -> $out" || fail "ssh $1 hostname -> $2" "got: ${out:-<nothing>}"
}
ssh_hostname "$D" "$D"
ssh_hostname "$G" "$G"
ssh_hostname "$DH" "$D"

# ---------------------------------------------------------------- lifecycle
section "lifecycle: libvirt rewrites $RIG_BRIDGE.macs when the domain stops and starts"
if "$RIG" virsh destroy "$D" >/dev/null; then
  if wait_until 10 bash -c "! '$LEASES' '$RIG_LEASE_DIR' macs-has '$D'"; then
    pass "virsh destroy $D: libvirt removed it from $RIG_BRIDGE.macs"
  else
    fail "virsh destroy $D: libvirt removed it from $RIG_BRIDGE.macs" "$(cat "$RIG_MACS_FILE")"
  fi
  fails "stopped domain: getent -s hosts:libvirt_guest ahosts $D does not resolve" rx ours getent -s hosts:libvirt_guest ahosts "$D"
  fails "stopped domain: ssh $D fails" rx ours ssh "$D" true
  # its DHCP lease has not expired: the hostname it sent still answers (libvirt's behaviour)
  same "stopped domain: its unexpired lease still answers by DHCP hostname $DH" "$(leased hostname "$DH" 4)" "$(answers ours libvirt ahostsv4 "$DH")"
else
  fail "virsh destroy $D" "virsh failed"
fi
if "$RIG" virsh create "$RIG_DIR/cfg/domain.xml" >/dev/null \
   && wait_until 10 "$LEASES" "$RIG_LEASE_DIR" macs-has "$D" \
   && wait_until 30 "$LEASES" "$RIG_LEASE_DIR" domain "$D" 4; then
  pass "virsh create $D: back in $RIG_BRIDGE.macs with a live lease"
  same "restarted domain: getent -s hosts:libvirt_guest ahostsv4 $D" "$(leased domain "$D" 4)" "$(answers ours libvirt_guest ahostsv4 "$D")"
  if wait_until 10 rx ours ssh "$D" true; then ssh_hostname "$D" "$D"; else fail "restarted domain: ssh $D" "sshd did not come back"; fi
else
  fail "virsh create $D: back in $RIG_BRIDGE.macs with a live lease" "$(cat "$RIG_MACS_FILE" 2>&1)"
fi

# ---------------------------------------------------------------- released lease
section "a released lease stops answering (udhcpc SIGUSR2 = DHCPRELEASE)"
UPID=$(cat "$RIG_DIR/run/guest-udhcpc.pid" 2>/dev/null)
if [ -n "$UPID" ] && kill -USR2 "$UPID" && wait_until 10 bash -c "! '$LEASES' '$RIG_LEASE_DIR' hostname '$G' 4"; then
  pass "udhcpc released $G's IPv4 lease: gone from $RIG_BRIDGE.status"
  fails "released: getent -s hosts:libvirt ahostsv4 $G does not resolve" rx ours getent -s hosts:libvirt ahostsv4 "$G"
  same "released: the IPv6 lease of $G still answers" "$(leased hostname "$G" 6)" "$(answers ours libvirt ahosts "$G")"
  kill -USR1 "$UPID"   # renew: take a lease again
  if wait_until 15 "$LEASES" "$RIG_LEASE_DIR" hostname "$G" 4; then
    same "renewed: getent -s hosts:libvirt ahostsv4 $G" "$(leased hostname "$G" 4)" "$(answers ours libvirt ahostsv4 "$G")"
  else
    fail "renewed lease of $G" "udhcpc (pid $UPID) did not take a new lease"
  fi
else
  fail "udhcpc released $G's IPv4 lease" "pid '${UPID}' / lease still in $RIG_STATUS_FILE"
fi

# ---------------------------------------------------------------- expired lease
section "an expired lease stops answering (2-minute lease, never renewed)"
if [ "$E2E_EXPIRY" = 1 ]; then
  xexp=$(python3 -c 'import json,sys; print(max(l["expiry-time"] for l in json.load(open(sys.argv[1])) if l.get("hostname") == sys.argv[2]))' \
         "$RIG_STATUS_FILE" "$XNAME" 2>/dev/null) || xexp=""
  same "before expiry: getent -s hosts:libvirt ahostsv4 $XNAME" "$XIP" "$(answers ours libvirt ahostsv4 "$XNAME")"
  if [ -n "$xexp" ]; then
    now=$(date +%s)
    [ "$xexp" -lt "$now" ] || { echo "   (waiting $((xexp - now + 1)) s for the lease of $XNAME to expire at $xexp)"; sleep $((xexp - now + 1)); }
    # dnsmasq may or may not have told the lease helper yet: say which case was tested
    if grep -q "\"hostname\": \"$XNAME\"" "$RIG_STATUS_FILE"; then where="entry still in $RIG_BRIDGE.status, expiry-time passed"
    else where="dnsmasq already removed the entry"; fi
    fails "after expiry ($where): getent -s hosts:libvirt ahostsv4 $XNAME does not resolve" rx ours getent -s hosts:libvirt ahostsv4 "$XNAME"
    fails "after expiry: Debian's module agrees" rx debian getent -s hosts:libvirt ahostsv4 "$XNAME"
  else
    fail "expiry time of $XNAME's lease" "not found in $RIG_STATUS_FILE"
  fi
else
  skip "expired lease" "E2E_EXPIRY=0"
fi

# ---------------------------------------------------------------- teardown leaves nothing
section "rig.sh down leaves the host as it was"
if [ -n "${XNS_MADE:-}" ]; then ip netns del "$XNS" 2>/dev/null || true; XNS_MADE=""; fi
if "$RIG" down >/dev/null 2>&1 && "$RIG" down >/dev/null 2>&1; then pass "rig.sh down, twice"; else fail "rig.sh down, twice" "exit status non-zero"; fi
left=$(ip netns list | grep "^$RIG_NAME-" || true; grep -F " $RIG_DIR" /proc/self/mountinfo || true; ls -d "$RIG_DIR" 2>/dev/null || true)
[ -z "$left" ] && pass "no netns, mount or directory of the rig left" || fail "nothing of the rig left" "$left"
diff_out=$(diff <(echo "$HOST_BEFORE") <(host_state))
[ -z "$diff_out" ] && pass "host unchanged: iptables, nsswitch.conf, NSS modules, users, /root/.ssh, /etc/ssh, libvirt dirs, /run, links, mounts" \
  || fail "host unchanged" "$diff_out"
E2E_KEEP=1   # already down
rm -f "$RIG_DIR.lock"
