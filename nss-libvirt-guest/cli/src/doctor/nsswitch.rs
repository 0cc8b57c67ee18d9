//! nsswitch.conf as glibc reads it: which `hosts:` services a lookup walks through, in which
//! order, and what each does with the status the service returns.
//!
//! Two generations of the reader are in use on the hosts we support, and they differ in ways
//! that decide whether a guest name reaches our services (each verified with `getent` and a
//! bind-mounted nsswitch.conf on glibc 2.36; the older reader is glibc's `nsswitch.c`, which
//! RHEL 8 (2.28) and Debian 11 (2.31) still ship):
//!
//! | | glibc 2.33 and later (`nss_database.c`) | glibc before 2.33 (`nsswitch.c`) |
//! |---|---|---|
//! | `#` inside a line | not a comment: `hosts: files # dns` lists the services `files`, `#` and `dns` | starts a comment |
//! | a second `hosts:` line | the last one wins | the first one wins |
//! | last line without a final newline | ignored | read |
//! | a syntax error in any `[...]` of a known database | the whole file is rejected: every lookup (users, groups, hosts) fails | that service and the rest of its line are dropped |
//!
//! Common to both: a line is `database` (case-sensitive: `HOSTS:` is not `hosts:`), then
//! spaces or `:`, then services. A service name ends at white space or `[`. After a service,
//! `[STATUS=ACTION ...]` changes what happens when the service returns STATUS: status words
//! `SUCCESS`, `NOTFOUND`, `UNAVAIL`, `TRYAGAIN` and actions `return`, `continue`, `merge`,
//! all case-insensitive, spaces allowed around `=`. `!STATUS=ACTION` sets ACTION for every
//! status but STATUS. Defaults: `[SUCCESS=return NOTFOUND=continue UNAVAIL=continue
//! TRYAGAIN=continue]`. There is no line continuation (a trailing `\` is a service named `\`,
//! and the next line is not part of the `hosts:` line), and a second `[...]` right after the
//! first ends the list: the services after it are ignored. Without a `hosts:` line (or
//! without the file) glibc uses `dns [!UNAVAIL=return] files`.

/// What an NSS service returned for one lookup (`enum nss_status`, the four that actions name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    NotFound,
    Unavail,
    TryAgain,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Success,
        Status::NotFound,
        Status::Unavail,
        Status::TryAgain,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::NotFound => "NOTFOUND",
            Status::Unavail => "UNAVAIL",
            Status::TryAgain => "TRYAGAIN",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What glibc does after a service returned a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Return,
    Continue,
    Merge,
}

/// One service of a line, with its actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    actions: [Action; 4],
    /// The `[...]` as written, if there was one.
    pub criteria: Option<String>,
}

impl Source {
    fn new(name: &str) -> Source {
        let mut actions = [Action::Continue; 4];
        actions[Status::Success.index()] = Action::Return;
        Source {
            name: name.to_string(),
            actions,
            criteria: None,
        }
    }

    pub fn action(&self, s: Status) -> Action {
        self.actions[s.index()]
    }

    /// The service as it would be written back into a `hosts:` line.
    pub fn written(&self) -> String {
        match &self.criteria {
            Some(c) => format!("{} {c}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Which reader applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// glibc 2.33 and later.
    Modern,
    /// glibc before 2.33.
    Legacy,
}

impl Reader {
    /// The reader of glibc `major.minor`.
    pub fn of_version(version: &str) -> Option<Reader> {
        let mut it = version.split('.');
        let major: u32 = it.next()?.trim().parse().ok()?;
        let minor: u32 = it.next()?.trim().parse().ok()?;
        Some(if (major, minor) >= (2, 33) {
            Reader::Modern
        } else {
            Reader::Legacy
        })
    }
}

/// A syntax error in a `[...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syntax {
    pub line: usize,
    /// 1-based, in characters of the line.
    pub column: usize,
    pub database: String,
    pub what: String,
}

/// Something in the file that the two readers treat differently or that does not do what
/// it looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quirk {
    /// A `#` after the start of the `hosts:` line.
    HashInsideLine { line: usize },
    /// The file's last line (a database line) has no newline.
    NoFinalNewline { line: usize, database: String },
    /// More than one `hosts:` line.
    Duplicate { lines: Vec<usize> },
    /// A `hosts:` line ending in `\`.
    Continuation { line: usize },
    /// A second `[...]` ended the list at this column.
    StoppedAtBracket { line: usize, column: usize },
    /// `HOSTS:` or another spelling glibc does not recognise.
    WrongCase { line: usize, written: String },
}

/// The result of reading nsswitch.conf with one reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub reader: Reader,
    /// The `hosts:` line glibc uses (line number, services); None: glibc's default.
    pub hosts: Option<(usize, Vec<Source>)>,
    /// The modern reader rejected the file (every lookup fails); the legacy one dropped the
    /// rest of that line.
    pub syntax: Option<Syntax>,
    pub quirks: Vec<Quirk>,
}

