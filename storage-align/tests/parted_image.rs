//! The real `storage-align` binary against real GNU parted on sparse image files.
//!
//! Every partition the tool creates is checked by reading the table back with parted
//! ourselves (not through the library): it must exist with exactly the planned boundaries,
//! hold the capacity (exact mode), end on a cylinder boundary (dos), and never overlap another.
//! Loop devices and the libvirt comparison live in tests/storage-e2e.sh (`make check-storage`),
//! because they need real root, which the s390x qemu-user run does not have.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_storage-align");

fn parted(img: &Path, args: &[&str]) -> String {
    let out = Command::new("parted")
        .arg("-s")
        .arg("-m")
        .arg(img)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .expect("parted must be installed (scripts/deps.sh storage)");
    assert!(
        out.status.success(),
        "parted {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A sparse image with a fresh label; parted gives image files 4 heads × 32 sectors.
fn image(dir: &Path, name: &str, size: u64, label: Option<&str>) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    if let Some(l) = label {
        parted(&p, &["mklabel", l]);
    }
    p
}

/// (number, start, end inclusive) of every partition, read back with parted.
fn table(img: &Path) -> Vec<(u32, u64, u64)> {
    parted(img, &["unit", "B", "print"])
        .lines()
        .skip(2)
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let b = |s: &str| s.trim_end_matches('B').parse::<u64>().unwrap();
            (f[0].parse().unwrap(), b(f[1]), b(f[2]))
        })
        .collect()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn json_ok(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "storage-align {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn err(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should fail with status 1"
    );
    String::from_utf8(out.stderr).unwrap()
}

const CYL: u64 = 4 * 32 * 512;

/// Creates `sizes` in order and checks each against the table read back.
/// Returns the (start, end) pairs created.
fn create_sequence(img: &Path, mode: &str, steps: &[(&str, Option<&str>)]) -> Vec<(u64, u64)> {
    let dos = parted(img, &["unit", "B", "print"]).contains(":msdos:");
    let mut made = Vec::new();
    for &(cap, ty) in steps {
        let before = table(img);
        let mut args = vec![
            "create",
            img.to_str().unwrap(),
            "--capacity",
            cap,
            "--mode",
            mode,
            "--json",
        ];
        if let Some(t) = ty {
            args.extend(["--type", t]);
        }
        let v = json_ok(&args);
        let (start, end) = (v["start"].as_u64().unwrap(), v["end"].as_u64().unwrap());
        // parted works in whole sectors: libvirt's unaligned gpt ends grow to a sector's end
        let (start, end) = (start / 512 * 512, (end / 512 + 1) * 512 - 1);
        assert_eq!(v["created"]["start"].as_u64(), Some(start));
        assert_eq!(v["created"]["end"].as_u64(), Some(end));
        let capacity = v["capacity"].as_u64().unwrap();
        let after = table(img);
        assert_eq!(after.len(), before.len() + 1, "one new partition");
        let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
        assert_eq!(new.len(), 1);
        let &(num, s, e) = new[0];
        assert_eq!(
            (s, e),
            (start, end),
            "parted's table holds the planned boundaries"
        );
        assert_eq!(v["number"].as_u64().unwrap(), num as u64);
        if dos {
            assert_eq!((e + 1) % CYL, 0, "end on a cylinder boundary");
        }
        if mode == "exact" {
            assert!(e - s + 1 >= capacity, "holds the capacity");
            if dos {
                assert!(e + 1 - CYL < s + capacity, "no smaller aligned end");
            }
        }
        let is_extended = ty == Some("extended");
        for &(n, ps, pe) in &before {
            // logical partitions live inside the extended one; everything else is disjoint
            let ext_of_logical = num >= 5 && n <= 4 && ps <= s && e <= pe;
            let logical_in_new_ext = is_extended && n >= 5;
            if !ext_of_logical && !logical_in_new_ext {
                assert!(e < ps || s > pe, "{num} {s}-{e} overlaps {n} {ps}-{pe}");
            }
        }
        made.push((s, e));
    }
    made
}

const DOS_STEPS: &[(&str, Option<&str>)] = &[
    ("10M", None),
    ("3000000", None),
    ("1M", None),
    ("40M", Some("extended")),
    ("5M", None), // four primary/extended partitions: libvirt's rule makes this logical
    ("1234567", None),
    ("64KiB", None),
];

