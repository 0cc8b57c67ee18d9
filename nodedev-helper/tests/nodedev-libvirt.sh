#!/bin/bash
# nodedev-libvirt.sh MDEVCTL LABEL -- `virsh nodedev-*` end to end: a real libvirtd (node device
# driver only) discovers the simulated AP bus, calls the real mdevctl MDEVCTL, which runs our
# installed callout; every assertion is on virsh's own output and exit status, and on what the
# simulator and mdevctl's config files say after each step.
#
# Environment: AP_SIM (the ap-sim binary), DEST (a `make install DESTDIR=` tree holding
# usr/sbin/nodedev-helper-callout and the mdevctl callout wrappers), NODEDEV_HELPER (the
# nodedev-helper binary, for `passthrough --via libvirt`, optional).
#
# How the host is built (doc/nodedev-libvirt.md explains each point): private mount, network
# and PID namespaces (unshare); ap-sim mounted with --udev-events and bound over the
# namespace's whole /sys; tmpfs over /run, /var/{lib,cache,log} and /etc/libvirt; the
# installed tree overlaid on /usr; a scratch /etc/mdevctl.d and /etc/udev/rules.d. libvirtd
# runs with SYSTEMD_DEVICE_VERIFY_SYSFS=0 (libudev refuses a /sys that is not sysfs),
# LIBVIRT_DRIVER_DIR holding only libvirt_driver_nodedev.so, RUST_BACKTRACE=0 (mdevctl 1.4's
# backtrace would land in the virsh error) and mdevctl first on PATH. Needs root, /dev/fuse.
#
# Three hosts, one libvirtd each: vfio (discovery, the good path, refusals, passthrough),
# novfio (vfio_ap not loaded), fault (the simulator fails every mdev create with ENOMEM:
# passthrough's rollback after libvirt has defined the device).
set -euo pipefail

