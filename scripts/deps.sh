#!/bin/bash
# deps.sh [--check] GROUP... -- install, idempotently, what a part of virt-hostkit needs on Debian 12.
#
# Groups: build nss e2e ap storage packaging s390x bench hooks callout nodedev s390tools all
# Installs only what is missing (dpkg -s), runs `apt-get update` at most once, waits for
# the dpkg lock instead of failing. Not root: prints the command to run and exits 1.
# --check (what `make`, `make install`, `make deb`... use): installs nothing; names what is
# missing and the command that installs it, exits 1; silent when nothing is missing, and on a
# system without dpkg (the package names are Debian's) it checks nothing.
set -euo pipefail

declare -A APT=(
  [build]="pkg-config libudev-dev libvirt-dev libfuse3-dev fuse3"
  [nss]="libnss-libvirt util-linux patchelf binutils gcc"
  [e2e]="libvirt-daemon libvirt-clients libvirt-daemon-driver-lxc libvirt-daemon-driver-qemu dnsmasq-base iptables busybox iproute2 util-linux isc-dhcp-client openssh-server openssh-client libnss-libvirt shellcheck"
  [ap]="mdevctl udev fuse3 kmod"
  [storage]="parted util-linux"
  [packaging]="rpm rpmlint lintian debhelper dpkg-dev debootstrap qemu-user-static fakeroot patchelf man-db bash-completion zsh fish"
  [s390x]="gcc-s390x-linux-gnu libc6-dev-s390x-cross qemu-user-static"
  [bench]="valgrind libnss-libvirt"
  [hooks]="qemu-system-misc mdevctl udev"
  [callout]="mdevctl util-linux g++"
  [nodedev]="libvirt-daemon libvirt-clients mdevctl fuse3 util-linux"
  [s390tools]="qemu-user-static debian-archive-keyring util-linux fuse3 dpkg"
)
# Debian's own Rust 1.85 carries an s390x standard library (rustup here cannot add targets);
# the liblzma pin avoids a version clash between the two architectures (doc/packaging.md).
# Since Debian 12 went to LTS (June 2026), bookworm-security has no s390x builds: a newer
# amd64 zlib1g/libzstd1 from there cannot pair with the s390x ones (Multi-Arch: same needs
# equal versions), and apt's resolver gives up ("libllvm19:s390x : Depends: zlib1g:s390x ...
# but it is not going to be installed"). Naming the s390x libraries makes apt keep the amd64
# ones at the version both architectures have.
RUSTWEB_V=1.85.0+dfsg3-1~deb12u3
LZMA_V=5.4.1-1+deb12u1
S390X_RUST="rustc-web=$RUSTWEB_V cargo-web=$RUSTWEB_V libstd-rust-web-dev=$RUSTWEB_V libstd-rust-web-1.85=$RUSTWEB_V libstd-rust-web-dev:s390x=$RUSTWEB_V libstd-rust-web-1.85:s390x=$RUSTWEB_V liblzma5=$LZMA_V liblzma5:s390x=$LZMA_V liblzma-dev=$LZMA_V zlib1g:s390x libzstd1:s390x"

check_only=0
[ "${1:-}" = --check ] && { check_only=1; shift; }
groups=("$@")
[ ${#groups[@]} -gt 0 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
# all = every group above (a hand-kept list fell behind once)
[ "${groups[0]}" = all ] && mapfile -t groups < <(printf '%s\n' "${!APT[@]}" | sort)

want=()
for g in "${groups[@]}"; do
  [ -n "${APT[$g]+x}" ] || { echo "deps.sh: unknown group '$g'" >&2; exit 2; }
  for p in ${APT[$g]}; do want+=("$p"); done
  [ "$g" = s390x ] && for p in $S390X_RUST; do want+=("$p"); done
done

installed() {  # installed PKG[=VER] -> 0 if that package (and version) is installed
  local name=${1%%=*} ver=
  [ "$name" != "$1" ] && ver=${1#*=}
  local st
  st=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null) || return 1
  case "$st" in "install ok installed"*) ;; *) return 1;; esac
  [ -z "$ver" ] || [ "${st##* }" = "$ver" ]
}

if ! command -v dpkg-query >/dev/null; then
  [ $check_only = 1 ] && exit 0
  echo "deps.sh: no dpkg here: the groups name Debian 12 packages; install the equivalents of:" >&2
  echo "deps.sh:   ${want[*]}" >&2
  exit 1
fi

missing=()
for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  [ $check_only = 1 ] || echo "deps.sh: ${groups[*]}: everything installed"
  exit 0
fi
if [ $check_only = 1 ]; then
  echo "deps.sh: missing packages: ${missing[*]}" >&2
  echo "deps.sh: install them with: $([ "$(id -u)" = 0 ] || echo 'sudo ')$0 ${groups[*]} (or make deps)" >&2
  exit 1
fi

need_s390x_arch=0
for p in "${missing[@]}"; do case "$p" in *:s390x*) need_s390x_arch=1;; esac; done

if [ "$(id -u)" != 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}" >&2
  echo "deps.sh: run as root (e.g. sudo $0 ${groups[*]}) to install them" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APTGET=(apt-get -o DPkg::Lock::Timeout=900 -y -q)
if [ $need_s390x_arch = 1 ] && ! dpkg --print-foreign-architectures | grep -qx s390x; then
  dpkg --add-architecture s390x
  rm -f /var/lib/apt/periodic/.virt-hostkit-updated
fi
# one update per boot of the package lists (a fresh machine has none)
stamp=/var/lib/apt/periodic/.virt-hostkit-updated
if [ ! -e "$stamp" ] || [ -z "$(ls /var/lib/apt/lists/*_Packages 2>/dev/null)" ] \
   || { [ $need_s390x_arch = 1 ] && [ -z "$(ls /var/lib/apt/lists/*s390x_Packages 2>/dev/null)" ]; }; then
  echo "deps.sh: apt-get update"
  "${APTGET[@]}" update >/dev/null
  mkdir -p "$(dirname "$stamp")"; touch "$stamp"
fi
echo "deps.sh: installing ${missing[*]}"
# policy-rc.d: packages must not start services (sshd, libvirtd, dnsmasq) on the host
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.virt-hostkit
chmod 755 /usr/sbin/policy-rc.d.virt-hostkit
had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
[ $had_policy = 1 ] || cp /usr/sbin/policy-rc.d.virt-hostkit /usr/sbin/policy-rc.d
rc=0
"${APTGET[@]}" install --no-install-recommends "${missing[@]}" >/tmp/virt-hostkit-apt.log 2>&1 || rc=$?
[ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
rm -f /usr/sbin/policy-rc.d.virt-hostkit
if [ $rc != 0 ]; then
  tail -n 30 /tmp/virt-hostkit-apt.log >&2
  echo "deps.sh: apt-get install failed (exit $rc); full log: /tmp/virt-hostkit-apt.log" >&2
  exit $rc
fi
echo "deps.sh: installed ${#missing[@]} package(s)"
