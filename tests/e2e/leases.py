#!/usr/bin/env python3
"""leases.py -- what the lease files libvirt wrote say, computed independently of the module.

The end-to-end tests compare what `getent` answers through the NSS module with what
libvirt's own files say, read here with Python's json parser and the matching rules of
doc/nss.md (nss-libvirt-guest: live = expiry-time 0 or >= now; hostname and domain names
compared ASCII case-insensitively; MACs case-insensitively).

  leases.py DIR hostname NAME [4|6|any]   addresses leased to DHCP hostname NAME
  leases.py DIR domain NAME [4|6|any]     addresses leased to the MACs of libvirt domain NAME
  leases.py DIR mac MAC [4|6|any]         addresses leased to MAC
  leases.py DIR macs-has DOMAIN           exit 0 if some <bridge>.macs lists DOMAIN

Addresses are printed one per line, sorted; exit 1 if there is none.
"""

import glob
import json
import os
import sys
import time


def load(path):
    """A lease/mac file as libvirt writes it; an empty file is an empty list."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.strip():
        return []
    return json.loads(text)


def live_leases(lease_dir):
    now = int(time.time())
    for path in sorted(glob.glob(os.path.join(lease_dir, "*.status"))):
        for lease in load(path):
            expiry = int(lease.get("expiry-time", 0))
            if "ip-address" not in lease or (expiry != 0 and expiry < now):
                continue
            yield lease


def domain_macs(lease_dir, domain):
    macs = set()
    for path in sorted(glob.glob(os.path.join(lease_dir, "*.macs"))):
        for entry in load(path):
            if entry.get("domain", "").lower() == domain.lower():
                macs.update(m.lower() for m in entry.get("macs", []))
    return macs


def family_ok(addr, fam):
    return fam == "any" or (fam == "6") == (":" in addr)


def main(argv):
    if len(argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    lease_dir, what, key = argv[1], argv[2], argv[3]
    fam = argv[4] if len(argv) > 4 else "any"
    if fam not in ("4", "6", "any"):
        sys.stderr.write(f"leases.py: family must be 4, 6 or any (got {fam!r})\n")
        return 2
    if what == "macs-has":
        return 0 if domain_macs(lease_dir, key) else 1
    if what == "hostname":
        match = lambda l: l.get("hostname", "").lower() == key.lower()  # noqa: E731
    elif what == "domain":
        macs = domain_macs(lease_dir, key)
        match = lambda l: l.get("mac-address", "").lower() in macs  # noqa: E731
    elif what == "mac":
        match = lambda l: l.get("mac-address", "").lower() == key.lower()  # noqa: E731
    else:
        sys.stderr.write(f"leases.py: unknown query {what!r}\n")
        return 2
    addrs = sorted({l["ip-address"] for l in live_leases(lease_dir) if match(l) and family_ok(l["ip-address"], fam)})
    for a in addrs:
        print(a)
    return 0 if addrs else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
