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
    println!("cargo:rerun-if-changed=build.rs");
}
