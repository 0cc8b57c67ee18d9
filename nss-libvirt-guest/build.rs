//! Linker settings for the NSS shared object.
//!
//! SONAME: glibc loads `libnss_<service>.so.2`; a library with that file name is expected
//! to carry that SONAME (objdump -p, dpkg-shlibdeps, rpm). The cdylib gets the guest one;
//! `make nss-module` writes both installed names with their own SONAME (patchelf).
//! Exports: rustc already limits the cdylib's dynamic symbols to the `#[no_mangle]` entry
//! points with its own version script (a second, anonymous one would clash with it in
//! GNU ld); tests/so_exports.rs checks with `nm -D` that only `_nss_*` is exported.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnss_libvirt_guest.so.2");
    // Immediate binding and read-only relocations, as distributions build NSS modules.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,now");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,relro");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--as-needed");
    static_unwinder();
    println!("cargo:rerun-if-changed=build.rs");
}

/// Link the unwinder (libgcc_eh.a) into the .so instead of depending on libgcc_s.so.1:
/// one object fewer for the dynamic loader to find, map and relocate when glibc dlopens
/// the module in every process that resolves a name (one-shot lookups: doc/nss.md, "Performance
/// anchor"). std
/// asks for `-lgcc_s`; a linker script of that name in a directory searched first makes
/// it `-lgcc_eh`, found on the target compiler's own search path (cross builds too).
/// catch_unwind at the C boundary works the same with either (tests/ffi.rs panics).
fn static_unwinder() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let dir = out.join("static-unwinder");
    std::fs::create_dir_all(&dir).expect("create OUT_DIR/static-unwinder");
    std::fs::write(dir.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n")
        .expect("write OUT_DIR/static-unwinder/libgcc_s.so");
    println!("cargo:rustc-cdylib-link-arg=-L{}", dir.display());
}
