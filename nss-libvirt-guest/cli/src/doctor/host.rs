//! What the doctor reads from the host besides nsswitch.conf, every path under one root (`/`
//! normally, a fixture tree in tests): where glibc finds NSS modules, the hosts caches
//! (nscd, unscd, nsncd) and authselect's profile.

use std::fs;
use std::path::{Path, PathBuf};

/// A host tree: `/`, or a directory laid out like one.
#[derive(Debug, Clone)]
pub struct Root(pub PathBuf);

impl Root {
    /// `rel` (an absolute path on the host) under this root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel.trim_start_matches('/'))
    }

    fn read(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.path(rel)).ok()
    }

    /// `p` (a path under this root) as the host sees it.
    pub fn show(&self, p: &Path) -> String {
        match p.strip_prefix(&self.0) {
            Ok(r) => format!("/{}", r.display()),
            Err(_) => p.display().to_string(),
        }
    }
}

/// The directories the dynamic loader searches for `libnss_<service>.so.2` when glibc
/// dlopens it (no LD_LIBRARY_PATH: setuid programs ignore it, and sshd does not have it):
/// the directories of ld.so.conf (and its `include`s) and the loader's built-in ones, in
/// the layouts of Debian (multiarch) and RHEL (lib64).
pub fn library_dirs(root: &Root) -> Vec<String> {
    let mut dirs = Vec::new();
    ld_so_conf(root, "/etc/ld.so.conf", &mut dirs, 0);
    let triple = multiarch_triple();
    for d in [
        format!("/lib/{triple}"),
        format!("/usr/lib/{triple}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
    ] {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// Debian's multiarch directory name for this machine.
fn multiarch_triple() -> String {
    let arch = std::env::consts::ARCH;
    match arch {
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le-linux-gnu".into(),
        "arm" => "arm-linux-gnueabihf".into(),
        "x86" => "i386-linux-gnu".into(),
        _ => format!("{arch}-linux-gnu"),
    }
}

/// ldconfig's reading of ld.so.conf: `#` comments, one directory per line (or several
/// separated by white space, commas or colons), `include GLOB`.
fn ld_so_conf(root: &Root, file: &str, dirs: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    let Some(text) = root.read(file) else { return };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include") {
            if pattern.starts_with(char::is_whitespace) {
                for pat in pattern.split_whitespace() {
                    let pat = if pat.starts_with('/') {
                        pat.to_string()
                    } else {
                        let base = Path::new(file).parent().unwrap_or(Path::new("/"));
                        format!("{}/{pat}", base.display())
                    };
                    for f in glob(root, &pat) {
                        ld_so_conf(root, &f, dirs, depth + 1);
                    }
                }
                continue;
            }
        }
        for d in line.split(|c: char| c.is_whitespace() || c == ',' || c == ':') {
            let d = d.trim_end_matches('/');
            if d.starts_with('/') && !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_string());
            }
        }
    }
}

/// Files matching `pattern` (a `*` in the last component only, as ld.so.conf.d uses),
/// sorted, as host paths.
fn glob(root: &Root, pattern: &str) -> Vec<String> {
    let p = Path::new(pattern);
    let (Some(dir), Some(last)) = (p.parent(), p.file_name().and_then(|s| s.to_str())) else {
        return vec![];
    };
    let Some((pre, post)) = last.split_once('*') else {
        return vec![pattern.to_string()];
    };
    let mut out: Vec<String> = fs::read_dir(root.path(&dir.display().to_string()))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len())
        .map(|n| format!("{}/{n}", dir.display()))
        .collect();
    out.sort();
    out
}

/// Where `lib` is, in the first directory of `dirs` that has it.
pub fn find_module(root: &Root, dirs: &[String], lib: &str) -> Option<String> {
    dirs.iter()
        .map(|d| format!("{d}/{lib}"))
        .find(|p| root.path(p).exists())
}

/// A daemon that answers NSS lookups for every process (glibc sends them to
/// `/run/nscd/socket` first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDaemon {
    /// nscd, unscd or nsncd.
    pub name: &'static str,
    pub enabled: bool,
    pub running: bool,
}

/// The hosts settings of nscd.conf (also read by unscd), with glibc nscd's built-in
/// defaults where a line is missing (hosts cache off, 3600 s positive, 20 s negative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NscdHosts {
    pub file_exists: bool,
    pub enabled: bool,
    pub positive_ttl: u64,
    pub negative_ttl: u64,
}

pub fn nscd_hosts(root: &Root) -> NscdHosts {
    let mut h = NscdHosts {
        file_exists: false,
        enabled: false,
        positive_ttl: 3600,
        negative_ttl: 20,
    };
    let Some(text) = root.read("/etc/nscd.conf") else {
        return h;
    };
    h.file_exists = true;
    for line in text.lines() {
        let words: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if words.len() != 3 || words[1] != "hosts" {
            continue;
        }
        match words[0] {
            "enable-cache" => h.enabled = words[2] == "yes",
            "positive-time-to-live" => {
                if let Ok(v) = words[2].parse() {
                    h.positive_ttl = v
                }
            }
            "negative-time-to-live" => {
                if let Ok(v) = words[2].parse() {
                    h.negative_ttl = v
                }
            }
            _ => {}
        }
    }
    h
}