#[test]
fn msdos_primary_extended_logical_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let a = image(dir.path(), "libvirt.img", 100 << 20, Some("msdos"));
    let b = image(dir.path(), "exact.img", 100 << 20, Some("msdos"));
    let lv = create_sequence(&a, "libvirt", DOS_STEPS);
    let ex = create_sequence(&b, "exact", DOS_STEPS);
    // partitions 5.. are logical: parted numbers them so
    assert!(table(&a).iter().any(|p| p.0 == 7) && table(&b).iter().any(|p| p.0 == 7));
    let mut saved = 0i128;
    for (i, ((ls, le), (xs, xe))) in lv.iter().zip(&ex).enumerate() {
        let (l, x) = (le - ls + 1, xe - xs + 1);
        eprintln!("step {i}: libvirt {l} bytes, exact {x} bytes");
        saved += l as i128 - x as i128;
    }
    // 1M starts on a cylinder boundary there and is a multiple of the 64 KiB cylinder:
    // libvirt wastes a whole cylinder
    assert_eq!(lv[2].0 % CYL, 0);
    assert_eq!(lv[2].1 - lv[2].0 + 1, 1024 * 1024 + CYL);
    assert_eq!(ex[2].1 - ex[2].0 + 1, 1024 * 1024);
    for (l, x) in lv.iter().zip(&ex) {
        assert!(x.1 - x.0 <= l.1 - l.0, "exact never larger");
    }
    assert!(saved > 0);
}

#[test]
fn gpt_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["libvirt", "exact"] {
        let img = image(dir.path(), &format!("{mode}.img"), 64 << 20, Some("gpt"));
        let made = create_sequence(
            &img,
            mode,
            &[
                ("1M", None),
                ("3000000", None),
                ("512", None),
                ("7MiB", None),
            ],
        );
        // no alignment on gpt: the size is the capacity (rounded to a sector in exact mode)
        assert_eq!(made[0].1 - made[0].0 + 1, 1 << 20);
        let second = made[1].1 - made[1].0 + 1;
        if mode == "libvirt" {
            // libvirt asks for 3,000,000 bytes; parted extends the end to its sector's end
            assert_eq!(second, 3_000_000 + 320);
        } else {
            assert_eq!(second, 3_000_320);
        }
    }
}

#[test]
fn dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "d.img", 32 << 20, Some("msdos"));
    let before = std::fs::read(&img).unwrap();
    let v = json_ok(&[
        "create",
        img.to_str().unwrap(),
        "--capacity",
        "1M",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(v["dry_run"], Value::Bool(true));
    assert!(v["command"].as_str().unwrap().contains("mkpart primary"));
    assert_eq!(std::fs::read(&img).unwrap(), before);
    // and what it promised is what create then does
    let w = json_ok(&[
        "create",
        img.to_str().unwrap(),
        "--capacity",
        "1M",
        "--json",
    ]);
    assert_eq!(
        (v["start"].clone(), v["end"].clone()),
        (w["start"].clone(), w["end"].clone())
    );
}

#[test]
fn plan_device_matches_create() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "p.img", 32 << 20, Some("msdos"));
    let p = json_ok(&["plan", img.to_str().unwrap(), "--capacity", "2M", "--json"]);
    let c = json_ok(&[
        "create",
        img.to_str().unwrap(),
        "--capacity",
        "2M",
        "--json",
    ]);
    assert_eq!(p["start"], c["start"]);
    assert_eq!(p["end"], c["end"]);
    assert_eq!(p["cylinder_size"].as_u64(), Some(CYL));
}

#[test]
fn clear_errors_and_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let bare = image(dir.path(), "bare.img", 8 << 20, None);
    let e = err(&["create", bare.to_str().unwrap(), "--capacity", "1M"]);
    assert!(
        e.contains("no partition table") && e.contains("bare.img"),
        "{e}"
    );

    let img = image(dir.path(), "small.img", 8 << 20, Some("msdos"));
    let before = std::fs::read(&img).unwrap();
    let e = err(&["create", img.to_str().unwrap(), "--capacity", "9M"]);
    assert!(e.contains("no large enough free extent"), "{e}");
    assert_eq!(std::fs::read(&img).unwrap(), before, "nothing changed");

    let e = err(&["create", "/nonexistent/disk.img", "--capacity", "1M"]);
    assert!(e.contains("/nonexistent/disk.img"), "{e}");

    // four primaries and no extended partition: libvirt's message
    let img = image(dir.path(), "full.img", 16 << 20, Some("msdos"));
    for _ in 0..4 {
        json_ok(&[
            "create",
            img.to_str().unwrap(),
            "--capacity",
            "1M",
            "--json",
        ]);
    }
    let e = err(&["create", img.to_str().unwrap(), "--capacity", "1M"]);
    assert!(e.contains("no extended partition found"), "{e}");
}

