//! `nss-libvirt-guest check`: why `ssh guest` does not reach the libvirt services, with the fix.
//!
//! glibc asks the services of the `hosts:` line in order. After each one it looks up the
//! action for the status the service returned (see [`nsswitch`] for the syntax and the
//! defaults): `return` ends the lookup there, `continue` asks the next service. So a guest
//! name reaches `libvirt` / `libvirt_guest` only if every service before them returns, for a
//! name it does not know, a status whose action is `continue`. What the common services
//! return for a guest's name (see [`behaviour`]):
//!
//! - `files`, `myhostname`, `mymachines`: NOTFOUND. Harmless unless given `[NOTFOUND=return]`.
//! - `resolve` (systemd-resolved): NOTFOUND whenever systemd-resolved runs (UNAVAIL only when
//!   it does not). Fedora's and RHEL's `resolve [!UNAVAIL=return]` therefore ends every lookup
//!   there: services after it are never asked. The trap most often met.
//! - `mdns4_minimal` / `mdns_minimal`: UNAVAIL for names outside `.local`, so Debian's
//!   `mdns4_minimal [NOTFOUND=return]` stops only `.local` names.
//! - `dns`: NOTFOUND, after waiting for the servers; and a DNS server may answer a guest's
//!   short name itself (a search domain, a wildcard record): that answer wins. Put the
//!   libvirt services before `dns` and `resolve`.
//!
//! Beyond the line: each listed service needs its module `libnss_<service>.so.2` in a
//! directory the loader searches (otherwise glibc skips the service as UNAVAIL, silently);
//! a hosts cache (nscd, unscd) in front of NSS keeps a "not found" from before the guest got
//! its lease (nscd: `negative-time-to-live hosts`, 20 s by default; it stores no negative
//! answers when that is 0, and does not cache the module's answers, which carry TTL 0);
//! unscd also keeps found answers for `positive-time-to-live hosts`; nsncd does not cache. On
//! Fedora and RHEL authselect writes /etc/nsswitch.conf: the services are enabled with
//! `authselect enable-feature with-libvirt` (authselect 1.5: Fedora 37+, RHEL 10+) or, with
//! an older authselect, in /etc/authselect/user-nsswitch.conf + `authselect apply-changes`.
//!
//! The facts are written down in doc/nss.md ("nsswitch.conf as glibc reads it, and the traps").
//!
//! Exit status ([`Report::exit_code`]): 0 nothing to fix, 1 guest names do not resolve (a
//! problem), 3 they resolve but something will bite (a warning); 2 is wrong usage (clap).

pub mod host;
pub mod nsswitch;

use std::path::PathBuf;

use serde_json::{Value, json};

use host::{Authselect, CacheDaemon, NscdHosts, Root};
use nsswitch::{Action, Parsed, Quirk, Reader, Source, Status};

/// The services this package provides.
pub const OURS: [&str; 2] = ["libvirt", "libvirt_guest"];

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    pub root: PathBuf,
    /// nsswitch.conf to read instead of ROOT/etc/nsswitch.conf.
    pub nsswitch: Option<PathBuf>,
    /// glibc version whose reader applies (default: the running glibc's).
    pub glibc: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Problem,
    Warning,
    Note,
}

