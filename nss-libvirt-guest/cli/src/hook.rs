//! `nss-libvirt-guest hook qemu|lxc DOMAIN OPERATION SUB-OPERATION [EXTRA]`, run by libvirt's
//! hook wrappers with the domain XML on stdin: keeps the map of running domains' MACs that
//! the module's `libvirt_guest` service matches against the neighbour table (guests without a
//! lease; see the library's `seen` module).
//!
//! `started`, `reconnect` (libvirtd restarted) and `attach` record the domain's interface
//! MACs (every `<interface>`'s `<mac address>`, whatever its type); `stopped` and `release`
//! remove the domain; every other operation changes nothing. The map is created when missing
//! (after a reboot it is gone with /run) from libvirt's own state, the status XML of running
//! domains in /run/libvirt/qemu and /run/libvirt/lxc. It is written atomically (temporary file
//! in the same directory, fsync, rename), world-readable, under a lock so that two domains
//! starting at once do not lose an update. A failure is reported on stderr (libvirt logs it)
//! and the command still exits 0: libvirt aborts a guest's start when a `prepare`/`start`
//! hook fails and kills a running guest when its `reconnect` hook fails, and a missing name
//! is not worth either. Operations that change nothing do not touch the map at all.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use quick_xml::events::Event;
use serde_json::{Value, json};

/// What an operation does to the map.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Set(Vec<String>),
    Remove,
    Nothing,
}

pub fn change_of(operation: &str, xml: &[u8]) -> Result<Change> {
    Ok(match operation {
        "started" | "reconnect" | "attach" => Change::Set(interface_macs(xml)?),
        "stopped" | "release" => Change::Remove,
        _ => Change::Nothing,
    })
}

/// The domain name and interface MACs (lower case, in document order) of a domain XML or of a
/// libvirt status XML (`<domstatus>` around the `<domain>`).
pub fn domain_of_xml(xml: &[u8]) -> Result<(String, Vec<String>)> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut name = None;
    let mut macs: Vec<String> = Vec::new();
    loop {
        let pos = reader.buffer_position();
        let ev = reader
            .read_event_into(&mut buf)
            .with_context(|| format!("malformed domain XML near byte {pos}"))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let tag = e.name().as_ref().to_vec();
                let under_interface = stack.last().is_some_and(|t| t == b"interface");
                if tag == b"mac" && under_interface {
                    for a in e.attributes().flatten() {
                        if a.key.as_ref() == b"address" {
                            let v = a.unescape_value()?.to_ascii_lowercase();
                            if !macs.contains(&v) {
                                macs.push(v);
                            }
                        }
                    }
                }
                if matches!(ev, Event::Start(_)) {
                    stack.push(tag);
                }
            }
            Event::Text(t) => {
                let in_domain_name = stack.len() >= 2
                    && stack[stack.len() - 1] == b"name"
                    && stack[stack.len() - 2] == b"domain";
                if in_domain_name && name.is_none() {
                    name = Some(t.unescape()?.trim().to_string());
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        bail!("the domain XML has no <name>");
    };
    Ok((name, macs))
}

fn interface_macs(xml: &[u8]) -> Result<Vec<String>> {
    Ok(domain_of_xml(xml)?.1)
}

/// The map as domain -> MACs.
type Map = BTreeMap<String, Vec<String>>;

fn read_map(path: &Path) -> Result<Option<Map>> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let v: Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not the JSON array it should be", path.display()))?;
    let mut map = Map::new();
    for e in v.as_array().into_iter().flatten() {
        let (Some(d), Some(m)) = (e["domain"].as_str(), e["macs"].as_array()) else {
            continue;
        };
        map.insert(
            d.to_string(),
            m.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
        );
    }
    Ok(Some(map))
}

/// The running domains libvirt knows of: its status XML files under ROOT/run/libvirt.
fn rebuild(root: &Path) -> Map {
    let mut map = Map::new();
    for driver in ["qemu", "lxc"] {
        let dir = root.join("run/libvirt").join(driver);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "xml") {
                continue;
            }
            match fs::read(&p)
                .map_err(anyhow::Error::from)
                .and_then(|x| domain_of_xml(&x))
            {
                Ok((name, macs)) => {
                    map.insert(name, macs);
                }
                Err(err) => eprintln!("nss-libvirt-guest hook: skipping {}: {err:#}", p.display()),
            }
        }
    }
    map
}

