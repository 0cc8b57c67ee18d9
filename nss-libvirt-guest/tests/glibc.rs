//! Through the real glibc: getaddrinfo after `__nss_configure_lookup`, `getent` in a private
//! mount namespace with the fixture bind-mounted on /var/lib/libvirt/dnsmasq (the module's
//! compiled-in directory), a setuid program run as `nobody`, and the `.so`'s exports.
//!
//! These need gcc, util-linux (unshare, setpriv), binutils and root, and run host binaries
//! against the module, so they are `#[ignore]`d in plain `cargo test` (and under qemu for
//! s390x) and run by `make check-nss` with `--ignored`. They fail loudly when not root.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TempDir, cdylib, standard_fixture};

fn require_root() {
    // SAFETY: getuid has no preconditions.
    assert_eq!(
        unsafe { libc::getuid() },
        0,
        "this test needs root (mount namespaces, setuid): run `make check-nss` as root"
    );
}

/// A test area: the fixture, a lib dir holding the module under both installed names,
/// and the compiled helper.
struct Area {
    tmp: TempDir,
}

impl Area {
    fn new(tag: &str) -> Area {
        let tmp = TempDir::new(tag);
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let leases = tmp.path().join("leases");
        fs::create_dir(&leases).unwrap();
        standard_fixture(&leases);
        let lib = tmp.path().join("lib");
        fs::create_dir(&lib).unwrap();
        for n in ["libnss_libvirt.so.2", "libnss_libvirt_guest.so.2"] {
            fs::copy(cdylib(), lib.join(n)).unwrap();
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/glibc/nsstool.c");
        let out = Command::new("gcc")
            .args(["-O1", "-Wall", "-Werror", "-o"])
            .arg(tmp.path().join("nsstool"))
            .arg(&src)
            .arg("-ldl")
            .output()
            .expect("run gcc");
        assert!(
            out.status.success(),
            "gcc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Area { tmp }
    }
    fn p(&self, n: &str) -> PathBuf {
        self.tmp.path().join(n)
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `nsstool gai` with our module on LD_LIBRARY_PATH and the override variable.
fn gai(a: &Area, service: &str, name: &str, fam: &str) -> (i32, String) {
    let o = Command::new(a.p("nsstool"))
        .args(["gai", service, name, fam])
        .env("LD_LIBRARY_PATH", a.p("lib"))
        .env("LIBVIRT_NSS_LEASE_DIR", a.p("leases"))
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), text(&o))
}

#[test]
#[ignore = "needs gcc: run by `make check-nss`"]
fn getaddrinfo_through_nss_configure_lookup() {
    let a = Area::new("gai");
    assert_eq!(
        gai(&a, "libvirt", "fedora", "any"),
        (0, "fd00:1::10\n192.168.122.10\n".into())
    );
    assert_eq!(
        gai(&a, "libvirt", "fedora", "4"),
        (0, "192.168.122.10\n".into())
    );
    assert_eq!(
        gai(&a, "libvirt", "Fedora", "6"),
        (0, "fd00:1::10\n".into())
    );
    assert_eq!(
        gai(&a, "libvirt_guest", "guest-fedora", "any"),
        (0, "fd00:1::10\n192.168.122.10\n".into())
    );
    assert_eq!(
        gai(&a, "libvirt_guest", "guest-fedora", "4"),
        (0, "192.168.122.10\n".into())
    );
    // A name with 100 addresses: glibc's first buffer is too small, our ERANGE makes it grow
    // (libvirt's module returns ENOMEM here and getaddrinfo fails with EAI_AGAIN).
    for (service, name) in [("libvirt", "many"), ("libvirt_guest", "vm-many")] {
        for fam in ["any", "4"] {
            let (rc, out) = gai(&a, service, name, fam);
            let want: Vec<String> = (1..=100).rev().map(|i| format!("10.200.0.{i}")).collect();
            assert_eq!(
                (rc, out.lines().map(str::to_owned).collect::<Vec<_>>()),
                (0, want),
                "{service} {name} {fam}"
            );
        }
    }
    for (service, name) in [
        ("libvirt", "nosuch"),
        ("libvirt_guest", "nosuch"),
        ("libvirt_guest", "fedora"),
    ] {
        assert_eq!(
            gai(&a, service, name, "any"),
            (2, "gai-error: Name or service not known\n".into()),
            "{service} {name}"
        );
    }
    // Known name, other family only: "no address associated" (NO_DATA), not "unknown".
    let (rc, out) = gai(&a, "libvirt", "v6only", "4");
    assert_eq!(rc, 2);
    assert!(out.contains("gai-error:"), "{out}");
}

/// An IPv6 link-local lease reaches a program through getaddrinfo with its bridge's interface
/// index as scope id (the lease file is `lo.status`: lo is index 1 in every namespace), after
/// the other addresses; single-family IPv6 lookups (a hostent, no scope) do not get it.
#[test]
#[ignore = "needs gcc: run by `make check-nss`"]
fn link_local_addresses_come_with_their_scope() {
    let a = Area::new("gai-ll");
    let t = common::now();
    common::write_atomic(
        &a.p("leases").join("lo.status"),
        &format!(
            "[\n{},\n{}\n]\n",
            common::lease(
                "fe80::5054:ff:fe00:77",
                "52:54:00:00:00:77",
                Some("ll"),
                t + 5000
            ),
            common::lease("10.9.9.77", "52:54:00:00:00:77", Some("ll"), t + 100)
        ),
    );
    assert_eq!(
        gai(&a, "libvirt", "ll", "any"),
        (0, "10.9.9.77\nfe80::5054:ff:fe00:77%1\n".into())
    );
    let (rc, out) = gai(&a, "libvirt", "ll", "6");
    assert_eq!(rc, 2, "{out}");
}

/// Run `script` with sh inside a private mount namespace where /var/lib/libvirt/dnsmasq is
/// `leases` and /etc/nsswitch.conf says `hosts: files libvirt libvirt_guest`.
fn in_namespace(a: &Area, leases: &Path, script: &str) -> Output {
    require_root();
    fs::write(
        a.p("nsswitch.conf"),
        "passwd: files\ngroup: files\nhosts: files libvirt libvirt_guest\n",
    )
    .unwrap();
    // /var/lib/libvirt may not exist on the host: a tmpfs over the deepest existing parent
    // (in this namespace only) makes the mount point without touching the host.
    let setup = format!(
        r#"set -e
base=/var/lib/libvirt; while [ ! -d "$base" ]; do base=$(dirname "$base"); done
if [ "$base" != /var/lib/libvirt ]; then mount -t tmpfs vhk-nss-test "$base"; fi
mkdir -p /var/lib/libvirt/dnsmasq
mount --bind '{leases}' /var/lib/libvirt/dnsmasq
mount --bind '{nss}' /etc/nsswitch.conf
export LD_LIBRARY_PATH='{lib}'
unset LIBVIRT_NSS_LEASE_DIR
{script}"#,
        leases = leases.display(),
        nss = a.p("nsswitch.conf").display(),
        lib = a.p("lib").display(),
    );
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &setup])
        .output()
        .expect("run unshare")
}

