#!/bin/bash
# storage-e2e.sh -- storage-align on real loop devices, and against a real libvirt disk pool.
#
#   storage-align/tests/storage-e2e.sh [BIN]     (root; `make check-storage` runs it)
#
# 1. Loop devices (losetup -P): msdos primary/extended/logical and gpt sequences created by
#    storage-align; every partition is read back with parted AND from the kernel
#    (/sys/class/block/<loop>pN/{start,size}); a device held open with O_EXCL is refused as busy.
# 2. libvirt: a real libvirtd (tests/e2e/rig.sh, namespaced) with a disk pool on loop device A.
#    For one sequence of volume sizes, `virsh vol-create-as` creates libvirt's own partitions
#    on A, `storage-align create --mode libvirt` creates ours on an identical disk B, and
#    `--mode exact` on disk C. A and B must have byte-identical partition tables; C's
#    partitions must never be larger than A's. The bytes saved are printed side by side.
# 3. vol-create: on three identical disk pools, `virsh vol-create-as`, `storage-align vol-create
#    --mode libvirt` and `--mode exact` create the same sequence of volumes; the first two must
#    give identical partition tables AND identical volumes as libvirt lists them after a
#    refresh, exact's are never larger. Refusals (unknown pool, unreachable URI, a --name libvirt
#    would not give, a dir pool, an inactive pool) change nothing; --dry-run changes nothing.
# Everything (rig, loop devices, images, helper processes) is removed on exit, even on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-${STORAGE_ALIGN:-${CARGO_TARGET_DIR:-target}/release/storage-align}}
[ -x "$BIN" ] || { echo "storage-e2e: $BIN not built (cargo build --release -p storage-align)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "storage-e2e: needs root (loop devices, libvirtd)" >&2; exit 1; }
for t in parted losetup python3; do
  command -v $t >/dev/null || { echo "storage-e2e: $t missing (scripts/deps.sh storage)" >&2; exit 1; }
done
export LC_ALL=C
RIG=tests/e2e/rig.sh
export RIG_NAME=${STORAGE_RIG_NAME:-stor$$}
WORK=$(mktemp -d /tmp/vhk-storage.XXXXXX)
LOOPS=()
POOLS=()
HOLDER=
RIG_UP=0
pass=0 fail=0

cleanup() {
  set +e
  [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null && wait "$HOLDER" 2>/dev/null
  if [ "$RIG_UP" = 1 ]; then
    for p in pa pg "${POOLS[@]}"; do $RIG virsh pool-destroy $p >/dev/null 2>&1; done
    $RIG down >/dev/null 2>&1
  fi
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

ok()  { pass=$((pass + 1)); echo "  ok   $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }

# new_loop NAME SIZE LABEL -> sets LOOP to a loop device with a fresh label (no subshell, so
# LOOPS records it for cleanup)
new_loop() {
  truncate -s "$2" "$WORK/$1.img"
  LOOP=$(losetup -fP --show "$WORK/$1.img")
  LOOPS+=("$LOOP")
  parted -s "$LOOP" mklabel "$3"
}

# table DEV -> "N:start:end" lines (bytes, end inclusive) as parted reads them back
table() { parted -m -s "$1" unit B print | tail -n +3 | awk -F: '{ gsub("B","",$2); gsub("B","",$3); print $1":"$2":"$3 }'; }

# kernel_check DEV N START END: the kernel's view of the partition (sysfs, 512-byte units)
kernel_check() {
  local s="/sys/class/block/$(basename "$1")p$2"
  for _ in $(seq 50); do [ -e "$s/start" ] && break; sleep 0.1; done
  [ -e "$s/start" ] || { echo "no $s"; return 1; }
  local ks kz; ks=$(( $(cat "$s/start") * 512 )); kz=$(( $(cat "$s/size") * 512 ))
  [ "$ks" = "$3" ] || { echo "kernel start $ks != $3"; return 1; }
  # an extended partition shows as 2 sectors in the kernel
  [ "$kz" = 1024 ] || [ "$kz" = "$(( $4 - $3 + 1 ))" ] || { echo "kernel size $kz != $(( $4 - $3 + 1 ))"; return 1; }
  return 0
}

# ours DEV MODE SIZE [TYPE] -> creates, verifies against parted + kernel, prints "N start end"
ours() {
  local dev=$1 mode=$2 size=$3 type=${4:-} out
  out=$("$BIN" create "$dev" --capacity "$size" --mode "$mode" ${type:+--type $type} --json) || return 1
  python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(v["number"], v["created"]["start"], v["created"]["end"], v["capacity"])' "$out"
}

echo "== storage-align on loop devices"
new_loop dos 256M msdos; L=$LOOP
prev=""
for step in "10M" "3000000" "1M" "64M extended" "5M" "1234567" "64K"; do
  set -- $step
  if r=$(ours "$L" exact "$1" "${2:-}"); then
    read -r n s e _ <<<"$r"
    if table "$L" | grep -qx "$n:$s:$e" && msg=$(kernel_check "$L" "$n" "$s" "$e"); then
      ok "msdos $L: ${2:-auto} $1 -> partition $n $s-$e (parted and kernel agree)"
    else bad "msdos $L: partition $n $s-$e not as planned: $(table "$L" | tr '\n' ' ') ${msg:-}"; fi
  else bad "msdos $L: create $step failed"; fi
done
[ "$(table "$L" | wc -l)" = 7 ] && ok "msdos: 7 partitions (3 primary, 1 extended, 3 logical)" || bad "msdos: $(table "$L" | wc -l) partitions"

new_loop gpt 128M gpt; G=$LOOP
for size in 1M 3000000 512 7MiB; do
  if r=$(ours "$G" exact "$size") && read -r n s e _ <<<"$r" && table "$G" | grep -qx "$n:$s:$e" \
     && kernel_check "$G" "$n" "$s" "$e" >/dev/null; then ok "gpt $G: $size -> partition $n $s-$e"
  else bad "gpt $G: $size"; fi
done

# busy: a process holding the whole device with O_EXCL (what a mount or dm does)
python3 -c 'import os,sys,time; fd=os.open(sys.argv[1], os.O_RDONLY|os.O_EXCL); print("held", flush=True); time.sleep(60)' "$G" > "$WORK/holder.out" &
HOLDER=$!
for _ in $(seq 50); do grep -q held "$WORK/holder.out" 2>/dev/null && break; sleep 0.1; done
before=$(table "$G")
if err=$("$BIN" create "$G" --capacity 1M 2>&1); then bad "busy device accepted"
elif grep -q "is busy" <<<"$err" && [ "$(table "$G")" = "$before" ]; then ok "busy device refused, table unchanged: $err"
else bad "busy device: unexpected error: $err"; fi
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true; HOLDER=

# --align-start optimal reads the device's I/O limits from sysfs: below --root (a fake tree
# saying 4 MiB), or from STORAGE_ALIGN_SYSFS; a setuid copy run by nobody ignores the variable
# and reads the real /sys (a loop device reports no optimal size: 1 MiB, as parted)
new_loop opt 64M msdos; O=$LOOP; on=$(basename "$O")
mkdir -p "$WORK/host/sys/block/$on/queue"
echo 4194304 > "$WORK/host/sys/block/$on/queue/optimal_io_size"
echo 0 > "$WORK/host/sys/block/$on/alignment_offset"
start_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["start"])' "$1"; }
optimal=(plan "$O" --capacity 1M --align-start optimal --json)
if out=$("$BIN" --root "$WORK/host" "${optimal[@]}") && [ "$(start_of "$out")" = 4194304 ]; then
  ok "--root: optimal start 4194304 from $WORK/host/sys/block/$on"
else bad "--root: ${out:-failed}"; fi
if out=$(STORAGE_ALIGN_SYSFS=$WORK/host/sys "$BIN" "${optimal[@]}") && [ "$(start_of "$out")" = 4194304 ]; then
  ok "STORAGE_ALIGN_SYSFS: optimal start 4194304"
else bad "STORAGE_ALIGN_SYSFS: ${out:-failed}"; fi
chmod 755 "$WORK"; install -m 4755 "$BIN" "$WORK/storage-align-setuid"
if out=$(runuser -u nobody -- env STORAGE_ALIGN_SYSFS="$WORK/host/sys" "$WORK/storage-align-setuid" "${optimal[@]}") \
   && [ "$(start_of "$out")" = 1048576 ]; then
  ok "setuid: STORAGE_ALIGN_SYSFS ignored, optimal start 1048576 from /sys"
else bad "setuid: ${out:-failed}"; fi

echo "== against libvirt's own disk pool (rig $RIG_NAME)"
if ! RIG_DOMAIN_MODE=none RIG_SSH=0 RIG_CHECK=0 RIG_NSS=debian RIG_IPV6=0 $RIG up > "$WORK/rig.log" 2>&1; then
  cat "$WORK/rig.log" >&2; bad "rig up failed"; echo "storage-e2e: $pass passed, $fail failed"; exit 1
fi
RIG_UP=1

# compare LABEL POOL "SIZE[ extended]"...
compare() {
  local label=$1 pool=$2; shift 2
  local A B C
  new_loop "${label}a" 512M "$label"; A=$LOOP
  new_loop "${label}b" 512M "$label"; B=$LOOP
  new_loop "${label}c" 512M "$label"; C=$LOOP
  local fmt=$label; [ "$label" = msdos ] && fmt=dos
  $RIG virsh pool-define-as "$pool" disk --source-dev "$A" --source-format "$fmt" --target /dev >/dev/null
  $RIG virsh pool-start "$pool" >/dev/null
  printf '  %-6s %-10s %-9s %-26s %-12s %-12s %s\n' label request type "libvirt start-end" "libvirt B" "exact B" "saved B"
  local total=0 short=0
  for step in "$@"; do
    set -- $step
    local size=$1 type=${2:-}
    local before; before=$(table "$A")
    local num=$(( $(table "$A" | wc -l) + 1 ))
    [ "$label" = msdos ] && [ "$num" -ge 5 ] && num=$(( $(table "$A" | awk -F: '$1>=5' | wc -l) + 5 ))
    if ! $RIG virsh vol-create-as "$pool" "$(basename "$A")p$num" "$size" ${type:+--format $type} > "$WORK/virsh.out" 2>&1; then
      bad "virsh vol-create-as $size: $(cat "$WORK/virsh.out")"; continue
    fi
    local new; new=$(comm -13 <(echo "$before" | sort) <(table "$A" | sort))
    ours "$B" libvirt "$size" "$type" > /dev/null || { bad "ours --mode libvirt $size"; continue; }
    local x; x=$(ours "$C" exact "$size" "$type") || { bad "ours --mode exact $size"; continue; }
    local ls le xs xe cap; IFS=: read -r _ ls le <<<"$new"; read -r _ xs xe cap <<<"$x"
    local lz=$(( le - ls + 1 )) xz=$(( xe - xs + 1 ))
    if [ "$(table "$A")" = "$(table "$B")" ]; then ok "$label $size: --mode libvirt = libvirt ($ls-$le)"
    else bad "$label $size: libvirt $(table "$A" | tr '\n' ' ') vs ours $(table "$B" | tr '\n' ' ')"; fi
    if [ "$xz" -lt "$cap" ]; then bad "$label $size: exact partition ($xz B) smaller than the request"
    elif [ "$lz" -lt "$cap" ]; then short=$(( short + cap - lz )); ok "$label $size: libvirt's partition is $(( cap - lz )) B SHORT of the request; exact holds it ($xz B)"
    elif [ "$type" = extended ] || [ "$xz" -le "$lz" ]; then ok "$label $size: exact ($xz B) not larger than libvirt ($lz B)"
    else bad "$label $size: exact $xz > libvirt $lz"; fi
    printf '  %-6s %-10s %-9s %-26s %-12s %-12s %s\n' "$label" "$size" "${type:-auto}" "$ls-$le" "$lz" "$xz" "$(( lz - xz ))"
    [ "$lz" -ge "$cap" ] && total=$(( total + lz - xz ))
  done
  echo "  $label: where libvirt's partitions hold the request, they take $total bytes more than exact mode's; libvirt's short partitions miss $short bytes in total"
  $RIG virsh vol-list "$pool" --details | sed 's/^/  virsh: /'
  $RIG virsh pool-destroy "$pool" >/dev/null; $RIG virsh pool-undefine "$pool" >/dev/null
}

# A loop device reports 255 heads x 2 sectors: a 261120-byte cylinder. 10M ends on a cylinder
# boundary, so the next partition starts aligned: 2611200 (10 cylinders) makes libvirt waste one.
# 1305500 = 5 cylinders - 100 bytes: libvirt's logical partition comes out 412 bytes short.
compare msdos pa "10M" "2611200" "1M" "100M extended" "5M" "1305500" "64K" "7833600" "2M"
compare gpt pg "10M" "3000000" "1M" "513" "64K"

# ---- vol-create: storage-align creates the volumes itself, through the libvirt API
URI=$($RIG env | sed -n "s/^RIG_URI='\(.*\)'$/\1/p")
[ -n "$URI" ] || { bad "no RIG_URI in '$RIG env'"; echo "storage-e2e: $pass passed, $fail failed"; exit 1; }

# vols POOL DEV -> "name path capacity" per volume libvirt lists, DEV's name replaced by DEV
vols() {
  local n; n=$(basename "$2")
  $RIG virsh -q pool-refresh "$1" >/dev/null
  $RIG virsh -q vol-list "$1" | while read -r name path; do
    [ -n "$name" ] || continue
    echo "$name $path $($RIG virsh -q vol-info --bytes --pool "$1" "$name" | awk '$1=="Capacity:" {print $2}')"
  done | sed "s/$n/DEV/g" | sort
}

# disk_pool NAME LABEL -> LOOP: a started disk pool on a fresh loop device
disk_pool() {
  new_loop "$1" 512M "$2"
  local fmt=$2; [ "$2" = msdos ] && fmt=dos
  $RIG virsh pool-define-as "$1" disk --source-dev "$LOOP" --source-format "$fmt" --target /dev >/dev/null
  $RIG virsh pool-start "$1" >/dev/null
  POOLS+=("$1")
}

echo "== vol-create into libvirt disk pools (URI $URI)"
# vol_compare LABEL "SIZE[ extended]"...: virsh vol-create-as on pool Vx, storage-align
# vol-create --mode libvirt on pool Wx, --mode exact on pool Xx; all three devices identical
vol_compare() {
  local label=$1; shift
  local p=${label:0:1} V W X
  disk_pool "v$p" "$label"; V=$LOOP
  disk_pool "w$p" "$label"; W=$LOOP
  disk_pool "x$p" "$label"; X=$LOOP
  for step in "$@"; do
    set -- $step
    local size=$1 type=${2:-} out name lz xz
    local num=$(( $(table "$V" | wc -l) + 1 ))
    [ "$label" = msdos ] && [ "$num" -ge 5 ] && num=$(( $(table "$V" | awk -F: '$1>=5' | wc -l) + 5 ))
    if ! $RIG virsh vol-create-as "v$p" "$(basename "$V")p$num" "$size" ${type:+--format $type} > "$WORK/virsh.out" 2>&1; then
      bad "virsh vol-create-as $size: $(cat "$WORK/virsh.out")"; continue
    fi
    if ! out=$("$BIN" vol-create --connect "$URI" --pool "w$p" --capacity "$size" --mode libvirt ${type:+--type $type} --json 2>"$WORK/err"); then
      bad "vol-create --mode libvirt $size: $(cat "$WORK/err")"; continue
    fi
    name=$(python3 -c 'import json,sys; v=json.loads(sys.argv[1])["volume"]; print(v["name"], v["path"], v["capacity"], v["end"]-v["start"]+1)' "$out")
    read -r vn vp vc vz <<<"$name"
    if [ "$vp" = "/dev/$vn" ] && [ "$vc" = "$vz" ] && $RIG virsh -q vol-info --pool "w$p" "$vn" >/dev/null 2>&1; then
      ok "$label $size: vol-create printed volume $vn ($vp, $vc B) and libvirt lists it"
    else bad "$label $size: vol-create printed $name"; fi
    if [ "$(table "$V")" = "$(table "$W")" ] && [ "$(vols "v$p" "$V")" = "$(vols "w$p" "$W")" ]; then
      ok "$label $size: vol-create --mode libvirt = virsh vol-create-as (table and volumes)"
    else bad "$label $size: virsh: $(table "$V" | tr '\n' ' ') / $(vols "v$p" "$V" | tr '\n' ' ') vs ours: $(table "$W" | tr '\n' ' ') / $(vols "w$p" "$W" | tr '\n' ' ')"; fi
    if ! out=$("$BIN" vol-create --connect "$URI" --pool "x$p" --capacity "$size" ${type:+--type $type} --json 2>"$WORK/err"); then
      bad "vol-create --mode exact $size: $(cat "$WORK/err")"; continue
    fi
    lz=$vz
    read -r xz cap <<<"$(python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(v["volume"]["capacity"], v["capacity"])' "$out")"
    if [ "$xz" -lt "$cap" ]; then bad "$label $size: exact volume ($xz B) smaller than the request"
    elif [ "$lz" -lt "$cap" ]; then ok "$label $size: exact volume $xz B holds the request; libvirt's ($lz B) is $(( cap - lz )) B SHORT"
    elif [ "$xz" -le "$lz" ] || [ "$type" = extended ]; then ok "$label $size: exact volume $xz B, libvirt's $lz B"
    else bad "$label $size: exact volume $xz B larger than libvirt's $lz B"; fi
  done
  [ "$(vols "v$p" "$V" | wc -l)" = "$(vols "x$p" "$X" | wc -l)" ] && ok "$label: exact pool lists as many volumes as libvirt's" \
    || bad "$label: volumes: libvirt $(vols "v$p" "$V" | wc -l), exact $(vols "x$p" "$X" | wc -l)"
  $RIG virsh vol-list "w$p" --details | sed 's/^/  virsh (vol-create --mode libvirt): /'
}
vol_compare msdos "10M" "2611200" "1M" "100M extended" "5M" "1305500" "2M"
vol_compare gpt "10M" "3000000" "513"

# refused: the table must stay as it is
BEFORE=$(table "$LOOP")
refused() {  # refused WHAT EXPECTED-TEXT ARGS...
  local what=$1 want=$2 err; shift 2
  if err=$("$BIN" vol-create "$@" 2>&1); then bad "$what accepted"
  elif grep -qF -- "$want" <<<"$err" && [ "$(table "$LOOP")" = "$BEFORE" ]; then ok "$what refused: $err"
  else bad "$what: unexpected error: $err"; fi
}
refused "unknown pool" 'no storage pool named "nosuch"' --connect "$URI" --pool nosuch --capacity 1M
refused "unreachable URI" "cannot connect to libvirt at lxc:///system?socket=$WORK/none" \
  --connect "lxc:///system?socket=$WORK/none" --pool xg --capacity 1M
refused "wrong --name" "libvirt will name this volume $(basename "$LOOP")p4" --connect "$URI" --pool xg --name data --capacity 1M
mkdir "$WORK/dirpool"
$RIG virsh pool-define-as dp dir --target "$WORK/dirpool" >/dev/null; $RIG virsh pool-start dp >/dev/null; POOLS+=(dp)
refused "dir pool" "pool dp is a dir pool, not a disk pool" --connect "$URI" --pool dp --capacity 1M
$RIG virsh pool-destroy xg >/dev/null
refused "inactive pool" "pool xg at $URI is inactive" --connect "$URI" --pool xg --capacity 1M
$RIG virsh pool-start xg >/dev/null
if out=$("$BIN" vol-create --connect "$URI" --pool xg --name "$(basename "$LOOP")p4" --capacity 1M --dry-run) \
   && grep -q "would create volume $(basename "$LOOP")p4" <<<"$out" && [ "$(table "$LOOP")" = "$BEFORE" ]; then
  ok "--dry-run with the right --name: $(tail -n 1 <<<"$out"), table unchanged"
else bad "--dry-run: ${out:-failed}"; fi

echo "storage-e2e: $pass passed, $fail failed"
[ "$fail" = 0 ]
