#!/bin/bash
# check-udev.sh RULES_DIR -- the udev rules we install, parsed and matched by udev's own tooling.
#
# systemd 252 (Debian 12) has no `udevadm verify` (added in 253); where it exists it is used.
# Otherwise `udevadm test` runs in a private mount namespace whose /etc/udev/rules.d is
# RULES_DIR (+ a chzdev-format 41-ap.rules) and whose /etc/mdevctl.d is a temp dir: udev reads
# every rules file (with a private tmpfs /run, as udevadm test writes /run/udev), reports each syntax error as "FILE:LINE ...", and prints the RUN commands of
# the rules that match. Nothing on the host changes. Needs root (unshare -m).
set -euo pipefail
rules=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
ap_rule=$here/../../nodedev-helper/testdata/hook/41-ap.rules
fail() { echo "check-udev: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (unshare -m, bind mounts)"
command -v udevadm >/dev/null || fail "udevadm missing (scripts/deps.sh hooks)"
tmp=$(mktemp -d /tmp/check-udev.XXXXXX); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/rules.d" "$tmp/mdevctl.d/lo"
cp "$rules"/*.rules "$ap_rule" "$tmp/rules.d/"
n=$(ls "$tmp/rules.d" | wc -l)

if udevadm verify --help >/dev/null 2>&1; then
  udevadm verify --resolve-names=never "$tmp"/rules.d/*.rules || fail "udevadm verify rejected a rule"
  echo "check-udev: udevadm verify: $n rules files OK"
fi

# 1. syntax: udev reads every file; a bad key/operator/value is logged as FILE:LINE message.
#    Positive control first: a broken rule must be reported, or this check proves nothing.
printf 'ACTION=="add", NOSUCHKEY=="x"\n' > "$tmp/rules.d/99-control.rules"
run_test() {  # run_test ACTION SYSPATH
  # udevadm test writes the device database (/run/udev/data): give it a private /run
  unshare -m bash -c 'mount --bind "$1/rules.d" /etc/udev/rules.d && mount --bind "$1/mdevctl.d" /etc/mdevctl.d &&
                      mount -t tmpfs check-udev /run &&
                      udevadm test --action="$2" "$3" 2>&1' _ "$tmp" "$1" "$2"
}
out=$(run_test add /sys/class/net/lo)
echo "$out" | grep -q '^/etc/udev/rules.d/99-control.rules:1 ' || fail "udevadm test did not report the deliberately broken control rule"
rm "$tmp/rules.d/99-control.rules"
out=$(run_test add /sys/class/net/lo)
for f in "$tmp"/rules.d/*.rules; do
  b=$(basename "$f")
  echo "$out" | grep -q "Reading rules file: /etc/udev/rules.d/$b" || fail "udev did not read $b"
  if echo "$out" | grep "^/etc/udev/rules.d/$b:[0-9]"; then fail "udev reports errors in $b (above)"; fi
done
echo "check-udev: udevadm test: $n rules files read, no errors ($(udevadm --version 2>/dev/null | head -n1))"

# 2. our 60-mdevctl.rules replaces the package's rule (same name; the /etc file wins)
if [ -e /usr/lib/udev/rules.d/60-mdevctl.rules ] || [ -e /lib/udev/rules.d/60-mdevctl.rules ]; then
  echo "$out" | grep -q "Skipping overridden file '.*/60-mdevctl.rules'" \
    || fail "the package's 60-mdevctl.rules is not overridden by ours"
  echo "check-udev: the mdevctl package's 60-mdevctl.rules is overridden"
fi

# 3. it matches an "add" of a parent that has /etc/mdevctl.d/<parent>, and runs mdevctl for it
#    (udevadm test prints the RUN list and does not execute it)
run=$(echo "$out" | grep -E "^run: .*start-parent-mdevs lo " || true)
[ -n "$run" ] || fail "no RUN 'mdevctl start-parent-mdevs lo' for an add event with /etc/mdevctl.d/lo:
$(echo "$out" | grep -iE 'run|mdevctl' | head)"
echo "check-udev: add of a parent with configs -> $(echo "$run" | head -n1 | cut -c1-100)..."

# 4. the mdevctl that command finds exists here; the package rule's path may not (Debian bug)
found=$(env -i /bin/sh -c 'PATH=/usr/sbin:/usr/bin:/sbin:/bin; command -v mdevctl') || fail "the rule's PATH finds no mdevctl"
echo "check-udev: the rule's command resolves mdevctl to $found"
pkg=$(grep -ho '/usr/s\?bin/mdevctl' /usr/lib/udev/rules.d/60-mdevctl.rules 2>/dev/null | head -n1 || true)
if [ -n "$pkg" ] && [ ! -x "$pkg" ]; then
  echo "check-udev: (the package rule calls $pkg, which does not exist here: the bug this rule fixes)"
fi