#[test]
#[ignore = "needs root and util-linux: run by `make check-nss`"]
fn getent_in_a_private_mount_namespace() {
    let a = Area::new("getent");
    let o = in_namespace(
        &a,
        &a.p("leases"),
        "getent -s hosts:libvirt_guest ahosts guest-fedora | awk '$2 == \"STREAM\" {print $1}' | sort
echo ---
getent -s hosts:libvirt hosts fedora
echo ---
getent -s hosts:libvirt_guest hosts 192.168.122.10
echo ---
getent ahostsv4 many | awk '$2 == \"STREAM\" {print $1}' | wc -l
echo ---
getent hosts fd00:1::10
echo ---
getent -s hosts:libvirt_guest hosts nosuch || echo rc=$?",
    );
    assert!(
        o.status.success(),
        "namespace script failed: {}\n{}",
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let out = text(&o);
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts[0], "192.168.122.10\nfd00:1::10\n");
    // `getent hosts` asks for IPv6 first (gethostbyname2(AF_INET6)).
    assert_eq!(parts[1], "fd00:1::10      fedora\n");
    assert_eq!(parts[2], "192.168.122.10  guest-fedora\n");
    assert_eq!(parts[3], "100\n");
    // nsswitch order "files libvirt libvirt_guest": the libvirt service answers first.
    assert_eq!(parts[4], "fd00:1::10      fedora\n");
    assert_eq!(parts[5], "rc=2\n");
    // the host's directory was not touched
    assert!(!Path::new("/var/lib/libvirt/dnsmasq/virbr2.status").exists());
}

