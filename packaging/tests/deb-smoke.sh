#!/bin/bash
# deb-smoke.sh PRISTINE_ROOT DEB_DIR [S390_TOOLS_DEB] -- install the built .debs with apt into a copy of a
# debootstrapped Debian 12 root and use them there: resolve a guest from a fixture lease
# directory through the installed NSS module with getent, run nodedev-helper --help, open the
# man pages. Everything happens in a private mount namespace on a throw-away copy; the host's
# /etc and /var/lib/libvirt are never touched. A foreign root (s390x .debs in an s390x root)
# runs its programs under qemu-user: packaging/s390x/userns-binfmt.sh, all system ids mapped.
# With S390_TOOLS_DEB (Debian's s390-tools for the root's architecture), it is installed next to
# ours: dpkg must find no file both packages ship, and both must keep their files.
set -euo pipefail
pristine=$1 debs=$2 s390_tools_deb=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
work=$pristine.work
rm -rf "$work"; cp -a "$pristine" "$work"
trap 'rm -rf "$work"' EXIT
fail=0 skipped=0 passed=0
ok()   { echo "deb-smoke: ok: $*"; passed=$((passed + 1)); }
bad()  { echo "deb-smoke: FAILED: $*" >&2; fail=1; }
skip() { echo "deb-smoke: SKIPPED: $*"; skipped=$((skipped + 1)); }

mkdir -p "$work/tmp/debs"
cp "$debs"/*.deb "$work/tmp/debs/"
cp /etc/resolv.conf "$work/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$work/usr/sbin/policy-rc.d"; chmod 755 "$work/usr/sbin/policy-rc.d"
# the fixture lease directory and an nsswitch.conf using both services
mkdir -p "$work/var/lib/libvirt/dnsmasq"
cp "$here"/fixtures/dnsmasq/* "$work/var/lib/libvirt/dnsmasq/"

arch=$(dpkg-deb -f "$(ls "$debs"/virt-hostkit-nss_*.deb | head -n1)" Architecture)
nm="nm"
if [ "$arch" = "$(dpkg --print-architecture)" ]; then
  in_root() {  # in_root CMD... -- run CMD in the root, /proc mounted in a private namespace
    unshare --mount --propagation private -- sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$work" "$@"
  }
else
  in_root() {  # the same in a user namespace whose binfmt_misc runs $arch programs with qemu-user
    VHK_USERNS_IDS=all "$here/../s390x/userns-binfmt.sh" \
      sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$work" "$@"
  }
  gnu=$(dpkg-architecture -a"$arch" -qDEB_HOST_GNU_TYPE 2>/dev/null) || true
  command -v "$gnu-nm" >/dev/null && nm=$gnu-nm
  echo "deb-smoke: $arch root: programs run under qemu-user"
fi
# the root's own apt resolves Depends (libvirt0, parted, ...) from the Debian archive
if in_root sh -c 'apt-get -q update >/tmp/apt.log 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get -y -q install --no-install-recommends /tmp/debs/*.deb >>/tmp/apt.log 2>&1'; then
  ok "apt installed ($arch) $(ls "$debs"/*.deb | xargs -n1 basename | tr '\n' ' ')"
else
  tail -n 30 "$work/tmp/apt.log" >&2; bad "apt install of the .debs"; exit 1
fi
# after apt (which needs dns): the hosts line the man page recommends, minus dns
sed -i 's/^hosts:.*/hosts:          files libvirt libvirt_guest/' "$work/etc/nsswitch.conf"
grep -q '^hosts:.*libvirt_guest' "$work/etc/nsswitch.conf" || echo 'hosts: files libvirt libvirt_guest' >> "$work/etc/nsswitch.conf"
in_root dpkg -s virt-hostkit-nss >/dev/null && ok "dpkg knows virt-hostkit-nss" || bad "virt-hostkit-nss not installed"
m=$(in_root uname -m) && ok "the root runs $arch programs (uname -m in the root: $m)" || bad "uname -m in the root"
ma=$(in_root dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || in_root sh -c 'ls -d /usr/lib/*-linux-gnu | head -n1 | xargs basename')
for n in libnss_libvirt.so.2 libnss_libvirt_guest.so.2; do
  [ -f "$work/usr/lib/$ma/$n" ] && ok "/usr/lib/$ma/$n installed" || bad "/usr/lib/$ma/$n missing"
