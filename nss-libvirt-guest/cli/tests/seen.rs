//! Guests without a lease, through the real kernel and glibc: in a private network namespace,
//! neighbour entries are added with `ip neigh` (as the host would learn them from a guest's
//! traffic), a map of running domains is written as the hooks write it, and `getent` with the
//! module resolves the domain by name and its addresses back to it; an entry whose MAC belongs
//! to no running domain, and INCOMPLETE/FAILED/PERMANENT entries, are never answered. Needs
//! root (namespaces): `#[ignore]`d, run by `make check-nss`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The module's cdylib cargo built for this test run, beside the test executable.
fn cdylib() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let so = exe
        .parent()
        .expect("target/<profile>/deps/<test>")
        .join("libnss_libvirt_guest.so");
    assert!(so.is_file(), "{} is not built", so.display());
    so
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("nss-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root (network namespace): run by make check-nss"]
fn neighbours_of_running_domains_resolve() {
    // SAFETY: getuid has no preconditions.
    assert_eq!(unsafe { libc::getuid() }, 0, "needs root (make check-nss)");
    let tmp = TempDir::new("seen");
    let lib = tmp.path().join("lib");
    fs::create_dir(&lib).unwrap();
    fs::copy(cdylib(), lib.join("libnss_libvirt_guest.so.2")).unwrap();
    let leases = tmp.path().join("leases");
    fs::create_dir(&leases).unwrap();
    let map = tmp.path().join("guests.macs");
    fs::write(
        &map,
        "[\n  {\n    \"domain\": \"static-vm\",\n    \"macs\": [\"52:54:00:77:00:05\", \"52:54:00:77:00:06\"]\n  },\n  {\n    \"domain\": \"quiet-vm\",\n    \"macs\": [\"52:54:00:77:00:aa\"]\n  }\n]\n",
    )
    .unwrap();
    let script = r#"
set -e
ip link add x0 type veth peer name x1
ip link set x0 up; ip link set x1 up
# getent ahosts asks with AI_ADDRCONFIG: the host needs an address of each family
ip addr add 10.77.0.1/24 dev x0; ip addr add fd00:77::1/64 dev x0 nodad
ip neigh add 10.77.0.5 lladdr 52:54:00:77:00:05 dev x0 nud reachable
ip neigh add 10.77.0.6 lladdr 52:54:00:77:00:06 dev x0 nud stale
ip neigh add fd00:77::5 lladdr 52:54:00:77:00:05 dev x0 nud reachable
ip neigh add 10.77.0.9 lladdr 52:54:00:77:00:99 dev x0 nud reachable
ip neigh add 10.77.0.3 lladdr 52:54:00:77:00:05 dev x0 nud permanent
ip neigh add 10.77.0.7 lladdr 52:54:00:77:00:05 dev x0 nud failed
ip neigh add 10.77.0.8 dev x0 nud incomplete
# ahosts: the addresses, sorted; hosts: address and name
q() {
  echo "== $*"
  if out=$(getent -s hosts:libvirt_guest "$@"); then
    printf '%s\n' "$out" | awk '{ print $1, ($2 ~ /^(STREAM|DGRAM|RAW)$/ ? "" : $2) }' | sort -u
  else
    echo "exit $?"
  fi
}
q ahosts static-vm
q ahostsv4 STATIC-VM
q hosts 10.77.0.5
q hosts fd00:77::5
q hosts 10.77.0.9
q hosts 10.77.0.3
q ahosts quiet-vm
q ahosts nosuch
echo "== cli"
"$CLI" lookup static-vm --service libvirt_guest --explain --json --lease-dir "$LIBVIRT_NSS_LEASE_DIR" --guests-map "$LIBVIRT_NSS_GUESTS_FILE" || true
"$CLI" list --json --lease-dir "$LIBVIRT_NSS_LEASE_DIR" --guests-map "$LIBVIRT_NSS_GUESTS_FILE" || true
"#;
    let run = |map_path: &std::path::Path| {
        let o = Command::new("unshare")
            .args(["-n", "sh", "-c", script])
            .env("LD_LIBRARY_PATH", &lib)
            .env("LIBVIRT_NSS_LEASE_DIR", &leases)
            .env("LIBVIRT_NSS_GUESTS_FILE", map_path)
            .env("CLI", env!("CARGO_BIN_EXE_nss-libvirt-guest"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let all = run(&map);
    let (out, cli) = all.split_once("== cli\n").unwrap();
    // The diagnostic command says where each answer came from.
    let mut cli = cli.lines();
    let lookup: serde_json::Value = serde_json::from_str(cli.next().unwrap()).unwrap();
    let r = &lookup["results"][0];
    assert_eq!(
        r["addresses"],
        serde_json::json!(["10.77.0.5", "fd00:77::5", "10.77.0.6"])
    );
    assert_eq!(
        r["sources"],
        serde_json::json!(["neighbour", "neighbour", "neighbour"])
    );
    assert!(
        r["explain"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("MAC 52:54:00:77:00:05 seen on x0 (REACHABLE)"),
        "{lookup}"
    );
    let list: serde_json::Value = serde_json::from_str(cli.next().unwrap()).unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{list}");
    assert!(
        rows.iter().all(|r| r["domain"] == "static-vm"
            && r["source"] == "neighbour"
            && r["bridge"] == "x0"),
        "{list}"
    );
    let want = "\
== ahosts static-vm
10.77.0.5 
10.77.0.6 
fd00:77::5 
== ahostsv4 STATIC-VM
10.77.0.5 
10.77.0.6 
== hosts 10.77.0.5
10.77.0.5 static-vm
== hosts fd00:77::5
fd00:77::5 static-vm
== hosts 10.77.0.9
exit 2
== hosts 10.77.0.3
exit 2
== ahosts quiet-vm
exit 2
== ahosts nosuch
exit 2
";
    assert_eq!(out, want);
    // The domain stopped: the hooks removed it from the map; without the map nothing answers.
    fs::write(&map, "[\n\n]\n").unwrap();
    let out = run(&map);
    assert!(
        out.contains("== ahosts static-vm\nexit 2\n")
            && out.contains("== hosts 10.77.0.5\nexit 2\n"),
        "{out}"
    );
    let out = run(&tmp.path().join("no-such-map"));
    assert!(out.contains("== ahosts static-vm\nexit 2\n"), "{out}");
}

/// The hook never fails a libvirt operation: an unwritable map is reported on stderr and the
/// command exits 0 (libvirt would abort a starting guest or kill a reconnected one).
#[test]
fn the_hook_reports_but_never_fails() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nss-libvirt-guest"))
        .args([
            "hook",
            "qemu",
            "vm",
            "reconnect",
            "begin",
            "-",
            "--root",
            "/proc/self/no",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"<domain><name>vm</name><devices><interface type='bridge'><mac address='52:54:00:00:00:01'/></interface></devices></domain>")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("qemu hook for vm reconnect: cannot create /proc/self/no/run/virt-hostkit"),
        "{err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_nss-libvirt-guest"))
        .args(["hook", "network", "vm", "started"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "not a hook object of ours");
}