#[test]
fn plan_from_explicit_input() {
    // the classic disk geometry: 255 × 63 × 512
    let v = json_ok(&[
        "plan",
        "--label",
        "dos",
        "--geometry",
        "255,63",
        "--free",
        "32256-1073741824",
        "--capacity",
        "100M",
        "--json",
    ]);
    assert_eq!(v["start"].as_u64(), Some(32256));
    assert_eq!(v["end"].as_u64(), Some(13 * 8_225_280 - 1));
    // libvirt mode on a multiple of the cylinder, aligned start: one cylinder more
    let l = json_ok(&[
        "plan",
        "--label",
        "msdos",
        "--cylinder-size",
        "8225280",
        "--free",
        "8225280-1073741824",
        "--capacity",
        "82252800",
        "--mode",
        "libvirt",
        "--json",
    ]);
    assert_eq!(l["size"].as_u64(), Some(11 * 8_225_280));
    let x = json_ok(&[
        "plan",
        "--label",
        "msdos",
        "--cylinder-size",
        "8225280",
        "--free",
        "8225280-1073741824",
        "--capacity",
        "82252800",
        "--json",
    ]);
    assert_eq!(x["size"].as_u64(), Some(10 * 8_225_280));
    // logical space and the smallest extent
    let v = json_ok(&[
        "plan",
        "--label",
        "dos",
        "--geometry",
        "4,32",
        "--free",
        "16384-1048576",
        "--free",
        "1048576-4194304:logical",
        "--free",
        "8388608-9437184:logical",
        "--capacity",
        "100K",
        "--type",
        "logical",
        "--json",
    ]);
    assert_eq!(v["start"].as_u64(), Some(8388608 + 512));
    assert_eq!(v["type"], "logical");
    // 4K sectors: the third geometry field
    let v = json_ok(&[
        "plan",
        "--label",
        "dos",
        "--geometry",
        "4,32,4096",
        "--free",
        "524288-10485760",
        "--capacity",
        "1",
        "--json",
    ]);
    assert_eq!(v["end"].as_u64(), Some(2 * 524288 - 1));
    assert_eq!(v["sector_size"].as_u64(), Some(4096));
}

#[test]
fn plan_rejects_bad_input() {
    for (args, needle) in [
        (vec!["--free", "10-5", "--capacity", "1"], "reversed"),
        (
            vec!["--free", "0-1000000", "--capacity", "0"],
            "capacity must be greater than zero",
        ),
        (
            vec!["--free", "5000-9000", "--free", "0-4000", "--capacity", "1"],
            "unsorted",
        ),
    ] {
        let mut a = vec!["plan", "--label", "dos", "--geometry", "4,32"];
        a.extend(args);
        let e = err(&a);
        assert!(e.contains(needle), "{a:?}: {e}");
        assert!(e.starts_with("storage-align: "), "{e}");
    }
    // malformed values are usage errors (status 2), caught by the option's value parser,
    // which names the option and the value
    for (args, option, needle) in [
        (vec!["--capacity", "1.5G"], "--capacity", "1.5G"),
        (vec!["--capacity", "1X"], "--capacity", "unknown unit"),
        (vec!["--free", "nonsense"], "--free", "START-END"),
        (vec!["--free", "0-1Q"], "--free", "unknown unit"),
        (vec!["--geometry", "255"], "--geometry", "HEADS,SECTORS"),
        (vec!["--geometry", "255,x"], "--geometry", "not a number"),
        (
            vec!["--cylinder-size", "big"],
            "--cylinder-size",
            "invalid size",
        ),
        (vec!["--label", "zfs"], "--label", "unknown disk label"),
    ] {
        let mut a = vec!["plan"];
        for (o, v) in [
            ("--capacity", "1"),
            ("--free", "0-1000000"),
            ("--label", "gpt"),
        ] {
            if o != option {
                a.extend([o, v]);
            }
        }
        a.extend(args);
        let out = run(&a);
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{a:?}: {e}");
        assert!(e.contains(option) && e.contains(needle), "{a:?}: {e}");
    }
    let e = err(&[
        "plan",
        "--label",
        "dos",
        "--geometry",
        "0,63",
        "--free",
        "0-1000000",
        "--capacity",
        "1",
    ]);
    assert!(e.contains("cylinder size is zero"), "{e}");
    let e = err(&[
        "plan",
        "--label",
        "dos",
        "--free",
        "0-1000000",
        "--capacity",
        "1",
    ]);
    assert!(e.contains("--cylinder-size or --geometry"), "{e}");
    // usage errors are status 2 (clap)
    assert_eq!(run(&["plan", "--mode", "fast"]).status.code(), Some(2));
}

#[test]
fn start_alignment_on_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "a.img", 32 << 20, Some("msdos"));
    let path = img.to_str().unwrap();
    for grain in ["1MiB", "optimal", "cylinder"] {
        let v = json_ok(&[
            "create",
            path,
            "--capacity",
            "100K",
            "--align-start",
            grain,
            "--json",
        ]);
        let (s, e) = (v["start"].as_u64().unwrap(), v["end"].as_u64().unwrap());
        // an image file has no queue limits: optimal falls back to 1 MiB, as parted does
        let g = if grain == "cylinder" { CYL } else { 1 << 20 };
        assert_eq!(s % g, 0, "{grain}: start {s}");
        assert_eq!((e + 1) % CYL, 0);
        assert!(table(&img).contains(&(v["number"].as_u64().unwrap() as u32, s, e)));
    }
    let e = err(&[
        "plan",
        path,
        "--capacity",
        "1M",
        "--mode",
        "libvirt",
        "--align-start",
        "1MiB",
    ]);
    assert!(e.contains("not available in libvirt mode"), "{e}");
}