impl Severity {
    fn word(self) -> &'static str {
        match self {
            Severity::Problem => "problem",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// One thing found, with what to do about it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    /// Stable identifier for scripts.
    pub code: &'static str,
    pub message: String,
    pub fix: Option<String>,
}

/// Everything `check` found.
#[derive(Debug, Clone)]
pub struct Report {
    pub nsswitch: String,
    pub nsswitch_exists: bool,
    pub glibc: String,
    pub parsed: Parsed,
    pub modules: Vec<(String, String, bool, Option<String>)>,
    pub library_dirs: Vec<String>,
    pub daemons: Vec<CacheDaemon>,
    pub nscd: NscdHosts,
    pub authselect: Option<Authselect>,
    pub findings: Vec<Finding>,
}

/// What a service returns for the name of a guest it has no record of: each status it may
/// return, when, and how bad it is if that status ends the lookup.
pub fn behaviour(service: &str) -> &'static [(Status, &'static str, Severity)] {
    use Severity::*;
    use Status::*;
    match service {
        "files" => &[
            (
                NotFound,
                "for every name that is not in /etc/hosts",
                Problem,
            ),
            (Unavail, "when /etc/hosts cannot be read", Note),
        ],
        "myhostname" => &[(NotFound, "for every name but the host's own", Problem)],
        "mymachines" => &[
            (
                NotFound,
                "for every name that is not a container registered with systemd-machined",
                Problem,
            ),
            (Unavail, "when systemd-machined is not running", Warning),
        ],
        "resolve" => &[
            (NotFound, "whenever systemd-resolved is running", Problem),
            (TryAgain, "when no DNS server answers", Warning),
        ],
        "dns" => &[
            (NotFound, "for every name DNS does not know", Problem),
            (TryAgain, "when no DNS server answers in time", Warning),
            (Unavail, "when no DNS server is configured", Warning),
        ],
        "mdns_minimal" | "mdns4_minimal" | "mdns6_minimal" => &[
            (Unavail, "for names outside .local", Problem),
            (NotFound, "for guest names ending in .local", Note),
        ],
        "mdns" | "mdns4" | "mdns6" => &[
            (NotFound, "whenever avahi-daemon is running", Problem),
            (Unavail, "when avahi-daemon is not running", Warning),
        ],
        "libvirt" | "libvirt_guest" => &[
            (NotFound, "for a name it has no live lease for", Problem),
            (Unavail, "when the lease directory cannot be read", Note),
        ],
        _ => &[
            (NotFound, "for a name it does not know", Problem),
            (Unavail, "when it is not available", Warning),
            (TryAgain, "when it cannot answer now", Warning),
        ],
    }
}

/// Services that may answer a guest's name from elsewhere (a DNS server, the network) and
/// make a lookup wait: ours belong before them.
const RESOLVERS: &[&str] = &[
    "dns", "resolve", "mdns", "mdns4", "mdns6", "wins", "nis", "nisplus", "ldap", "sss", "hesiod",
];

/// Services that answer from the host itself, quickly: fine before ours.
const LOCAL: &[&str] = &[
    "files",
    "myhostname",
    "mymachines",
    "altfiles",
    "systemd",
    "db",
];

/// The worst status of `s` whose action ends the lookup, for a name `s` does not know.
fn stops(s: &Source) -> Option<(Status, &'static str, Severity)> {
    behaviour(&s.name)
        .iter()
        .filter(|(st, _, _)| s.action(*st) == Action::Return)
        .min_by_key(|(_, _, sev)| *sev)
        .copied()
}

/// The `hosts:` line with our services moved (or added) right after the local services at
/// its start, before anything that could stop the lookup or answer for a guest.
pub fn suggested_line(sources: &[Source]) -> String {
    let listed: Vec<&str> = OURS
        .iter()
        .copied()
        .filter(|o| sources.iter().any(|s| s.name == *o))
        .collect();
    let ours: Vec<&str> = if listed.is_empty() {
        OURS.to_vec()
    } else {
        listed
    };
    let rest: Vec<&Source> = sources
        .iter()
        .filter(|s| !OURS.contains(&s.name.as_str()))
        .collect();
    let at = rest
        .iter()
        .position(|s| {
            !LOCAL.contains(&s.name.as_str())
                || stops(s).is_some_and(|(_, _, sev)| sev != Severity::Note)
        })
        .unwrap_or(rest.len());
    let mut words: Vec<String> = rest[..at].iter().map(|s| s.written()).collect();
    words.extend(ours.iter().map(|s| s.to_string()));
    words.extend(rest[at..].iter().map(|s| s.written()));
    format!("hosts: {}", words.join(" "))
}

