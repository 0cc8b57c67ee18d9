//! Linker settings for the mdevctl callout executable.
//!
//! mdevctl starts the callout for every define, start and stop, so its process start is most
//! of its cost (doc/s390-tools.md compares it with ap-check's). std asks for `-lgcc_s`; a
//! linker script of that name in a directory searched first makes it `-lgcc_eh` (the static
//! unwinder, found on the target compiler's own search path, cross builds too), so the
//! dynamic loader has one object fewer to find, map and relocate on every run. The NSS
//! module does the same for the same reason. catch_unwind in the callout's `main` works the
//! same with either unwinder.
fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let dir = out.join("static-unwinder");
    std::fs::create_dir_all(&dir).expect("create OUT_DIR/static-unwinder");
    std::fs::write(dir.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n")
        .expect("write OUT_DIR/static-unwinder/libgcc_s.so");
    println!(
        "cargo:rustc-link-arg-bin=nodedev-helper-callout=-L{}",
        dir.display()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
