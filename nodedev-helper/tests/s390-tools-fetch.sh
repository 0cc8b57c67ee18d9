#!/bin/bash
# Fetches Debian sid's s390x s390-tools (chzdev, lszdev with -t ap) with the libc6 and
# libjson-c5 it needs (GLIBC 2.38+) and unpacks them into DIR/tree, for running under
# qemu-s390x-static -L DIR/tree (make check-s390tools).
#
#   s390-tools-fetch.sh DIR
#
# apt-get download goes through a scratch configuration under DIR/apt: its own sources list
# (sid, [arch=s390x], the archive URI this machine's apt sources already name), its own lists
# and cache; the machine's sources, lists and dpkg database are untouched. sid moves: whatever
# version it serves is taken if it is 2.40 or newer (older ones write the old rule format).
# Any failure exits non-zero with the reason; nothing is skipped.
set -euo pipefail
dir=${1:?usage: s390-tools-fetch.sh DIR}
min=2.40
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
tree=$dir/tree
fail() { echo "s390-tools-fetch: FAILED: $*" >&2; exit 1; }

if [ -x "$tree/usr/sbin/chzdev" ] && [ -s "$dir/version" ]; then
  echo "s390-tools-fetch: s390-tools $(cat "$dir/version") (s390x, Debian sid) already in $tree"
  exit 0
fi
command -v qemu-s390x-static >/dev/null || fail "qemu-s390x-static is missing (package qemu-user-static)"

# The Debian archive this machine already uses (not the security archive).
uri=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
      grep -v -- '-security' | grep -m1 '/debian/\?$' || true)
[ -n "$uri" ] || uri=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -v -- '-security' | head -n1 || true)
[ -n "$uri" ] || fail "no Debian archive URI in this machine's apt sources (apt-get indextargets is empty: run apt-get update)"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || fail "$keyring is missing (package debian-archive-keyring)"

apt=$dir/apt
rm -rf "$apt" "$tree"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs" "$tree"
echo "deb [arch=s390x signed-by=$keyring] $uri sid main" > "$apt/sources.list"
opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
      -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
      -o APT::Architecture=s390x -o APT::Architectures::=s390x -o Acquire::Languages=none
      -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false
      -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
      -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
      -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
      -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false
      -o APT::Sandbox::User=root)
echo "s390-tools-fetch: apt-get update for sid [arch=s390x] from $uri (scratch config in $apt)"
apt-get "${opts[@]}" -q update >"$apt/update.log" 2>&1 ||
  { cat "$apt/update.log" >&2; fail "apt-get update of sid from $uri failed"; }
(cd "$apt/debs" && apt-get "${opts[@]}" -q download s390-tools:s390x libc6:s390x libjson-c5:s390x) \
  >"$apt/download.log" 2>&1 ||
  { cat "$apt/download.log" >&2; fail "apt-get download s390-tools libc6 libjson-c5 (s390x, sid) failed"; }
deb=$(ls "$apt"/debs/s390-tools_*_s390x.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || fail "no s390-tools .deb was downloaded"
version=$(dpkg-deb -f "$deb" Version)
dpkg --compare-versions "$version" ge "$min" || fail "sid serves s390-tools $version, older than $min (the old rule format)"
for f in "$apt"/debs/*.deb; do dpkg-deb -x "$f" "$tree" || fail "dpkg-deb -x $f"; done
# merged /usr: the loader is /lib/ld64.so.1 and libraries are looked up in /lib/...
[ -e "$tree/lib" ] || ln -s usr/lib "$tree/lib"
qemu-s390x-static -L "$tree" "$tree/usr/sbin/chzdev" --version >/dev/null ||
  fail "the unpacked chzdev does not run under qemu-s390x-static -L $tree"
echo "$version" > "$dir/version"
echo "s390-tools-fetch: s390-tools $version (s390x, Debian sid), $(du -sh "$apt/debs" | cut -f1) of packages, unpacked into $tree"