/// nscd, unscd and nsncd: enabled (a systemd `.wants` link or a SysV start link) and
/// running (a process of that name; unscd's binary is also called nscd).
pub fn cache_daemons(root: &Root) -> Vec<CacheDaemon> {
    let running = process_names(root);
    let mut out = Vec::new();
    for name in ["nscd", "unscd", "nsncd"] {
        let enabled = unit_enabled(root, name);
        let mut is_running = running.iter().any(|p| p == name);
        if name == "nscd" && is_running && unit_enabled(root, "unscd") {
            is_running = false;
        }
        if name == "unscd" && running.iter().any(|p| p == "nscd") && enabled {
            is_running = true;
        }
        if enabled || is_running {
            out.push(CacheDaemon {
                name,
                enabled,
                running: is_running,
            });
        }
    }
    out
}

fn unit_enabled(root: &Root, name: &str) -> bool {
    let unit = format!("{name}.service");
    let systemd = fs::read_dir(root.path("/etc/systemd/system"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            e.file_name().to_string_lossy().ends_with(".wants") && e.path().join(&unit).exists()
        });
    systemd
        || (2..=5).any(|lvl| {
            fs::read_dir(root.path(&format!("/etc/rc{lvl}.d")))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with('S')
                        && n.trim_start_matches(|c: char| c == 'S' || c.is_ascii_digit()) == name
                })
        })
}

/// The `comm` of every process under ROOT/proc.
fn process_names(root: &Root) -> Vec<String> {
    fs::read_dir(root.path("/proc"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| fs::read_to_string(e.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

/// authselect's current profile and features (`/etc/authselect/authselect.conf`: the
/// profile on the first line that is not a comment, then one feature per line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authselect {
    pub profile: String,
    pub features: Vec<String>,
}

pub fn authselect(root: &Root) -> Option<Authselect> {
    let text = root.read("/etc/authselect/authselect.conf")?;
    let mut words = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let profile = words.next()?.to_string();
    Some(Authselect {
        profile,
        features: words.map(String::from).collect(),
    })
}

/// The running glibc's version (`gnu_get_libc_version`).
pub fn glibc_version() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let p = unsafe { libc::gnu_get_libc_version() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: as above.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (Root, PathBuf) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("doctor-host-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (p, text) in files {
            let f = dir.join(p.trim_start_matches('/'));
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, text).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        (Root(dir.clone()), dir)
    }

    #[test]
    fn ld_so_conf_includes_and_defaults() {
        let (root, dir) = tree(&[
            (
                "/etc/ld.so.conf",
                "include /etc/ld.so.conf.d/*.conf\n/opt/a # x\n",
            ),
            ("/etc/ld.so.conf.d/b.conf", "/usr/local/lib\n"),
            (
                "/etc/ld.so.conf.d/a.conf",
                "# only a comment\n/opt/z/, /opt/y\n",
            ),
            ("/etc/ld.so.conf.d/a.conf.bak", "/never\n"),
            ("/usr/local/lib/libnss_libvirt.so.2", ""),
        ]);
        let dirs = library_dirs(&root);
        assert_eq!(dirs[..4], ["/opt/z", "/opt/y", "/usr/local/lib", "/opt/a"]);
        assert!(dirs.contains(&"/usr/lib64".to_string()));
        assert_eq!(
            find_module(&root, &dirs, "libnss_libvirt.so.2").as_deref(),
            Some("/usr/local/lib/libnss_libvirt.so.2")
        );
        assert_eq!(find_module(&root, &dirs, "libnss_libvirt_guest.so.2"), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nscd_conf_and_daemons() {
        let (root, dir) = tree(&[
            (
                "/etc/nscd.conf",
                "\tenable-cache\t\thosts\t\tyes\n# negative-time-to-live hosts 1\n\tpositive-time-to-live\thosts\t600\n",
            ),
            (
                "/etc/systemd/system/multi-user.target.wants/nscd.service",
                "",
            ),
            ("/proc/1/comm", "systemd\n"),
            ("/proc/77/comm", "nsncd\n"),
        ]);
        assert_eq!(
            nscd_hosts(&root),
            NscdHosts {
                file_exists: true,
                enabled: true,
                positive_ttl: 600,
                negative_ttl: 20
            }
        );
        assert_eq!(
            cache_daemons(&root),
            vec![
                CacheDaemon {
                    name: "nscd",
                    enabled: true,
                    running: false
                },
                CacheDaemon {
                    name: "nsncd",
                    enabled: false,
                    running: true
                }
            ]
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn authselect_conf() {
        let (root, dir) = tree(&[(
            "/etc/authselect/authselect.conf",
            "# Generated by authselect\n# Do not modify this file manually.\n\nlocal\nwith-silent-lastlog\nwith-libvirt\n",
        )]);
        assert_eq!(
            authselect(&root),
            Some(Authselect {
                profile: "local".into(),
                features: vec!["with-silent-lastlog".into(), "with-libvirt".into()]
            })
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
