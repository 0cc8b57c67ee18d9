//! Helpers shared by the integration tests: where the built `.so` is, lease fixtures
//! written relative to the real clock (the module compares expiry with `time()`).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod abi;

/// The cdylib cargo built for this test run: `target/[<triple>/]<profile>/deps/`, beside the
/// test executable. `cargo test` builds the library (both crate types) there but does not
/// copy it up to `<profile>/` as `cargo build` does: the copy there is whatever the last
/// `cargo build` left (stale code natively; missing for a cross target, check-s390x).
pub fn cdylib() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("target/<profile>/deps/<test>");
    let so = deps.join("libnss_libvirt_guest.so");
    assert!(
        so.is_file(),
        "{} is not built (cargo builds the cdylib before integration tests)",
        so.display()
    );
    so
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A temporary directory removed on drop (also when the test fails).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("nss-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One lease line in libvirt's shape.
pub fn lease(ip: &str, mac: &str, host: Option<&str>, expiry: i64) -> String {
    let host = host
        .map(|h| format!("\n    \"hostname\": \"{h}\","))
        .unwrap_or_default();
    format!(
        "  {{\n    \"ip-address\": \"{ip}\",\n    \"mac-address\": \"{mac}\",{host}\n    \"client-id\": \"01:{mac}\",\n    \"expiry-time\": {expiry}\n  }}"
    )
}

/// Write `path` atomically, as libvirt does (temp file + rename).
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// The standard fixture, relative to the current time:
/// - fedora (hostname) / guest-fedora (domain): 192.168.122.10 + fd00:1::10 (v6 is newer)
/// - v6only: fd00:1::99 only; old: an expired lease only
/// - many (hostname) / vm-many (domain): 100 IPv4 addresses 10.200.0.1..100
pub fn standard_fixture(dir: &Path) {
    let t = now();
    let v0 = [
        lease(
            "192.168.122.10",
            "52:54:00:aa:bb:01",
            Some("fedora"),
            t + 3600,
        ),
        lease("192.168.122.11", "52:54:00:aa:bb:02", Some("old"), t - 3600),
    ];
    write_atomic(
        &dir.join("virbr0.status"),
        &format!("[\n{}\n]\n", v0.join(",\n")),
    );
    let v1 = [
        lease("fd00:1::10", "52:54:00:AA:BB:01", Some("fedora"), t + 7200),
        lease("fd00:1::99", "52:54:00:aa:bb:99", Some("v6only"), t + 7200),
    ];
    write_atomic(
        &dir.join("virbr1.status"),
        &format!("[\n{}\n]\n", v1.join(",\n")),
    );
    let many: Vec<String> = (1..=100)
        .map(|i| {
            lease(
                &format!("10.200.0.{i}"),
                &format!("52:54:00:cc:00:{i:02x}"),
                Some("many"),
                t + 1000 + i,
            )
        })
        .collect();
    write_atomic(
        &dir.join("virbr2.status"),
        &format!("[\n{}\n]\n", many.join(",\n")),
    );
    let many_macs: Vec<String> = (1..=100)
        .map(|i| format!("\"52:54:00:cc:00:{i:02x}\""))
        .collect();
    write_atomic(
        &dir.join("virbr0.macs"),
        "[\n  {\n    \"domain\": \"guest-fedora\",\n    \"macs\": [\n      \"52:54:00:aa:bb:01\"\n    ]\n  }\n]\n",
    );
    write_atomic(&dir.join("virbr1.macs"), "[\n\n]\n");
    write_atomic(
        &dir.join("virbr2.macs"),
        &format!(
            "[\n  {{\n    \"domain\": \"vm-many\",\n    \"macs\": [{}]\n  }}\n]\n",
            many_macs.join(", ")
        ),
    );
}

/// A buffer of `len` bytes at `offset` from 8-byte alignment, surrounded and filled with a
/// sentinel so that any write outside the answer, or any write at all, shows.
pub struct Buf {
    mem: Vec<u64>,
    offset: usize,
    len: usize,
}

impl Buf {
    pub fn new(len: usize, offset: usize) -> Buf {
        let mut mem = vec![0u64; (len + offset) / 8 + 2];
        // SAFETY: within the Vec's allocation.
        unsafe { std::ptr::write_bytes(mem.as_mut_ptr() as *mut u8, 0xA5, mem.len() * 8) };
        Buf { mem, offset, len }
    }
    pub fn ptr(&mut self) -> *mut std::ffi::c_char {
        // SAFETY: offset < 8 stays inside the allocation.
        unsafe { (self.mem.as_mut_ptr() as *mut u8).add(self.offset) as *mut std::ffi::c_char }
    }
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the Vec's own bytes.
        unsafe { std::slice::from_raw_parts(self.mem.as_ptr() as *const u8, self.mem.len() * 8) }
    }
    pub fn untouched(&self) -> bool {
        self.bytes().iter().all(|&b| b == 0xA5)
    }
    /// Nothing written outside [offset, offset + len).
    pub fn outside_untouched(&self) -> bool {
        let b = self.bytes();
        b[..self.offset].iter().all(|&x| x == 0xA5)
            && b[self.offset + self.len..].iter().all(|&x| x == 0xA5)
    }
    pub fn contains(&self, p: *const std::ffi::c_void, n: usize) -> bool {
        let start = self.mem.as_ptr() as usize + self.offset;
        (p as usize) >= start && (p as usize) + n <= start + self.len
    }
}