impl Parsed {
    /// The services glibc walks for hosts lookups.
    pub fn effective(&self) -> Vec<Source> {
        match &self.hosts {
            Some((_, s)) => s.clone(),
            None => default_hosts(),
        }
    }
}

/// glibc's `hosts` default when nsswitch.conf has no `hosts:` line.
pub const DEFAULT_HOSTS: &str = "dns [!UNAVAIL=return] files";

pub fn default_hosts() -> Vec<Source> {
    parse_sources(DEFAULT_HOSTS, 0).sources
}

/// The databases glibc 2.33+ knows (its `databases.def`): lines naming others are skipped
/// unparsed, lines naming these are parsed and can break the whole file.
const DATABASES: &[&str] = &[
    "aliases",
    "ethers",
    "group",
    "group_compat",
    "gshadow",
    "hosts",
    "initgroups",
    "netgroup",
    "networks",
    "passwd",
    "passwd_compat",
    "publickey",
    "rpc",
    "services",
    "shadow",
    "shadow_compat",
];

/// C's `isspace` in the C locale.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

struct SourceList {
    sources: Vec<Source>,
    /// (column, what) of a syntax error; `sources` holds those before it.
    error: Option<(usize, String)>,
    /// Column of a `[` where a service name was expected.
    stopped_at: Option<usize>,
}

/// glibc's `nss_action_parse` over `text`; `col0` is the column of text[0] in its line.
fn parse_sources(text: &str, col0: usize) -> SourceList {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = SourceList {
        sources: Vec::new(),
        error: None,
        stopped_at: None,
    };
    let col = |i: usize| col0 + i + 1;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && is_space(chars[*i]) {
            *i += 1;
        }
    };
    let word = |i: &mut usize| -> String {
        let start = *i;
        while *i < chars.len() && !is_space(chars[*i]) && chars[*i] != '=' && chars[*i] != ']' {
            *i += 1;
        }
        chars[start..*i].iter().collect()
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            return out;
        }
        let start = i;
        while i < chars.len() && !is_space(chars[i]) && chars[i] != '[' {
            i += 1;
        }
        if i == start {
            out.stopped_at = Some(col(i));
            return out;
        }
        let name: String = chars[start..i].iter().collect();
        let mut src = Source::new(&name);
        skip_ws(&mut i);
        if i < chars.len() && chars[i] == '[' {
            let open = i;
            i += 1;
            skip_ws(&mut i);
            loop {
                let not = i < chars.len() && chars[i] == '!';
                if not {
                    i += 1;
                }
                let at = i;
                let w = word(&mut i);
                let status = match w.to_ascii_uppercase().as_str() {
                    "SUCCESS" => Status::Success,
                    "NOTFOUND" => Status::NotFound,
                    "UNAVAIL" => Status::Unavail,
                    "TRYAGAIN" => Status::TryAgain,
                    _ if at >= chars.len() => {
                        out.error = Some((col(open), "this [ is not closed with ]".into()));
                        return out;
                    }
                    _ => {
                        out.error = Some((
                            col(at),
                            format!(
                                "unknown status \"{w}\" (SUCCESS, NOTFOUND, UNAVAIL or TRYAGAIN)"
                            ),
                        ));
                        return out;
                    }
                };
                skip_ws(&mut i);
                if i >= chars.len() || chars[i] != '=' {
                    out.error = Some((col(i), format!("\"=\" expected after {w}")));
                    return out;
                }
                i += 1;
                skip_ws(&mut i);
                let at = i;
                let a = word(&mut i);
                let action = match a.to_ascii_lowercase().as_str() {
                    "return" => Action::Return,
                    "continue" => Action::Continue,
                    "merge" => Action::Merge,
                    _ => {
                        out.error = Some((
                            col(at),
                            format!("unknown action \"{a}\" (return, continue or merge)"),
                        ));
                        return out;
                    }
                };
                if not {
                    let keep = src.action(status);
                    src.actions = [action; 4];
                    src.actions[status.index()] = keep;
                } else {
                    src.actions[status.index()] = action;
                }
                skip_ws(&mut i);
                if i < chars.len() && chars[i] == ']' {
                    break;
                }
            }
            i += 1;
            src.criteria = Some(chars[open..i].iter().collect());
        }
        out.sources.push(src);
    }
}