#[test]
#[ignore = "needs root and util-linux: run by `make check-nss`"]
fn setuid_program_ignores_the_override_and_ld_library_path() {
    let a = Area::new("suid");
    let empty = a.p("empty");
    fs::create_dir(&empty).unwrap();
    for n in ["plain", "suid"] {
        fs::copy(a.p("nsstool"), a.p(n)).unwrap();
    }
    fs::set_permissions(a.p("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    let so = a.p("lib/libnss_libvirt.so.2");
    let run = |prog: &str| {
        let o = in_namespace(
            &a,
            &empty,
            &format!(
                "export LIBVIRT_NSS_LEASE_DIR='{}'; setpriv --reuid=nobody --regid=nogroup --clear-groups -- '{}' direct '{}' libvirt fedora && echo rc=0 || echo rc=$?",
                a.p("leases").display(),
                a.p(prog).display(),
                so.display()
            ),
        );
        assert!(
            o.status.success(),
            "{}\n{}",
            text(&o),
            String::from_utf8_lossy(&o.stderr)
        );
        text(&o)
    };
    // Not setuid: the override is honoured (the fixture answers).
    assert_eq!(
        run("plain"),
        format!(
            "LD_LIBRARY_PATH={}\nstatus=1\n192.168.122.10\nrc=0\n",
            a.p("lib").display()
        )
    );
    // setuid root, run by nobody: secure_getenv hides the override, so the module reads the
    // compiled-in (here empty) directory; the loader dropped LD_LIBRARY_PATH.
    assert_eq!(run("suid"), "LD_LIBRARY_PATH=(unset)\nstatus=0\nrc=2\n");
}

#[test]
#[ignore = "needs binutils: run by `make check-nss`"]
fn the_so_exports_only_nss_entry_points_and_links_only_libc() {
    let so = cdylib();
    let o = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&so)
        .output()
        .expect("nm");
    assert!(o.status.success());
    let syms: Vec<String> = text(&o)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    let mut want = Vec::new();
    for s in ["libvirt", "libvirt_guest"] {
        for f in [
            "gethostbyaddr2_r",
            "gethostbyaddr_r",
            "gethostbyname2_r",
            "gethostbyname3_r",
            "gethostbyname4_r",
            "gethostbyname_r",
        ] {
            want.push(format!("_nss_{s}_{f}"));
        }
    }
    let mut got = syms.clone();
    got.sort();
    assert_eq!(got, want, "exported symbols");
    let o = Command::new("readelf")
        .arg("-d")
        .arg(&so)
        .output()
        .expect("readelf");
    let needed: Vec<String> = text(&o)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            l.split('[')
                .nth(1)
                .map(|s| s.trim_end_matches(']').to_owned())
        })
        .collect();
    // Not libgcc_s: the unwinder that lets catch_unwind stop a panic at the C boundary is
    // linked in (build.rs), one object fewer to load per process;
    // ld-linux*/ld64: the dynamic loader itself (glibc symbols such as __tls_get_addr).
    for n in &needed {
        let ok = n == "libc.so.6" || n.starts_with("ld-linux") || n.starts_with("ld64.so");
        assert!(ok, "unexpected NEEDED {n} in {needed:?}");
    }
    assert!(
        text(&o).contains("Library soname: [libnss_libvirt_guest.so.2]"),
        "{}",
        text(&o)
    );
}