fn write_map(path: &Path, map: &Map) -> Result<()> {
    let arr: Vec<Value> = map
        .iter()
        .map(|(d, m)| json!({"domain": d, "macs": m}))
        .collect();
    let text = serde_json::to_string_pretty(&Value::Array(arr))? + "\n";
    let tmp = path.with_extension(format!("new.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// The map's path under `root`.
pub fn map_path(root: &Path) -> PathBuf {
    root.join(nss_libvirt_guest::seen::DEFAULT_MAP.trim_start_matches('/'))
}

/// Apply `operation` on `domain` (XML on stdin) to the map under `root`.
pub fn run(root: &Path, object: &str, domain: &str, operation: &str, xml: &[u8]) -> Result<()> {
    if object != "qemu" && object != "lxc" {
        bail!("unknown hook object {object:?} (qemu or lxc)");
    }
    let change = change_of(operation, xml).with_context(|| format!("domain {domain}"))?;
    if change == Change::Nothing {
        return Ok(());
    }
    let path = map_path(root);
    let dir = path.parent().expect("the map is in a directory");
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    let lock_path = dir.join("guests.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock_exclusive(&lock).with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let mut map = match read_map(&path) {
        Ok(Some(m)) => m,
        // Missing (a reboot emptied /run) or damaged: libvirt's state is the truth.
        Ok(None) => rebuild(root),
        Err(e) => {
            eprintln!("nss-libvirt-guest hook: {e:#}; rebuilding it from libvirt's state");
            rebuild(root)
        }
    };
    match change {
        Change::Set(macs) => {
            map.insert(domain.to_string(), macs);
        }
        Change::Remove => {
            map.remove(domain);
        }
        Change::Nothing => {}
    }
    write_map(&path, &map)
}

fn lock_exclusive(f: &fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a descriptor we own; released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<domain type='kvm' id='3'>
  <name>web&amp;co</name>
  <uuid>0b6d4c3e-0000-0000-0000-000000000001</uuid>
  <metadata><name>not this</name></metadata>
  <devices>
    <interface type='bridge'>
      <mac address='52:54:00:AA:00:01'/>
      <source bridge='br0'/>
    </interface>
    <interface type='direct'>
      <mac address='52:54:00:aa:00:02'/>
      <source dev='eth0' mode='bridge'/>
    </interface>
    <hostdev mode='subsystem' type='pci'><mac address='00:00:00:00:00:09'/></hostdev>
  </devices>
</domain>
"#;

    #[test]
    fn macs_and_name_from_domain_xml() {
        let (name, macs) = domain_of_xml(XML.as_bytes()).unwrap();
        assert_eq!(name, "web&co");
        assert_eq!(macs, ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]);
        let status = format!("<domstatus state='running' pid='77'>\n{XML}</domstatus>\n");
        assert_eq!(domain_of_xml(status.as_bytes()).unwrap().0, "web&co");
        let err = domain_of_xml(b"<domain><name>x</nam></domain>").unwrap_err();
        assert!(
            format!("{err:#}").contains("malformed domain XML"),
            "{err:#}"
        );
        assert!(domain_of_xml(b"<domain/>").is_err());
    }

    #[test]
    fn started_stopped_and_rebuild() {
        let root = std::env::temp_dir().join(format!("nss-hook-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let status = root.join("run/libvirt/lxc");
        fs::create_dir_all(&status).unwrap();
        fs::write(
            status.join("ct1.xml"),
            "<domstatus><domain type='lxc'><name>ct1</name><devices><interface type='bridge'><mac address='52:54:00:cc:00:01'/></interface></devices></domain></domstatus>",
        )
        .unwrap();
        // The first event after a reboot creates the map from libvirt's state.
        run(&root, "qemu", "web&co", "started", XML.as_bytes()).unwrap();
        let map = read_map(&map_path(&root)).unwrap().unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["ct1"], ["52:54:00:cc:00:01"]);
        let mode = fs::metadata(map_path(&root)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // The module's parser reads what the hook writes.
        let parsed = nss_libvirt_guest::seen::read_map(&map_path(&root))
            .unwrap()
            .unwrap();
        assert_eq!(
            nss_libvirt_guest::seen::macs_of(&parsed, "WEB&CO").unwrap(),
            ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]
        );
        run(&root, "qemu", "web&co", "prepare", b"").unwrap();
        run(&root, "qemu", "web&co", "stopped", b"").unwrap();
        let map = read_map(&map_path(&root)).unwrap().unwrap();
        assert!(!map.contains_key("web&co"));
        assert!(run(&root, "network", "x", "started", b"").is_err());
        let leftovers: Vec<_> = fs::read_dir(map_path(&root).parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        assert_eq!(leftovers.len(), 2, "map and lock only: {leftovers:?}");
        fs::remove_dir_all(&root).unwrap();
    }
}
