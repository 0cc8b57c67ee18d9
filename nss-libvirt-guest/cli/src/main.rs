//! `nss-libvirt-guest`: the diagnostic command for people whose `ssh guest` fails.
//!
//! `lookup` resolves a name exactly as the module does (same code) and, with `--explain`,
//! shows every lease file and entry considered and why it was taken or rejected; `list`
//! shows every live guest (from leases, and running domains without a lease from the
//! neighbour table); `hook` ([`hook`]) keeps the map of running domains' MACs; `check`
//! ([`doctor`]) finds why a guest name would not reach the services (nsswitch.conf as glibc
//! reads it, the module files, hosts caches, authselect). `--json` on lookup, list, check.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

mod doctor;
mod hook;

use anyhow::{Context, Result};
use clap::Parser;
use nss_libvirt_guest::ffi::{interface_index, neighbours};
use nss_libvirt_guest::leases::MacsFile;
use nss_libvirt_guest::lookup::{
    Content, DEFAULT_LEASE_DIR, Family, Service, Snapshot, snapshot_uncached,
};
use nss_libvirt_guest::matching;
use nss_libvirt_guest::neigh::Neighbour;
use nss_libvirt_guest::order::{self, Addr, Ordered};
use nss_libvirt_guest::seen;
use nss_libvirt_guest_cli::cli::{Cli, Cmd, Svc};
use serde_json::{Value, json};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn read_dir(dir: &Path) -> Result<Snapshot> {
    snapshot_uncached(dir)
        .with_context(|| format!("cannot read the lease directory {}", dir.display()))
}

fn expiry_text(e: i64) -> String {
    if e == 0 {
        "never".into()
    } else {
        format!("{e}")
    }
}

/// Every entry of every file, with the module's verdict for `name` under `service`
/// (`matching::explain`: the decisions the lookup itself made), and the problems found.
fn explain(snap: &Snapshot, name: &str, service: Service, now: i64) -> Vec<Value> {
    let lc = name.to_ascii_lowercase();
    let mut out = Vec::new();
    let decisions = matching::explain(snap, name, service, Family::Any, now);
    let mut decided = decisions.iter().peekable();
    for (i, f) in snap.files.iter().enumerate() {
        let file = f.path.display().to_string();
        match &f.content {
            Content::Unusable(why) => {
                out.push(json!({"file": file, "verdict": "file skipped", "reason": why}))
            }
            Content::Skipped => {}
            Content::Macs(m) => {
                for p in &m.problems {
                    out.push(json!({"file": file, "offset": p.offset, "verdict": "entry skipped", "reason": p.reason}));
                }
                if service == Service::Guest {
                    for e in m.for_domain(&lc) {
                        out.push(json!({"file": file, "offset": e.offset, "verdict": "domain found",
                            "reason": format!("domain {} has MACs {}", e.domain, e.macs.join(", "))}));
                    }
                }
            }
            Content::Status(s) => {
                for p in &s.problems {
                    out.push(json!({"file": file, "offset": p.offset, "verdict": "entry skipped", "reason": p.reason}));
                }
                while let Some(d) = decided.next_if(|d| d.file == i) {
                    out.push(json!({"file": file, "offset": d.lease.offset,
                        "address": d.lease.ip.to_string(), "verdict": d.word(), "reason": d.reason()}));
                }
            }
        }
    }
    out
}

/// The hooks' map of running domains and the host's neighbour table, when the map exists.
fn seen_table(map: &Path) -> Result<Option<(MacsFile, Vec<Neighbour>)>> {
    let Some(m) = seen::read_map(map).with_context(|| format!("cannot read {}", map.display()))?
    else {
        return Ok(None);
    };
    let table = neighbours().context("cannot read the neighbour table")?;
    Ok(Some((m, table)))
}

