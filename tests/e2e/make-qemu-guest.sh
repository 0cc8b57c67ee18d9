#!/bin/bash
# make-qemu-guest.sh OUTDIR -- build a tiny direct-boot guest for tests/e2e/rig.sh RIG_DOMAIN_MODE=qemu:
#   OUTDIR/vmlinuz    Debian 12 cloud kernel (virtio drivers are modules there)
#   OUTDIR/initrd.gz  busybox-static + virtio_net & deps; /init loads them, brings eth0 up
#                     and runs "udhcpc -x hostname:<rig.hostname= from the kernel cmdline>"
# Nothing is installed: the two .debs are fetched with "apt-get download" and unpacked.
# Needs: apt (Debian 12 repos), dpkg-deb, cpio, gzip.  ~28 MB download, ~5 s.
# Then: RIG_DOMAIN_MODE=qemu RIG_QEMU_KERNEL=OUTDIR/vmlinuz RIG_QEMU_INITRD=OUTDIR/initrd.gz rig.sh up
set -euo pipefail
for c in apt-get apt-cache dpkg-deb cpio gzip xz; do
  command -v "$c" >/dev/null || { echo "make-qemu-guest.sh: $c missing (apt-get install -y cpio xz-utils)" >&2; exit 1; }
done
OUT=${1:?usage: $0 OUTDIR}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cd "$W"
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$KPKG" ] || { echo "cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
apt-get download "$KPKG" busybox-static >/dev/null 2>&1 || apt-get download "$KPKG" busybox-static
dpkg-deb -x ./linux-image-*.deb k
dpkg-deb -x ./busybox-static_*.deb bb
KVER=$(ls k/lib/modules)
M=k/lib/modules/$KVER/kernel
mkdir -p root/{bin,dev,proc,sys,lib/modules}
cp bb/bin/busybox root/bin/
for f in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
         drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci net/core/failover \
         drivers/net/net_failover drivers/net/virtio_net; do
  src=$(ls "$M/$f".ko* 2>/dev/null | head -n1)
  [ -n "$src" ] || { echo "module $f missing in $KPKG" >&2; exit 1; }
  case "$src" in
    *.ko.xz) xz -dc "$src" > "root/lib/modules/$(basename "$f").ko" ;;
    *.ko.zst) zstd -dqc "$src" > "root/lib/modules/$(basename "$f").ko" ;;
    *) cp "$src" root/lib/modules/ ;;
  esac
done
cat > root/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net; do
  insmod /lib/modules/$m.ko || echo "rig-init: insmod $m failed"
done
HN=rigvm
for a in $(cat /proc/cmdline); do case "$a" in rig.hostname=*) HN=${a#rig.hostname=};; esac; done
ip link set lo up; ip link set eth0 up
echo "rig-init: udhcpc as $HN on eth0 ($(cat /sys/class/net/eth0/address))"
while :; do udhcpc -f -i eth0 -x hostname:$HN -T 1 -A 1 -s /udhcpc.script; sleep 1; done
EOF
cat > root/udhcpc.script <<'EOF'
#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew) ip -4 addr flush dev "$interface"; ip -4 addr add "$ip/${mask:-24}" dev "$interface"
               [ -n "$router" ] && ip -4 route replace default via "${router%% *}"
               echo "rig-init: $1 $ip" ;;
esac
exit 0
EOF
chmod +x root/init root/udhcpc.script
(cd root && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initrd.gz"
cp k/boot/vmlinuz-* "$OUT/vmlinuz"
chmod 0644 "$OUT/initrd.gz" "$OUT/vmlinuz"
echo "RIG_QEMU_KERNEL=$OUT/vmlinuz"
echo "RIG_QEMU_INITRD=$OUT/initrd.gz"