done
# NSS: only claim it once the module exports the entry points (the nss part may not have landed)
if "$nm" -D --defined-only "$work/usr/lib/$ma/libnss_libvirt.so.2" 2>/dev/null | grep -q ' _nss_libvirt_gethostbyname4_r$'; then
  out=$(in_root getent hosts vhk-guest) || true
  [[ "$out" == 192.168.122.77*vhk-guest* ]] && ok "getent hosts vhk-guest -> $out (service libvirt, fixture lease)" \
    || bad "getent hosts vhk-guest gave '$out', want 192.168.122.77"
  out=$(in_root getent -s hosts:libvirt_guest ahostsv4 vhk-domain | head -n1) || true
  [[ "$out" == 192.168.122.77* ]] && ok "getent -s hosts:libvirt_guest ahostsv4 vhk-domain -> $out" \
    || bad "libvirt_guest lookup of vhk-domain gave '$out', want 192.168.122.77"
  out=$(in_root getent hosts no-such-guest) && bad "getent resolved no-such-guest: $out" || ok "getent hosts no-such-guest: not found"
else
  skip "getent through the installed module: libnss_libvirt.so.2 exports no _nss_libvirt_gethostbyname4_r yet"
fi
for b in nodedev-helper storage-align nss-libvirt-guest; do
  if [ -x "$work/usr/sbin/$b" ]; then
    in_root "/usr/sbin/$b" --help >/dev/null && ok "$b --help" || bad "$b --help"
  else skip "$b --help: not in the packages (binary not built yet)"; fi
done
for p in nodedev-helper storage-align nss-libvirt-guest; do
  for f in usr/share/bash-completion/completions/$p usr/share/zsh/vendor-completions/_$p \
           usr/share/fish/vendor_completions.d/$p.fish; do
    [ -s "$work/$f" ] && ok "/$f installed" || bad "/$f missing"
  done
  out=$(in_root env MANWIDTH=80 man -P cat 8 "$p" 2>/dev/null) || true
  grep -q "^NAME" <<<"$out" && ok "man 8 $p renders ($(wc -l <<<"$out") lines)" || bad "man 8 $p"
done
# Coexistence with s390-tools (packaging/README.md): sid's s390-tools needs a newer glibc than
# this bookworm root, so it is unpacked without its dependencies (dpkg --unpack
# --force-depends); dpkg still refuses any file another package owns, which is the question.
if [ -n "$s390_tools_deb" ]; then
  cp "$s390_tools_deb" "$work/tmp/"
  v=$(dpkg-deb -f "$s390_tools_deb" Version)
  if in_root dpkg --unpack --force-depends "/tmp/$(basename "$s390_tools_deb")" >"$work/tmp/s390-tools.log" 2>&1; then
    ok "s390-tools $v unpacked next to ours: dpkg found no file both ship"
  else
    tail -n 20 "$work/tmp/s390-tools.log" >&2; bad "dpkg --unpack s390-tools $v next to ours"
  fi
  shared=$(in_root sh -c 'dpkg -L s390-tools | sort -u > /tmp/a; for p in $(dpkg-query -W -f "\${Package}\n" "virt-hostkit-*"); do dpkg -L $p; done | sort -u > /tmp/b; comm -12 /tmp/a /tmp/b | while read -r f; do [ -d "$f" ] || echo "$f"; done') || true
  [ -z "$shared" ] && ok "no file is listed by both s390-tools and virt-hostkit" || bad "files in both: $shared"
  for f in usr/sbin/chzdev usr/sbin/lszdev usr/sbin/nodedev-helper usr/sbin/nodedev-helper-callout; do
    [ -x "$work/$f" ] && ok "/$f present with both installed" || bad "/$f missing with both installed"
  done
  for d in usr/lib/mdevctl/scripts.d/callouts etc/mdevctl.d/scripts.d/callouts; do
    first=$(LC_ALL=C ls "$work/$d" 2>/dev/null | head -n1)
    target=$(readlink "$work/$d/$first" 2>/dev/null) || target=
    case "$target" in /*) target=$work$target;; ?*) target=$work/$d/$target;; esac
    if [ "$first" = 00-nodedev-helper ] && [ -x "$target" ]; then
      ok "/$d: 00-nodedev-helper sorts first and runs nodedev-helper-callout ($(LC_ALL=C ls "$work/$d" | tr '\n' ' '))"
    else bad "/$d: first callout is '$first' -> '$target'"; fi
  done
  in_root /usr/sbin/nodedev-helper --help >/dev/null && ok "nodedev-helper --help with s390-tools installed" \
    || bad "nodedev-helper --help with s390-tools installed"
fi
echo "deb-smoke: $passed passed, $skipped SKIPPED, $([ $fail = 0 ] && echo 0 || echo some) failed"
exit $fail