fn ifname(index: u32) -> String {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    if p.is_null() {
        return index.to_string();
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn state_text(state: u16) -> &'static str {
    match state {
        s if s & 0x02 != 0 => "REACHABLE",
        s if s & 0x08 != 0 => "DELAY",
        _ => "STALE",
    }
}

/// An answered address as getaddrinfo users write it: `fe80::1%virbr0` with a scope.
fn addr_text(a: &Addr) -> String {
    if a.scope_id == 0 {
        a.ip.to_string()
    } else {
        format!("{}%{}", a.ip, ifname(a.scope_id))
    }
}

fn cmd_lookup(
    dir: &Path,
    map: &Path,
    name: &str,
    service: Option<Svc>,
    explain_it: bool,
    as_json: bool,
) -> Result<bool> {
    let snap = read_dir(dir)?;
    let seen = seen_table(map)?;
    let t = now();
    let services = match service {
        Some(Svc::Libvirt) => vec![Service::Libvirt],
        Some(Svc::LibvirtGuest) => vec![Service::Guest],
        None => vec![Service::Libvirt, Service::Guest],
    };
    let mut found = false;
    let mut results = Vec::new();
    for s in services {
        // As getaddrinfo gets it from gethostbyname4_r (ssh): both families, in answer order,
        // IPv6 link-local addresses last and with their interface.
        let (mut status, mut answers): (&str, Vec<Addr>) =
            match order::answer(&snap, name, s, Family::Any, t, true, interface_index) {
                Ordered::Found(a) => ("found", a),
                Ordered::NoData => ("no-data", vec![]),
                Ordered::NotFound => ("not-found", vec![]),
            };
        let mut sources = vec!["lease"; answers.len()];
        let mut steps = if explain_it {
            explain(&snap, name, s, t)
        } else {
            vec![]
        };
        // libvirt_guest, then: the neighbour table for a running domain of the hooks' map.
        if s == Service::Guest {
            if let Some((m, table)) = &seen {
                if let Some(macs) = seen::macs_of(m, name) {
                    for a in seen::addresses(&macs, table, Family::Any, true) {
                        let n = table.iter().find(|n| n.ip == a.ip);
                        if explain_it {
                            steps.push(json!({"file": "neighbour table", "address": addr_text(&a),
                                "verdict": if answers.contains(&a) { "duplicate" } else { "taken" },
                                "reason": n.map(|n| format!("MAC {} seen on {} ({})", n.mac, ifname(n.ifindex), state_text(n.state))).unwrap_or_default()}));
                        }
                        if !answers.contains(&a) {
                            answers.push(a);
                            sources.push("neighbour");
                        }
                    }
                    if explain_it && answers.is_empty() {
                        steps.push(json!({"file": map.display().to_string(), "verdict": "domain running",
                            "reason": format!("MACs {}; the neighbour table has no address for them", macs.join(", "))}));
                    }
                    status = if answers.is_empty() {
                        "no-data"
                    } else {
                        "found"
                    };
                }
            }
        }
        let addrs: Vec<String> = answers.iter().map(addr_text).collect();
        found |= !addrs.is_empty();
        if !as_json {
            let shown = if addrs.is_empty() {
                status.to_string()
            } else {
                addrs.join(" ")
            };
            println!("{name} ({}): {shown}", s.name());
            for st in &steps {
                println!(
                    "  {} {}{}{}: {}",
                    st["verdict"].as_str().unwrap_or(""),
                    st["file"].as_str().unwrap_or(""),
                    st.get("offset")
                        .map(|o| format!(" @{o}"))
                        .unwrap_or_default(),
                    st.get("address")
                        .and_then(Value::as_str)
                        .map(|a| format!(" {a}"))
                        .unwrap_or_default(),
                    st["reason"].as_str().unwrap_or("")
                );
            }
        }
        let mut r = json!({"service": s.name(), "status": status,
            "addresses": addrs, "sources": sources});
        if explain_it {
            r["explain"] = Value::Array(steps);
        }
        results.push(r);
    }
    if !snap.dir_exists && !as_json {
        println!(
            "note: {} does not exist (is libvirt's network driver installed?)",
            dir.display()
        );
    }
    if as_json {
        println!(
            "{}",
            json!({"name": name, "lease_dir": dir.display().to_string(), "results": results})
        );
    }
    Ok(found)
}

fn cmd_list(dir: &Path, map: &Path, as_json: bool) -> Result<()> {
    let snap = read_dir(dir)?;
    let t = now();
    let mut rows = Vec::new();
    for (_, f, s) in snap.status_files() {
        for l in s.leases.iter().filter(|l| l.is_live(t)) {
            let domain = l.mac.as_ref().and_then(|m| {
                snap.macs_files()
                    .find_map(|(_, mf)| mf.owning(m).next().map(|e| e.domain.clone()))
            });
            rows.push(
                json!({"domain": domain, "hostname": l.hostname, "mac": l.mac,
                "address": l.ip.to_string(), "expiry": l.expiry, "bridge": f.bridge(),
                "source": "lease"}),
            );
        }
    }
    // Running domains' addresses from the neighbour table (the hooks' map).
    if let Some((m, table)) = seen_table(map)? {
        for e in &m.entries {
            for a in seen::addresses(&e.macs, &table, Family::Any, true) {
                let Some(n) = table.iter().find(|n| n.ip == a.ip) else {
                    continue;
                };
                let address = addr_text(&a);
                if rows.iter().any(|r| r["address"] == address.as_str()) {
                    continue;
                }
                rows.push(json!({"domain": e.domain, "hostname": null, "mac": n.mac,
                    "address": address, "expiry": null, "bridge": ifname(n.ifindex),
                    "source": "neighbour"}));
            }
        }
    }
    if as_json {
        println!("{}", Value::Array(rows));
        return Ok(());
    }
    println!(
        "{:<20} {:<20} {:<18} {:<26} {:<11} {:<10} SOURCE",
        "DOMAIN", "HOSTNAME", "MAC", "ADDRESS", "EXPIRY", "BRIDGE"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<20} {:<20} {:<18} {:<26} {:<11} {:<10} {}",
            s("domain"),
            s("hostname"),
            s("mac"),
            s("address"),
            r["expiry"]
                .as_i64()
                .map(expiry_text)
                .unwrap_or_else(|| "-".into()),
            s("bridge"),
            s("source")
        );
    }
    Ok(())
}