if [ "${1:-}" != --inside ]; then
  mdevctl=$(readlink -f "$1"); label=$2
  fail() { echo "check-nodedev[$label]: FAIL: $*" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || fail "needs root (namespaces, FUSE)"
  [ -c /dev/fuse ] || fail "/dev/fuse missing"
  [ -x "$mdevctl" ] || fail "mdevctl $1 missing"
  [ -x "${AP_SIM:-}" ] || fail "AP_SIM (the ap-sim binary) not set or not built"
  [ -x "${DEST:-}/usr/sbin/nodedev-helper-callout" ] || fail "DEST has no usr/sbin/nodedev-helper-callout (make install DESTDIR=)"
  command -v libvirtd >/dev/null && command -v virsh >/dev/null || fail "libvirtd/virsh missing (scripts/deps.sh nodedev)"
  work=$(mktemp -d /tmp/vhk-nodedev.XXXXXX)
  keep=0
  trap 'if [ $keep = 0 ] && ! grep -q " ${work}[/ ]" /proc/self/mountinfo; then rm -rf "$work"; else echo "check-nodedev[$label]: kept $work" >&2; fi' EXIT
  t0=$(date +%s%N)
  rc=0
  # NODEDEV_MODES=demo: the walkthrough of `make demo-nodedev` instead of the checks
  per=""
  for mode in ${NODEDEV_MODES:-vfio novfio fault}; do
    t1=$(date +%s%N)
    # PID 1 of the namespace is this script; when it ends, the kernel kills libvirtd and
    # ap-sim, and the mounts go with the mount namespace
    unshare --mount --net --pid --fork --mount-proc --propagation private \
      "$0" --inside "$work/$mode" "$mode" "$mdevctl" "$label" || { rc=$?; keep=1; break; }
    per="$per${per:+, }$mode $(( ($(date +%s%N) - t1) / 1000000 )) ms"
  done
  [ $rc = 0 ] || fail "see above (logs in $work)"
  [ "${NODEDEV_MODES:-}" = demo ] && exit 0
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "check-nodedev[$label]: passed ($(( $(cat "$work"/*/count | paste -sd+) )) virsh checks) in $ms ms ($per)"
  exit 0
fi

# ------------------------------------------------------------------ inside the namespaces
W=$2 MODE=$3 MDEVCTL=$4 LABEL=$5
mkdir -p "$W"
n=0
fail() {
  echo "check-nodedev[$LABEL/$MODE]: FAIL: $*" >&2
  echo "---- last lines of libvirtd's log ----" >&2; tail -n 20 "$W/libvirtd.log" >&2 || true
  echo "---- ap-sim ----" >&2; tail -n 5 "$W/ap-sim.log" >&2 || true
  exit 1
}
U1=6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10
U2=0d3c1a77-52b4-4c9e-8f0a-7e1d2c3b4a59
U3=9a1f0e55-3c2d-4b6a-8e7f-0a1b2c3d4e5f
U4=2c4e6a80-1b3d-4f5a-9c7e-8d0f2a4b6c8e
F64=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff   # 60 digits

# The host: CEX7 card 02 and CEX8 card 03 with domains 43 and 44, CEX7 card 04 with 43 (kept
# by the host: apmask bit 4 set), CEX3C card 05 (hwtype 9) with 43; adapters 2, 3, 5 are free
# for vfio_ap (active apmask 0xcb...); domains up to 84 (ap_max_domain_id). The persistent
# masks (chzdev's 41-ap.rules) keep adapter 3 for the host (0xdb...).
cat > "$W/host.json" <<EOF
{"ap_max_adapter_id":255,"ap_max_domain_id":84,
 "cards":[{"id":2,"hwtype":13,"domains":[43,44]},{"id":3,"hwtype":14,"domains":[43,44]},
          {"id":4,"hwtype":13,"domains":[43]},{"id":5,"hwtype":9,"domains":[43]}],
 "apmask":"0xcb00${F64}","aqmask":"0xffff${F64}","vfio_ap_loaded":$([ "$MODE" != novfio ] && echo true || echo false)$(
 [ "$MODE" = fault ] && echo ',"fail_mdev_create":12' || true)}
EOF
mkdir -p "$W/sim" "$W/etc-mdevctl" "$W/udev-rules" "$W/drivers" "$W/bin"
"$AP_SIM" mount "$W/sim" --config "$W/host.json" --ready-file "$W/sim.ready" --udev-events \
  2>"$W/ap-sim.log" &
for _ in $(seq 100); do [ -e "$W/sim.ready" ] && break; sleep 0.02; done
[ -e "$W/sim.ready" ] || fail "ap-sim did not mount"
mount --bind "$W/sim/sys" /sys
mount -t tmpfs vhk-run /run
mkdir -p /run/lock /run/libvirt
for d in /var/lib /var/cache /var/log /etc/libvirt; do mount -t tmpfs vhk-nodedev "$d"; done
: > /etc/libvirt/libvirtd.conf
# the directories mdevctl's package owns (mdevctl 1.4 refuses to run without them)
mkdir -p "$W/usr-pkg/lib/mdevctl/scripts.d/callouts" "$W/usr-pkg/lib/mdevctl/scripts.d/notifiers" \
  "$W/etc-mdevctl/scripts.d/callouts" "$W/etc-mdevctl/scripts.d/notifiers"
mount -t overlay vhk-usr -o "lowerdir=$DEST/usr:$W/usr-pkg:/usr" /usr
cp -a "$DEST/etc/mdevctl.d/." "$W/etc-mdevctl/"
mount --bind "$W/etc-mdevctl" /etc/mdevctl.d
mount --bind "$W/udev-rules" /etc/udev/rules.d
cat > /etc/udev/rules.d/41-ap.rules <<EOF
# Generated by chzdev
ACTION=="add", DEVPATH=="/bus/ap", ATTR{bindings_complete_count}!="0", GOTO="cfg_ap"
ACTION=="change", SUBSYSTEM=="ap", DEVPATH=="/devices/ap", ENV{BINDINGS}=="complete", ENV{COMPLETECOUNT}=="1", GOTO="cfg_ap"
GOTO="end_ap"

LABEL="cfg_ap"

ATTR{../../bus/ap/apmask}="0xdb00${F64}"
ATTR{../../bus/ap/aqmask}="0xffff${F64}"
RUN{builtin}+="kmod load vfio_ap"

LABEL="end_ap"
EOF
[ -e /dev/stdin ] || fail "/dev/stdin missing (libvirt passes the device JSON through it)"
# the system log: a datagram socket at /dev/log, in an overlay of /dev (nothing is created in
# the host's devtmpfs); libudev listens to udev events only where /dev is a devtmpfs or
# /run/udev/control exists
mkdir -p "$W/dev-upper" "$W/dev-work" /run/udev
mount -t overlay vhk-dev -o "lowerdir=/dev,upperdir=$W/dev-upper,workdir=$W/dev-work" /dev
: > /run/udev/control
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind("/dev/log")
out = open(sys.argv[1], "a", buffering=1)
print("ready", flush=True)
while True: out.write(s.recv(8192).decode(errors="replace") + "\n")
' "$W/syslog" > "$W/syslog.ready" &
for _ in $(seq 100); do [ -s "$W/syslog.ready" ] && break; sleep 0.02; done
[ -S /dev/log ] || fail "syslog listener did not start"
drv=$(ls -d /usr/lib/*/libvirt/connection-driver | head -n1)
ln -s "$drv/libvirt_driver_nodedev.so" "$W/drivers/"
ln -s "$MDEVCTL" "$W/bin/mdevctl"
env -i PATH="$W/bin:/usr/sbin:/usr/bin:/sbin:/bin" LC_ALL=C HOME=/root \
  SYSTEMD_DEVICE_VERIFY_SYSFS=0 LIBVIRT_DRIVER_DIR="$W/drivers" RUST_BACKTRACE=0 \
  libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirt/libvirtd.pid \
  </dev/null >"$W/libvirtd.log" 2>&1 &
URI="nodedev:///system?socket=/run/libvirt/libvirt-sock"
for _ in $(seq 200); do virsh -q -c "$URI" nodedev-list >/dev/null 2>&1 && break; sleep 0.02; done
virsh -q -c "$URI" nodedev-list >/dev/null 2>&1 || fail "libvirtd did not come up"

OUT='' ERR=''
# run WANT_RC virsh ARGS... : virsh's exit status must be WANT_RC; OUT/ERR keep its output
run() {
  local want=$1 rc=0; shift
  OUT=$(virsh ${Q--q} -c "$URI" "$@" 2>"$W/err") || rc=$?
  ERR=$(cat "$W/err")
  n=$((n + 1))
  [ "$rc" = "$want" ] || fail "virsh $* exited $rc (wanted $want)
stdout: $OUT
stderr: $ERR"
}
ok()      { run 0 "$@"; }
refused() { local msg=$1; shift; run 1 "$@"; case "$ERR" in *"$msg"*) ;; *) fail "virsh $* did not say '$msg'; it said: $ERR";; esac; }
has()     { case "$OUT" in *"$1"*) ;; *) fail "output of the last virsh lacks '$1':
$OUT";; esac; }
is()      { [ "$OUT" = "$1" ] || fail "output of the last virsh is not '$1':
$OUT"; }
cfg()     { cat "/etc/mdevctl.d/matrix/$1" 2>/dev/null || echo none; }
# logged MESSAGE: a line of the system log carries MESSAGE from the callout (tag nodedev-helper)
logged()  { grep -F -q -- "$1" "$W/syslog" && grep -F -- "$1" "$W/syslog" | grep -q '^<28>nodedev-helper\[' \
              || fail "the system log lacks '$1':
$(cat "$W/syslog")"; }
cfg_start() { sed -n 's/.*"start": *"\([a-z]*\)".*/\1/p' "/etc/mdevctl.d/matrix/$1" 2>/dev/null || echo none; }
sim_matrix() { local f=/sys/devices/vfio_ap/matrix/$1/matrix; if [ -e "$f" ]; then paste -sd, "$f"; else echo inactive; fi; }
[ "$(sim_matrix x)" = inactive ] || fail "sim_matrix of a missing device"
active_mdevs() { ls /sys/bus/mdev/devices | paste -sd, ; }
# libvirt learns of an undefine from its inotify watch on /etc/mdevctl.d (a short timer
# later), not from the call itself: wait up to 2 s for its list to be empty
no_mdevs_in_libvirt() {
  local k=$n
  for _ in $(seq 100); do n=$k; ok nodedev-list --cap mdev --all; [ -z "$OUT" ] && break; sleep 0.02; done
  is ""
}
xml() {  # xml FILE UUID ADAPTER DOMAIN
  cat > "$W/$1" <<EOF
<device>
  <parent>ap_matrix</parent>
  <capability type='mdev'>
    <type id='vfio_ap-passthrough'/>
    <uuid>$2</uuid>
    <attr name='assign_adapter' value='$3'/>
    <attr name='assign_domain' value='$4'/>
  </capability>
</device>
EOF
}
define() {  # define FILE -> NAME: the node device name virsh reports
  Q='' ok nodedev-define "$W/$1"   # not quiet: the message names the device
  NAME=$(sed -n "s/^Node device '\([^']*\)' defined from.*/\1/p" <<<"$OUT")
  [ -n "$NAME" ] || fail "no device name in: $OUT"
}

# doctor CHECK STATUS [FIX]: `nodedev-helper doctor --json` against this libvirtd judges CHECK so
doctor() {
  local got
  [ -x "${NODEDEV_HELPER:-}" ] || fail "NODEDEV_HELPER (the nodedev-helper binary) not set"
  "$NODEDEV_HELPER" doctor --json --connect "$URI" > "$W/doctor.json" || true
  got=$(python3 -c 'import json,sys
c = {x["id"]: x for x in json.load(open(sys.argv[1]))["checks"]}[sys.argv[2]]
print(c["status"], c.get("fix", ""))' "$W/doctor.json" "$1") || fail "doctor output: $(cat "$W/doctor.json")"
  n=$((n + 1))
  case "$got" in "$2"*"${3:-}"*) ;; *) fail "doctor says $1: $got (wanted $2 ${3:-})";; esac
}

pt() {  # pt WANT_RC ARGS...: our passthrough against this libvirtd
  local want=$1 rc=0; shift
  [ -x "${NODEDEV_HELPER:-}" ] || fail "NODEDEV_HELPER (the nodedev-helper binary) not set"
  "$NODEDEV_HELPER" passthrough --via libvirt --connect "$URI" "$@" >"$W/pt.out" 2>"$W/pt.err" || rc=$?
  n=$((n + 1))
  [ "$rc" = "$want" ] || fail "passthrough $* exited $rc (wanted $want):
$(cat "$W/pt.out" "$W/pt.err")"
}
# said FILE TEXT: the output file of the last command holds TEXT
said() { n=$((n + 1)); grep -F -q -- "$2" "$W/$1" || fail "$1 lacks '$2':
$(cat "$W/$1")"; }

if [ "$MODE" = demo ]; then
  # what an administrator types, and what virsh answers (a real libvirtd over the simulated
  # AP bus, Debian's mdevctl, our callout as installed)
  say()  { printf '\n\033[1m%s\033[0m\n' "$*"; }
  show() { printf '$ virsh %s\n' "$*"; { virsh -c "$URI" "$@" 2>&1 && echo "  (exit 0)" || echo "  (exit $?)"; } | sed '/^$/d'; }
  say "libvirt discovers the vfio_ap parent and the crypto cards and queues"
  show nodedev-list --cap ap_matrix
  show nodedev-list --cap ap_queue
  show nodedev-dumpxml ap_matrix
  xml a.xml "$U1" 2 43
  say "define, autostart and start an mdev for APQN 2.43; our callout validates each step"
  cat "$W/a.xml"
  show nodedev-define "$W/a.xml"
  A=mdev_${U1//-/_}_matrix
  show nodedev-autostart "$A"
  show nodedev-start "$A"
  show nodedev-info "$A"
  printf '$ cat /sys/devices/vfio_ap/matrix/%s/matrix\n' "$U1"; cat "/sys/devices/vfio_ap/matrix/$U1/matrix"
  say "a second device for the same APQN: libvirt defines it manual, so the conflict is only a warning (kept in the system log), then refused at start and at autostart"
  xml b.xml "$U2" 2 43
  show nodedev-define "$W/b.xml"
  printf '$ journalctl -t nodedev-helper   (here: the socket at /dev/log)\n'; sed 's/^/  /' "$W/syslog"
  show nodedev-start "mdev_${U2//-/_}_matrix"
  show nodedev-autostart "mdev_${U2//-/_}_matrix"
  say "an adapter the host's AP masks still keep, and an id beyond this host's limits"
  xml c.xml "$U3" 4 43
  show nodedev-define "$W/c.xml"
  show nodedev-start "mdev_${U3//-/_}_matrix"
  xml d.xml "$U4" 2 100
  show nodedev-define "$W/d.xml"
  say "clean up"
  show nodedev-destroy "$A"
  for u in "$U1" "$U2" "$U3"; do show nodedev-undefine "mdev_${u//-/_}_matrix"; done
  exit 0
fi

if [ "$MODE" = novfio ]; then
  # a host where vfio_ap is not loaded: libvirt has no ap_matrix and refuses the parent
  ok nodedev-list --cap ap_matrix; is ""
  ok nodedev-list --cap ap_card; has ap_card02
  xml a.xml "$U1" 2 43
  refused "invalid parent device 'ap_matrix'" nodedev-define "$W/a.xml"
  [ "$(cfg "$U1")" = none ] || fail "a refused define left a config"
  # what our doctor says about this host
  doctor vfio_ap-loaded problem "modprobe vfio_ap"
  doctor libvirt-ap_matrix problem "modprobe vfio_ap"
  echo "$n" > "$W/count"
  exit 0
fi

if [ "$MODE" = fault ]; then
  # A start that fails in the kernel after every check passed: the simulator's fault knob
  # makes each write to the mdev type's `create` fail with ENOMEM (mdev_device_create out of
  # memory). passthrough has by then taken adapter 4 and domain 43 from the host (active masks
  # and 41-ap.rules), and libvirt has defined the device and set it to autostart; all of it
  # must be undone.
  masks_now() { cat /sys/bus/ap/apmask /sys/bus/ap/aqmask; }
  masks_now > "$W/masks.before"
  cp /etc/udev/rules.d/41-ap.rules "$W/rule.before"
  N4=mdev_${U4//-/_}_matrix
  pt 1 4.43 --uuid "$U4"
  said pt.out "host gave up the APQNs: apmask=-4 aqmask=-43 (active and persistent)"
  said pt.out "libvirt defined node device $N4"
  said pt.out "libvirt set node device $N4 to autostart"
  said pt.err "libvirt refused to start $N4"
  said pt.err "Cannot allocate memory"
  said pt.err "rolling back:"
  said pt.err "undone: node device $N4 undefined"
  said pt.err "undone: AP masks restored"
  grep -q "FAILED to undo\|left partly changed" "$W/pt.err" && fail "rollback incomplete: $(cat "$W/pt.err")"
  # nothing left: not in libvirt (defined or active), not in mdevctl, not in the simulator
  no_mdevs_in_libvirt
  refused "$N4" nodedev-info "$N4"
  n=$((n + 1)); [ -z "$("$MDEVCTL" list --defined)" ] || fail "mdevctl still has a config: $("$MDEVCTL" list --defined)"
  n=$((n + 1)); [ -z "$("$MDEVCTL" list)" ] || fail "mdevctl lists an active device: $("$MDEVCTL" list)"
  [ "$(cfg "$U4")" = none ] && [ "$(active_mdevs)" = "" ] || fail "the failed passthrough left a device"
  # the masks and the rule as before, byte for byte
  masks_now | cmp -s "$W/masks.before" - || fail "active masks not restored: $(masks_now)"
  cmp -s "$W/rule.before" /etc/udev/rules.d/41-ap.rules || fail "the rollback did not restore 41-ap.rules"
  n=$((n + 2))
  # the same through mdevctl directly: defined, start refused by the kernel, undefined again
  rc=0; "$NODEDEV_HELPER" passthrough --mdevctl "$MDEVCTL" 4.43 --uuid "$U4" >"$W/pt.out" 2>"$W/pt.err" || rc=$?
  n=$((n + 1)); [ "$rc" = 1 ] || fail "passthrough via mdevctl exited $rc: $(cat "$W/pt.out" "$W/pt.err")"
  said pt.out "mdevctl defined mdev $U4 on parent matrix"
  said pt.err "mdevctl start --uuid $U4 failed"
  said pt.err "Cannot allocate memory"
  said pt.err "undone: mdev $U4 undefined"
  said pt.err "undone: AP masks restored"
  n=$((n + 1)); [ -z "$("$MDEVCTL" list --defined)$("$MDEVCTL" list)" ] || fail "mdevctl still has the device"
  masks_now | cmp -s "$W/masks.before" - || fail "active masks not restored: $(masks_now)"
  cmp -s "$W/rule.before" /etc/udev/rules.d/41-ap.rules || fail "the rollback did not restore 41-ap.rules"
  n=$((n + 2))
  echo "$n" > "$W/count"
  exit 0
fi

# ---- discovery
ok nodedev-list --cap ap_matrix; is "ap_matrix"
ok nodedev-list --cap ap_card; is "$(printf 'ap_card02\nap_card03\nap_card04\nap_card05')"
ok nodedev-list --cap ap_queue
is "$(printf 'ap_02_002b\nap_02_002c\nap_03_002b\nap_03_002c\nap_04_002b\nap_05_002b')"
ok nodedev-dumpxml ap_matrix
has "<type id='vfio_ap-passthrough'>"; has "<deviceAPI>vfio-ap</deviceAPI>"
has "<availableInstances>65536</availableInstances>"
doctor libvirt-ap_matrix ok
doctor callout ok

# ---- the good path: define, autostart, start, dumpxml, destroy, undefine
xml a.xml "$U1" 2 43
define a.xml; A=$NAME
[ "$(cfg_start "$U1")" = manual ] || fail "config after define: $(cfg "$U1")"
[ "$(active_mdevs)" = "" ] || fail "define started a device: $(active_mdevs)"
ok nodedev-info "$A"; has "Active:         no"; has "Persistent:     yes"; has "Autostart:      no"
ok nodedev-autostart "$A"
[ "$(cfg_start "$U1")" = auto ] || fail "config after autostart: $(cfg "$U1")"
ok nodedev-info "$A"; has "Autostart:      yes"
ok nodedev-start "$A"
[ "$(sim_matrix "$U1")" = 02.002b ] || fail "simulator after start: $(sim_matrix "$U1")"
ok nodedev-info "$A"; has "Active:         yes"
ok nodedev-dumpxml "$A"
has "<uuid>$U1</uuid>"; has "<iommuGroup number='0'/>"
has "<attr name='assign_adapter' value='2'/>"; has "<attr name='assign_domain' value='43'/>"

# ---- refusals, each reaching the virsh user with our message and changing nothing
xml b.xml "$U2" 2 43
define b.xml; B=$NAME                        # manual start: a conflict is only a warning
# libvirt threw the callout's stderr away; the warning is in the system log
case "$OUT$ERR" in *warning*) fail "virsh showed the define warning after all: $OUT $ERR";; esac
logged "mdev $U2: warning: APQN 2.43 is defined for autostart by $U1"
refused "APQN 2.43 is defined for autostart by $U1" nodedev-autostart "$B"
[ "$(cfg_start "$U2")" = manual ] || fail "refused autostart changed the config"
refused "APQN 2.43 already in use by $U1" nodedev-start "$B"
[ "$(active_mdevs)" = "$U1" ] || fail "refused start changed the simulator: $(active_mdevs)"
ok nodedev-undefine "$B"

xml c.xml "$U3" 2 100
refused "assign_domain value '100' is above this host's ap_max_domain_id (84)" nodedev-define "$W/c.xml"
xml c.xml "$U3" 256 43
refused "assign_adapter value '256' is out of range" nodedev-define "$W/c.xml"
[ "$(cfg "$U3")" = none ] || fail "refused define left a config"

xml c.xml "$U3" 5 43
define c.xml; C=$NAME
refused "adapter 5 (card05) has hwtype 9" nodedev-start "$C"
ok nodedev-undefine "$C"

xml c.xml "$U3" 4 43
define c.xml; C=$NAME
refused "APQN 4.43 is not allowed for vfio_ap-passthrough use by the active ap bus mask settings" nodedev-start "$C"
ok nodedev-undefine "$C"

xml c.xml "$U3" 3 44
define c.xml; C=$NAME
logged "mdev $U3: warning: APQN 3.44 is not defined for vfio_ap-passthrough use by the persistent ap bus mask settings"
refused "APQN 3.44 is not defined for vfio_ap-passthrough use by the persistent ap bus mask settings" nodedev-autostart "$C"
[ "$(cfg_start "$U3")" = manual ] || fail "refused autostart changed the config"
ok nodedev-start "$C"                        # the active masks give adapter 3 away
[ "$(active_mdevs)" = "$U1,$U3" ] || fail "simulator: $(active_mdevs)"
ok nodedev-destroy "$C"
ok nodedev-undefine "$C"
[ "$(cfg "$U3")" = none ] || fail "undefine left a config"

# ---- the good device goes away again
ok nodedev-destroy "$A"
[ "$(active_mdevs)" = "" ] || fail "destroy left a device: $(active_mdevs)"
[ "$(cfg_start "$U1")" = auto ] || fail "destroy changed the config"
ok nodedev-info "$A"; has "Active:         no"
ok nodedev-undefine "$A"
[ "$(cfg "$U1")" = none ] || fail "undefine left the config"
no_mdevs_in_libvirt

# ---- nodedev-helper passthrough --via libvirt: define, autostart, start through the API
pt 0 2.44 --uuid "$U4"
grep -q "libvirt defined node device mdev_${U4//-/_}_matrix" "$W/pt.out" || fail "passthrough output: $(cat "$W/pt.out")"
[ "$(sim_matrix "$U4")" = 02.002c ] || fail "simulator after passthrough: $(sim_matrix "$U4")"
[ "$(cfg_start "$U4")" = auto ] || fail "config after passthrough: $(cfg "$U4")"
ok nodedev-info "mdev_${U4//-/_}_matrix"; has "Active:         yes"; has "Autostart:      yes"
ok nodedev-destroy "mdev_${U4//-/_}_matrix"
ok nodedev-undefine "mdev_${U4//-/_}_matrix"
# all or nothing: the persistent masks keep adapter 3, so passthrough first frees it in
# 41-ap.rules; then the callout refuses the control domain above ap_max_domain_id (84) at
# define, and the rule is put back as it was
cp /etc/udev/rules.d/41-ap.rules "$W/rule.before"
pt 1 3.43 --control-domain 90 --uuid "$U4"
grep -q "assign_control_domain value '90' is above this host's ap_max_domain_id (84)" "$W/pt.err" \
  || fail "passthrough did not relay the callout's refusal: $(cat "$W/pt.err")"
grep -q "undone: AP masks restored" "$W/pt.err" || fail "no rollback reported: $(cat "$W/pt.err")"
cmp -s "$W/rule.before" /etc/udev/rules.d/41-ap.rules || fail "the rollback did not restore 41-ap.rules"
[ "$(cfg "$U4")" = none ] && [ "$(active_mdevs)" = "" ] || fail "the refused passthrough left a device"
no_mdevs_in_libvirt
echo "$n" > "$W/count"
