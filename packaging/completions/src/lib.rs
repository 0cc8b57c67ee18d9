//! Shell completions of virt-hostkit's commands, generated with clap's own generator
//! (`clap_complete`) from the very `clap::Command` each binary parses with (the parts'
//! `cli::command()`), so they cannot drift from the CLIs. `make install-completions` runs the
//! `vhk-completions` binary on the build host (also when the binaries are cross-built: the
//! scripts are text and the same for every architecture).

use std::io::Write;

use clap_complete::Shell;

/// The programs that get completions: the commands people type. (`nodedev-helper-callout` is
/// run by mdevctl only.)
pub const PROGRAMS: [&str; 3] = ["nodedev-helper", "storage-align", "nss-libvirt-guest"];

/// The shells we generate for, by the name `vhk-completions` takes.
pub const SHELLS: [(&str, Shell); 3] = [
    ("bash", Shell::Bash),
    ("zsh", Shell::Zsh),
    ("fish", Shell::Fish),
];

/// The `clap::Command` of `program`, or `None` for a program we do not know.
pub fn command(program: &str) -> Option<clap::Command> {
    Some(match program {
        "nodedev-helper" => nodedev_helper::cli::command(),
        "storage-align" => storage_align::cli::command(),
        "nss-libvirt-guest" => nss_libvirt_guest_cli::cli::command(),
        _ => return None,
    })
}

/// The completion script of `program` for `shell` ("bash", "zsh", "fish").
pub fn script(shell: &str, program: &str) -> Option<Vec<u8>> {
    let (_, sh) = SHELLS.iter().find(|(n, _)| *n == shell)?;
    let mut cmd = command(program)?;
    let mut out = Vec::new();
    clap_complete::generate(*sh, &mut cmd, program, &mut out);
    if *sh == Shell::Bash {
        out = fix_bash_hyphens(program, &String::from_utf8_lossy(&out)).into_bytes();
    }
    Some(out)
}

/// clap_complete 4.6's bash script tracks the subcommand path in `$cmd`, spelling a `-` as
/// `__` in the program name (`cmd="nodedev__helper__subcmd__ap"`) but as `__subcmd__` in the
/// `case "${cmd}"` labels that pick the options (`nodedev__subcmd__helper__subcmd__ap)`): for
/// a hyphenated program name no subcommand ever completes its options or values (only the
/// top level does). Spell the labels as `$cmd` does; `tests::bash_case_labels_match` checks
/// that every label is reachable.
fn fix_bash_hyphens(program: &str, script: &str) -> String {
    let wrong = format!("{}__subcmd__", program.replace('-', "__subcmd__"));
    let right = format!("{}__subcmd__", program.replace('-', "__"));
    script.replace(&wrong, &right)
}

/// Writes `script(shell, program)` to `w`.
pub fn write(shell: &str, program: &str, w: &mut dyn Write) -> std::io::Result<bool> {
    match script(shell, program) {
        Some(s) => w.write_all(&s).map(|()| true),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(shell: &str, program: &str) -> String {
        String::from_utf8(script(shell, program).expect("known shell and program")).unwrap()
    }

    /// In the bash script, the states `$cmd` can take and the `case "${cmd}"` labels that
    /// complete them are the same set.
    #[test]
    fn bash_case_labels_match() {
        for p in PROGRAMS {
            let s = text("bash", p);
            let assigned: std::collections::BTreeSet<&str> = s
                .lines()
                .filter_map(|l| l.trim().strip_prefix("cmd=\""))
                .filter_map(|l| l.strip_suffix('"'))
                .filter(|c| !c.is_empty())
                .collect();
            let labels: std::collections::BTreeSet<&str> = s
                .lines()
                .filter(|l| l.starts_with("        ") && !l.starts_with("         "))
                .filter_map(|l| l.trim().strip_suffix(')'))
                .filter(|l| l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .collect();
            assert!(assigned.len() > 3, "{p}: {assigned:?}");
            assert_eq!(assigned, labels, "{p}: $cmd states vs case labels");
        }
    }

    /// Every shell gets a script naming every subcommand of every program.
    #[test]
    fn every_subcommand_is_in_every_script() {
        for p in PROGRAMS {
            let cmd = command(p).unwrap();
            for (sh, _) in SHELLS {
                let s = text(sh, p);
                for sub in cmd.get_subcommands() {
                    assert!(
                        s.contains(sub.get_name()),
                        "{sh} {p}: no {}",
                        sub.get_name()
                    );
                }
            }
        }
        assert!(script("tcsh", "storage-align").is_none());
        assert!(script("bash", "mdevctl").is_none());
    }
}