fn line_of(sources: &[Source]) -> String {
    sources
        .iter()
        .map(Source::written)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Read everything and judge it.
pub fn check(opts: &Options) -> Report {
    let root = Root(opts.root.clone());
    let glibc = opts.glibc.clone().unwrap_or_else(host::glibc_version);
    let reader = Reader::of_version(&glibc).unwrap_or(Reader::Modern);
    let path = opts
        .nsswitch
        .clone()
        .unwrap_or_else(|| root.path("/etc/nsswitch.conf"));
    let shown = if opts.nsswitch.is_some() {
        path.display().to_string()
    } else {
        root.show(&path)
    };
    let mut findings = Vec::new();
    let mut add = |severity, code, message: String, fix: Option<String>| {
        findings.push(Finding {
            severity,
            code,
            message,
            fix,
        })
    };
    // glibc treats a file it cannot open (missing, unreadable, a directory) as absent.
    let (text, exists) = match std::fs::read(&path) {
        Ok(b) => (String::from_utf8_lossy(&b).into_owned(), true),
        Err(e) => {
            add(
                Severity::Note,
                "nsswitch-missing",
                format!("cannot read {shown} ({e}): glibc then uses its built-in defaults"),
                None,
            );
            (String::new(), false)
        }
    };
    let parsed = nsswitch::parse(&text, reader);
    let authselect = host::authselect(&root);
    let with_libvirt = authselect
        .as_ref()
        .is_some_and(|a| a.features.iter().any(|f| f == "with-libvirt"));
    let sources = parsed.effective();
    let fix_line = suggested_line(&sources);
    let edit = |line: &str| -> String {
        match &authselect {
            None => format!("in {shown}: {line}"),
            Some(a) if !with_libvirt => format!(
                "authselect manages {shown} (profile {}): run `authselect enable-feature with-libvirt` \
                 (authselect 1.5 and later: Fedora 37+, RHEL 10+); with an older authselect put \
                 `{line}` into /etc/authselect/user-nsswitch.conf and run `authselect apply-changes` \
                 (editing {shown} itself is undone by the next authselect run)",
                a.profile
            ),
            Some(a) => format!(
                "authselect writes this line (profile {}, with-libvirt): change it in the profile \
                 (a custom one: `authselect create-profile`), not in {shown}: {line}",
                a.profile
            ),
        }
    };
    let who = if reader == Reader::Modern {
        format!("glibc {glibc} (2.33 and later)")
    } else {
        format!("glibc {glibc} (before 2.33)")
    };

    if let Some(s) = &parsed.syntax {
        if reader == Reader::Modern {
            add(
                Severity::Problem,
                "syntax-error",
                format!(
                    "{shown} line {}, column {} ({}:): {}; {who} rejects the whole file for this: \
                     every lookup of users, groups and hosts fails",
                    s.line, s.column, s.database, s.what
                ),
                Some(format!("correct line {} of {shown}", s.line)),
            );
        } else {
            add(
                Severity::Warning,
                "syntax-error",
                format!(
                    "{shown} line {}, column {} ({}:): {}; {who} ignores that service and the rest \
                     of the line (glibc 2.33 and later reject the whole file)",
                    s.line, s.column, s.database, s.what
                ),
                Some(format!("correct line {} of {shown}", s.line)),
            );
        }
    }
    for q in &parsed.quirks {
        let (sev, code, msg) = match q {
            Quirk::HashInsideLine { line } => (
                Severity::Warning,
                "hash-inside-line",
                format!(
                    "{shown} line {line}: the `#` is not a comment for glibc 2.33 and later: the \
                     words after it are services (older glibc ends the line there); {who} applies"
                ),
            ),
            Quirk::NoFinalNewline { line, database } => (
                if database == "hosts" && reader == Reader::Modern {
                    Severity::Problem
                } else {
                    Severity::Warning
                },
                "no-final-newline",
                format!(
                    "{shown} line {line} ({database}:) is the last line and has no newline: glibc \
                     2.33 and later ignore it (older glibc reads it); {who} applies"
                ),
            ),
            Quirk::Duplicate { lines } => (
                Severity::Warning,
                "duplicate-hosts",
                format!(
                    "{shown} has {} hosts: lines ({}): glibc 2.33 and later use the last, older \
                     glibc the first; {who} applies",
                    lines.len(),
                    lines
                        .iter()
                        .map(|l| l.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Quirk::Continuation { line } => (
                Severity::Warning,
                "continuation",
                format!(
                    "{shown} line {line} ends in `\\`: glibc has no continuation lines; the next \
                     line is not part of hosts:"
                ),
            ),
            Quirk::StoppedAtBracket { line, column } => (
                Severity::Warning,
                "second-bracket",
                format!(
                    "{shown} line {line}, column {column}: a second [...] after a service ends the \
                     list for glibc: the services after it are ignored"
                ),
            ),
            Quirk::WrongCase { line, written } => (
                Severity::Warning,
                "database-case",
                format!(
                    "{shown} line {line}: glibc's database names are case-sensitive: `{written}:` \
                     is not hosts: and is ignored"
                ),
            ),
        };
        let fix = match q {
            Quirk::HashInsideLine { .. } => "put the comment on a line of its own".to_string(),
            Quirk::NoFinalNewline { .. } => format!("end {shown} with a newline"),
            Quirk::Duplicate { .. } => "keep one hosts: line".to_string(),
            _ => edit(&fix_line),
        };
        add(sev, code, msg, Some(fix));
    }
    if parsed.hosts.is_none() && parsed.syntax.is_none() {
        add(
            Severity::Note,
            "no-hosts-line",
            format!(
                "{shown} has no hosts: line that glibc uses: glibc's default `{}` applies",
                nsswitch::DEFAULT_HOSTS
            ),
            None,
        );
    }

    let pos: Vec<(usize, &str)> = OURS
        .iter()
        .filter_map(|o| sources.iter().position(|s| s.name == *o).map(|i| (i, *o)))
        .collect();
    let broken = parsed.syntax.is_some() && reader == Reader::Modern;
    if pos.is_empty() && !broken {
        add(
            Severity::Problem,
            "services-missing",
            format!(
                "the hosts: line glibc uses (`{}`) lists neither libvirt nor libvirt_guest: guest names are never asked",
                line_of(&sources)
            ),
            Some(edit(&fix_line)),
        );
    } else if pos.len() == 1 {
        let (have, missing) = (
            pos[0].1,
            if pos[0].1 == "libvirt" {
                "libvirt_guest"
            } else {
                "libvirt"
            },
        );
        let what = if missing == "libvirt" {
            "DHCP host names that differ from the domain name do not resolve"
        } else {
            "libvirt domain names (virsh list) do not resolve, only the host names guests send over DHCP"
        };
        add(
            Severity::Note,
            "one-service",
            format!("only {have} is listed: {what}"),
            Some(format!("if wanted, {}", edit(&fix_line))),
        );
    }

    // Services before ours that end the lookup, or ask the network first.
    let mut stopped = false;
    if let Some(&(last, _)) = pos.iter().max() {
        for (j, s) in sources[..last].iter().enumerate() {
            let Some((st, when, sev)) = stops(s) else {
                continue;
            };
            let blocked: Vec<&str> = pos
                .iter()
                .filter(|(i, _)| *i > j)
                .map(|(_, o)| *o)
                .collect();
            let (sev, code) = match sev {
                Severity::Problem => (Severity::Problem, "shadowed"),
                other => (other, "shadowed-sometimes"),
            };
            stopped |= sev == Severity::Problem;
            add(
                sev,
                code,
                format!(
                    "{} returns {} {when}, and its action for that is return ({}): the lookup \
                     ends there and never reaches {}",
                    s.name,
                    st.word(),
                    s.criteria.as_deref().unwrap_or("the default"),
                    blocked.join(" and ")
                ),
                Some(edit(&fix_line)),
            );
        }
    }
    if !stopped {
        if let Some(&(i, ours)) = pos.first() {
            for s in sources[..i]
                .iter()
                .filter(|s| RESOLVERS.contains(&s.name.as_str()))
            {
                add(
                    Severity::Warning,
                    "after-resolver",
                    format!(
                        "{} is asked before {ours}: a server may answer a guest's name itself (a \
                         search domain, a wildcard record, LLMNR) and that answer wins, and a name \
                         it does not know waits for its timeouts first",
                        s.name
                    ),
                    Some(edit(&fix_line)),
                );
            }
        }
    }

    // The modules of the listed services.
    let dirs = host::library_dirs(&root);
    let mut modules = Vec::new();
    for o in OURS {
        let lib = format!("libnss_{o}.so.2");
        let listed = sources.iter().any(|s| s.name == o);
        let found = host::find_module(&root, &dirs, &lib);
        if listed && found.is_none() {
            add(
                Severity::Problem,
                "module-missing",
                format!(
                    "{o} is listed but {lib} is in none of the directories the loader searches \
                     ({}): glibc skips the service as UNAVAIL, silently",
                    dirs.join(" ")
                ),
                Some(
                    "install the virt-hostkit-nss package (or `make install`), then run ldconfig"
                        .into(),
                ),
            );
        }
        if !listed && found.is_none() {
            add(
                Severity::Note,
                "module-not-installed",
                format!("{lib} is not installed (in none of {})", dirs.join(" ")),
                Some("install the virt-hostkit-nss package (or `make install`) before listing the service".into()),
            );
        }
        modules.push((o.to_string(), lib, listed, found));
    }

    // Hosts caches in front of NSS.
    let daemons = host::cache_daemons(&root);
    let nscd = host::nscd_hosts(&root);
    for d in &daemons {
        let state = match (d.enabled, d.running) {
            (true, true) => "enabled and running",
            (true, false) => "enabled (starts at boot)",
            _ => "running",
        };
        match d.name {
            "nsncd" => add(
                Severity::Note,
                "cache-nsncd",
                format!(
                    "nsncd is {state}: it answers lookups for every process without caching; \
                     restart it after installing or upgrading the module"
                ),
                None,
            ),
            name if nscd.enabled => {
                let unscd = name == "unscd";
                let stale = if unscd {
                    format!(
                        "and keeps a found address for positive-time-to-live hosts ({} s) after \
                         the guest's lease changed",
                        nscd.positive_ttl
                    )
                } else {
                    "(the module's answers carry TTL 0, which nscd does not keep)".to_string()
                };
                let sev = if nscd.negative_ttl > 0 || unscd {
                    Severity::Warning
                } else {
                    Severity::Note
                };
                let fix = if unscd {
                    "in /etc/nscd.conf: `enable-cache hosts no`, then restart unscd".to_string()
                } else if nscd.negative_ttl > 0 {
                    "in /etc/nscd.conf: `negative-time-to-live hosts 0` (nscd then stores no \
                     negative host answers; or `enable-cache hosts no`), then `nscd -i hosts` \
                     and restart nscd"
                        .to_string()
                } else {
                    "none needed".to_string()
                };
                add(
                    sev,
                    "hosts-cache",
                    format!(
                        "{name} is {state} and caches hosts (/etc/nscd.conf: enable-cache hosts \
                         yes): a guest asked for before it had a lease stays \"not found\" for \
                         negative-time-to-live hosts ({} s) {stale}",
                        nscd.negative_ttl
                    ),
                    Some(fix),
                );
            }
            name => add(
                Severity::Note,
                "hosts-cache-off",
                format!(
                    "{name} is {state}; its hosts cache is off ({})",
                    if nscd.file_exists {
                        "/etc/nscd.conf: enable-cache hosts is not yes"
                    } else {
                        "no /etc/nscd.conf"
                    }
                ),
                None,
            ),
        }
    }

    if let Some(a) = &authselect {
        let ours_listed = !pos.is_empty();
        if with_libvirt && !ours_listed {
            add(
                Severity::Problem,
                "authselect-not-applied",
                format!(
                    "authselect's feature with-libvirt is on (profile {}) but {shown} does not \
                     list the services",
                    a.profile
                ),
                Some("authselect apply-changes".into()),
            );
        } else if !with_libvirt && ours_listed {
            let user = root.path("/etc/authselect/user-nsswitch.conf");
            let kept = std::fs::read_to_string(&user).is_ok_and(|t| {
                nsswitch::parse(&t, reader)
                    .effective()
                    .iter()
                    .any(|s| OURS.contains(&s.name.as_str()))
            });
            if !kept {
                add(
                    Severity::Warning,
                    "authselect-hand-edit",
                    format!(
                        "{shown} lists the services but authselect (profile {}) manages it and \
                         does not know: the next `authselect select` or `apply-changes` removes them",
                        a.profile
                    ),
                    Some("authselect enable-feature with-libvirt (or the line in /etc/authselect/user-nsswitch.conf with an older authselect)".into()),
                );
            }
        }
    }

    let lease_dir = root.path(crate_lease_dir());
    if !lease_dir.is_dir() {
        add(
            Severity::Note,
            "no-lease-dir",
            format!(
                "{} does not exist yet: no libvirt network has run on this host",
                root.show(&lease_dir)
            ),
            None,
        );
    }
    findings.sort_by_key(|f| f.severity);
    Report {
        nsswitch: shown,
        nsswitch_exists: exists,
        glibc,
        parsed,
        modules,
        library_dirs: dirs,
        daemons,
        nscd,
        authselect,
        findings,
    }
}

fn crate_lease_dir() -> &'static str {
    nss_libvirt_guest::lookup::DEFAULT_LEASE_DIR
}

impl Report {
    fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// 0: nothing to fix; 1: a problem (guest names do not resolve); 3: warnings only.
    pub fn exit_code(&self) -> u8 {
        if self.count(Severity::Problem) > 0 {
            1
        } else if self.count(Severity::Warning) > 0 {
            3
        } else {
            0
        }
    }

    pub fn verdict(&self) -> &'static str {
        match self.exit_code() {
            1 => "problems",
            3 => "warnings",
            _ => "ok",
        }
    }

    pub fn to_json(&self) -> Value {
        let sources = self.parsed.effective();
        json!({
            "verdict": self.verdict(),
            "exit_status": self.exit_code(),
            "glibc": self.glibc,
            "nsswitch": {
                "file": self.nsswitch,
                "exists": self.nsswitch_exists,
                "reader": match self.parsed.reader { Reader::Modern => "glibc 2.33+", Reader::Legacy => "glibc < 2.33" },
                "hosts_line": self.parsed.hosts.as_ref().map(|(l, _)| *l),
                "hosts": sources.iter().map(Source::written).collect::<Vec<_>>(),
                "services": sources.iter().map(|s| json!({
                    "name": s.name,
                    "actions": Status::ALL.iter().map(|st| (st.word().to_string(), Value::from(match s.action(*st) {
                        Action::Return => "return", Action::Continue => "continue", Action::Merge => "merge" }))).collect::<serde_json::Map<_, _>>(),
                })).collect::<Vec<_>>(),
                "suggested": suggested_line(&sources),
            },
            "modules": self.modules.iter().map(|(svc, lib, listed, path)| json!({
                "service": svc, "module": lib, "listed": listed, "path": path})).collect::<Vec<_>>(),
            "library_dirs": self.library_dirs,
            "hosts_cache": {
                "daemons": self.daemons.iter().map(|d| json!({"name": d.name, "enabled": d.enabled, "running": d.running})).collect::<Vec<_>>(),
                "nscd_conf": {"exists": self.nscd.file_exists, "enable_cache_hosts": self.nscd.enabled,
                    "positive_time_to_live_hosts": self.nscd.positive_ttl, "negative_time_to_live_hosts": self.nscd.negative_ttl},
            },
            "authselect": self.authselect.as_ref().map(|a| json!({"profile": a.profile, "features": a.features})),
            "findings": self.findings.iter().map(|f| json!({
                "severity": f.severity.word(), "code": f.code, "message": f.message, "fix": f.fix})).collect::<Vec<_>>(),
        })
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let sources = self.parsed.effective();
        let at = match &self.parsed.hosts {
            Some((l, _)) => format!("line {l}"),
            None => "glibc's default".into(),
        };
        out += &format!(
            "{}: hosts: {} ({at}; read as glibc {} does)\n",
            self.nsswitch,
            line_of(&sources),
            self.glibc
        );
        for (_, lib, _, path) in &self.modules {
            out += &format!("{lib}: {}\n", path.as_deref().unwrap_or("not found"));
        }
        for d in &self.daemons {
            out += &format!(
                "hosts cache: {} ({}{})\n",
                d.name,
                if d.enabled { "enabled" } else { "not enabled" },
                if d.running { ", running" } else { "" }
            );
        }
        if let Some(a) = &self.authselect {
            out += &format!(
                "authselect: profile {}{}\n",
                a.profile,
                if a.features.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", a.features.join(" "))
                }
            );
        }
        for f in &self.findings {
            out += &format!("{}: {}\n", f.severity.word(), f.message);
            if let Some(fix) = &f.fix {
                out += &format!("  fix: {fix}\n");
            }
        }
        out += &match self.exit_code() {
            1 => format!(
                "verdict: {} problem(s): guest names do not resolve through libvirt/libvirt_guest\n",
                self.count(Severity::Problem)
            ),
            3 => format!(
                "verdict: guest names resolve, with {} warning(s)\n",
                self.count(Severity::Warning)
            ),
            _ => "verdict: ok\n".to_string(),
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsswitch::parse;

    fn sug(line: &str) -> String {
        suggested_line(&parse(line, Reader::Modern).effective())
    }

    #[test]
    fn suggested_lines() {
        assert_eq!(
            sug("hosts: files mdns4_minimal [NOTFOUND=return] dns myhostname\n"),
            "hosts: files libvirt libvirt_guest mdns4_minimal [NOTFOUND=return] dns myhostname"
        );
        assert_eq!(
            sug("hosts: files myhostname resolve [!UNAVAIL=return] dns libvirt_guest\n"),
            "hosts: files myhostname libvirt_guest resolve [!UNAVAIL=return] dns"
        );
        assert_eq!(
            sug("hosts: files [NOTFOUND=return] dns\n"),
            "hosts: libvirt libvirt_guest files [NOTFOUND=return] dns"
        );
        assert_eq!(
            sug("hosts: files libvirt libvirt_guest dns\n"),
            "hosts: files libvirt libvirt_guest dns"
        );
    }
}