/// `check`: the doctor's report, as text or JSON; the exit status is the report's.
fn cmd_check(opts: &doctor::Options, as_json: bool) -> Result<ExitCode> {
    let report = doctor::check(opts);
    if as_json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn run(cli: Cli) -> Result<ExitCode> {
    let dir = cli
        .lease_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LEASE_DIR));
    let map = cli
        .guests_map
        .clone()
        .unwrap_or_else(|| PathBuf::from(seen::DEFAULT_MAP));
    match cli.cmd {
        Cmd::Lookup {
            name,
            service,
            explain,
            json,
        } => cmd_lookup(&dir, &map, &name, service, explain, json),
        Cmd::List { json } => cmd_list(&dir, &map, json).map(|()| true),
        Cmd::Hook {
            object,
            domain,
            operation,
            root,
            ..
        } => {
            use std::io::Read;
            let mut xml = Vec::new();
            std::io::stdin()
                .take(16 << 20)
                .read_to_end(&mut xml)
                .context("cannot read the domain XML on stdin")?;
            if object != "qemu" && object != "lxc" {
                anyhow::bail!("unknown hook object {object:?} (qemu or lxc)");
            }
            // Reported, never failed: see the hook module (libvirt would abort or kill the guest).
            if let Err(e) = hook::run(&root, &object, &domain, &operation, &xml) {
                eprintln!("nss-libvirt-guest: {object} hook for {domain} {operation}: {e:#}");
            }
            Ok(true)
        }
        Cmd::Check { json, root, glibc } => {
            return cmd_check(
                &doctor::Options {
                    root,
                    nsswitch: cli.nsswitch.clone(),
                    glibc,
                },
                json,
            );
        }
    }
    .map(|ok| ExitCode::from(if ok { 0 } else { 1 }))
}

fn main() -> ExitCode {
    // Like other filters (ripgrep): `nss-libvirt-guest list | head` ends quietly on SIGPIPE.
    // SAFETY: restoring the default disposition of a signal at startup, before any thread.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("nss-libvirt-guest: {e:#}");
            ExitCode::from(1)
        }
    }
}