/// `database` and the rest of a line as glibc splits them; None for lines it skips.
/// `modern` skips all white space and colons after the name; the legacy reader skips one
/// character.
fn split_database(line: &str, modern: bool) -> Option<(String, usize)> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() && is_space(chars[i]) {
        i += 1;
    }
    let start = i;
    while i < chars.len() && !is_space(chars[i]) && chars[i] != ':' {
        i += 1;
    }
    if i >= chars.len() || i == start {
        return None;
    }
    let name: String = chars[start..i].iter().collect();
    if modern {
        while i < chars.len() && (is_space(chars[i]) || chars[i] == ':') {
            i += 1;
        }
    } else {
        i += 1;
    }
    Some((name, i))
}

/// Read nsswitch.conf `text` as `reader` does.
pub fn parse(text: &str, reader: Reader) -> Parsed {
    let mut p = Parsed {
        reader,
        hosts: None,
        syntax: None,
        quirks: Vec::new(),
    };
    let mut hosts_lines = Vec::new();
    let pieces: Vec<&str> = text.split_inclusive('\n').collect();
    for (n, raw) in pieces.iter().enumerate() {
        let line_no = n + 1;
        let complete = raw.ends_with('\n');
        let body = raw.strip_suffix('\n').unwrap_or(raw);
        // What the line would be without a comment (legacy reading).
        let uncommented = body.split('#').next().unwrap_or("");
        let modern = reader == Reader::Modern;
        let seen = if modern { *raw } else { uncommented };
        let Some((name, rest_at)) = split_database(seen, modern) else {
            continue;
        };
        let known = DATABASES.contains(&name.as_str());
        if !complete {
            p.quirks.push(Quirk::NoFinalNewline {
                line: line_no,
                database: name.clone(),
            });
            if modern {
                // glibc 2.33+ stops at end of file before looking at a last partial line.
                continue;
            }
        }
        if name != "hosts" && name.eq_ignore_ascii_case("hosts") {
            p.quirks.push(Quirk::WrongCase {
                line: line_no,
                written: name.clone(),
            });
        }
        if modern && !known {
            continue;
        }
        let rest: String = seen.chars().skip(rest_at).collect();
        let list = parse_sources(&rest, rest_at);
        if name == "hosts" {
            hosts_lines.push(line_no);
            if body.trim_start().find('#').is_some_and(|i| i > 0) {
                p.quirks.push(Quirk::HashInsideLine { line: line_no });
            }
            if uncommented.trim_end().ends_with('\\') || body.trim_end().ends_with('\\') {
                p.quirks.push(Quirk::Continuation { line: line_no });
            }
            if let Some(c) = list.stopped_at {
                p.quirks.push(Quirk::StoppedAtBracket {
                    line: line_no,
                    column: c,
                });
            }
        }
        if let Some((column, what)) = list.error.clone() {
            if p.syntax.is_none() {
                p.syntax = Some(Syntax {
                    line: line_no,
                    column,
                    database: name.clone(),
                    what,
                });
            }
            if modern {
                // The whole file is rejected: nothing after this line is read either.
                p.hosts = None;
                break;
            }
        }
        if name == "hosts" && (modern || p.hosts.is_none()) {
            p.hosts = Some((line_no, list.sources));
        }
    }
    if hosts_lines.len() > 1 {
        p.quirks.push(Quirk::Duplicate { lines: hosts_lines });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Parsed) -> Vec<String> {
        p.effective().iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn actions_follow_glibc() {
        let p = parse(
            "hosts: files mdns4_minimal [NOTFOUND=return] dns\n",
            Reader::Modern,
        );
        let s = p.effective();
        assert_eq!(names(&p), ["files", "mdns4_minimal", "dns"]);
        assert_eq!(s[1].action(Status::NotFound), Action::Return);
        assert_eq!(s[1].action(Status::Unavail), Action::Continue);
        assert_eq!(s[1].criteria.as_deref(), Some("[NOTFOUND=return]"));
        assert_eq!(s[0].action(Status::Success), Action::Return);
        // `!` sets every other status; case-insensitive words; spaces around `=`
        let p = parse("hosts: resolve [!unavail = Return] dns\n", Reader::Modern);
        let r = &p.effective()[0];
        for (st, a) in [
            (Status::Success, Action::Return),
            (Status::NotFound, Action::Return),
            (Status::TryAgain, Action::Return),
            (Status::Unavail, Action::Continue),
        ] {
            assert_eq!(r.action(st), a, "{st:?}");
        }
        // glued brackets
        let p = parse("hosts:files[NOTFOUND=return]libvirt\n", Reader::Modern);
        assert_eq!(names(&p), ["files", "libvirt"]);
    }

    #[test]
    fn the_two_readers_differ_where_glibc_does() {
        let hash = "hosts: files # libvirt_guest\n";
        assert_eq!(
            names(&parse(hash, Reader::Modern)),
            ["files", "#", "libvirt_guest"]
        );
        assert_eq!(names(&parse(hash, Reader::Legacy)), ["files"]);
        let dup = "hosts: files libvirt\nhosts: files\n";
        assert_eq!(names(&parse(dup, Reader::Modern)), ["files"]);
        assert_eq!(names(&parse(dup, Reader::Legacy)), ["files", "libvirt"]);
        assert!(
            parse(dup, Reader::Modern)
                .quirks
                .contains(&Quirk::Duplicate { lines: vec![1, 2] })
        );
        let partial = "passwd: files\nhosts: files libvirt";
        assert_eq!(
            names(&parse(partial, Reader::Modern)),
            ["dns", "files"],
            "the default"
        );
        assert_eq!(names(&parse(partial, Reader::Legacy)), ["files", "libvirt"]);
        let bad = "hosts: files libvirt\npasswd: files [bogus=return] systemd\n";
        let m = parse(bad, Reader::Modern);
        assert_eq!(m.hosts, None);
        let s = m.syntax.unwrap();
        assert_eq!((s.line, s.column, s.database.as_str()), (2, 16, "passwd"));
        assert!(s.what.contains("unknown status \"bogus\""), "{}", s.what);
        let l = parse(bad, Reader::Legacy);
        assert_eq!(names(&l), ["files", "libvirt"]);
        // A database glibc does not know is not parsed by the modern reader.
        assert_eq!(
            parse("automount: files [x]\nhosts: libvirt\n", Reader::Modern).syntax,
            None
        );
    }

    #[test]
    fn lines_that_do_not_do_what_they_look_like() {
        let p = parse("HOSTS: libvirt\n", Reader::Modern);
        assert_eq!(p.hosts, None);
        assert!(matches!(p.quirks[0], Quirk::WrongCase { line: 1, .. }));
        let p = parse("hosts: files \\\n  libvirt\n", Reader::Modern);
        assert_eq!(names(&p), ["files", "\\"]);
        assert!(p.quirks.contains(&Quirk::Continuation { line: 1 }));
        let p = parse(
            "hosts: files [NOTFOUND=return] [NOTFOUND=continue] libvirt\n",
            Reader::Modern,
        );
        assert_eq!(names(&p), ["files"]);
        assert!(matches!(
            p.quirks[0],
            Quirk::StoppedAtBracket { line: 1, .. }
        ));
        let p = parse("hosts: files [NOTFOUND=return\n", Reader::Modern);
        assert!(p.syntax.unwrap().what.contains("not closed"));
        let p = parse(
            "#hosts: libvirt\n   hosts   files libvirt\n",
            Reader::Modern,
        );
        assert_eq!(p.hosts.as_ref().unwrap().0, 2);
        assert_eq!(names(&p), ["files", "libvirt"]);
        assert_eq!(names(&parse("", Reader::Modern)), ["dns", "files"]);
    }

    #[test]
    fn reader_of_version() {
        assert_eq!(Reader::of_version("2.36"), Some(Reader::Modern));
        assert_eq!(Reader::of_version("2.33"), Some(Reader::Modern));
        assert_eq!(Reader::of_version("2.28"), Some(Reader::Legacy));
        assert_eq!(Reader::of_version("x"), None);
    }
}
