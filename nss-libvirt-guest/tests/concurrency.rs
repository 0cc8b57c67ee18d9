//! 8 threads resolve through the dlopened module while another thread replaces the lease
//! files the way libvirt does (write `<name>.new`, rename): no crash, no error, and every
//! answer is exactly one generation's addresses — never a mix, never an address that was
//! not in a file.

mod common;

use std::ffi::{CString, c_char, c_void};
use std::fs;
use std::net::Ipv4Addr;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::abi::{Ghbn4, Tuple};
use common::{TempDir, cdylib, lease, now, write_atomic};

const GENERATIONS: u8 = 50;

/// Generation g: "churn" has 10.7.g.1 (newer) and 10.7.g.2 on virbr0, domain "vm-churn"
/// owns both MACs; a bystander file never changes.
fn write_generation(dir: &std::path::Path, g: u8) {
    let t = now();
    let leases = [
        lease(
            &format!("10.7.{g}.1"),
            &format!("52:54:00:07:{g:02x}:01"),
            Some("churn"),
            t + 200,
        ),
        lease(
            &format!("10.7.{g}.2"),
            &format!("52:54:00:07:{g:02x}:02"),
            Some("churn"),
            t + 100,
        ),
    ];
    write_atomic(
        &dir.join("virbr0.status"),
        &format!("[\n{}\n]\n", leases.join(",\n")),
    );
    write_atomic(
        &dir.join("virbr0.macs"),
        &format!(
            "[\n  {{\"domain\": \"vm-churn\", \"macs\": [\"52:54:00:07:{g:02x}:01\", \"52:54:00:07:{g:02x}:02\"]}}\n]\n"
        ),
    );
}

#[test]
fn lookups_while_files_are_replaced() {
    let tmp = TempDir::new("churn");
    let dir = tmp.path().to_owned();
    write_generation(&dir, 0);
    write_atomic(
        &dir.join("virbr1.status"),
        &format!(
            "[\n{}\n]\n",
            lease("10.8.0.1", "52:54:00:08:00:01", Some("other"), 0)
        ),
    );
    // SAFETY: set before any thread starts; this file has one test.
    unsafe { std::env::set_var("LIBVIRT_NSS_LEASE_DIR", &dir) };

    let so = CString::new(cdylib().into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: loading our own module by path.
    let h = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null());
    let mut fns: Vec<Ghbn4> = Vec::new();
    for s in [
        c"_nss_libvirt_gethostbyname4_r",
        c"_nss_libvirt_guest_gethostbyname4_r",
    ] {
        // SAFETY: live handle, NUL-terminated name.
        let p = unsafe { libc::dlsym(h, s.as_ptr()) };
        assert!(!p.is_null());
        // SAFETY: the symbol has this signature.
        fns.push(unsafe { std::mem::transmute::<*mut c_void, Ghbn4>(p) });
    }

    let done = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..8)
        .map(|i| {
            let (done, answers, f) = (done.clone(), answers.clone(), fns[i % 2]);
            let name = CString::new(if i % 2 == 0 { "churn" } else { "vm-churn" }).unwrap();
            std::thread::spawn(move || {
                let mut buf = vec![0u64; 64];
                while !done.load(Ordering::Relaxed) {
                    let (mut e, mut herr, mut ttl) = (0, 0, 0);
                    let mut pat: *mut Tuple = ptr::null_mut();
                    // SAFETY: 512-byte aligned buffer, valid out-pointers.
                    let st = unsafe {
                        f(
                            name.as_ptr(),
                            &mut pat,
                            buf.as_mut_ptr() as *mut c_char,
                            512,
                            &mut e,
                            &mut herr,
                            &mut ttl,
                        )
                    };
                    // The files are replaced by rename, so a lookup always sees a whole file. A
                    // guest lookup reads two files (.macs, then .status) that change one after
                    // the other, so between them the MACs may name no current lease: NOTFOUND
                    // (libvirt's module has the same window). Nothing else may happen.
                    if st == 0 && i % 2 == 1 {
                        assert_eq!((e, herr), (libc::ENOENT, 1));
                        continue;
                    }
                    assert_eq!(st, 1, "lookup of {name:?} failed: errno {e} h_errno {herr}");
                    let mut got = Vec::new();
                    let mut t = pat;
                    while !t.is_null() {
                        // SAFETY: tuples chained by a successful call inside buf.
                        unsafe {
                            let b = *((*t).addr.as_ptr() as *const [u8; 4]);
                            got.push(Ipv4Addr::from(b));
                            t = (*t).next;
                        }
                    }
                    let g = got[0].octets()[2];
                    // .macs and .status are separate files: a guest lookup may pair generation
                    // g's MACs with generation g's leases only if both are current; any answer
                    // must still be one generation's two addresses, in expiry order.
                    assert_eq!(
                        got,
                        vec![Ipv4Addr::new(10, 7, g, 1), Ipv4Addr::new(10, 7, g, 2)],
                        "torn answer"
                    );
                    answers.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for g in 1..GENERATIONS {
        write_generation(&dir, g);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader thread panicked");
    }
    assert!(answers.load(Ordering::Relaxed) > 0);
    let _ = fs::remove_dir_all(&dir);
}
