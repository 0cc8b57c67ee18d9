//! `vhk-completions SHELL PROGRAM`: print the completion script of PROGRAM for SHELL (bash,
//! zsh, fish) on stdout. `vhk-completions --list` prints the programs. Run by
//! `make install-completions` (mk/packaging.mk); see the library for why it exists.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--list"] => {
            println!("{}", vhk_completions::PROGRAMS.join("\n"));
            ExitCode::SUCCESS
        }
        [shell, program] => {
            match vhk_completions::write(shell, program, &mut std::io::stdout().lock()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => {
                    eprintln!(
                        "vhk-completions: no completions for shell {shell:?} and program {program:?} (shells: bash zsh fish; programs: {})",
                        vhk_completions::PROGRAMS.join(" ")
                    );
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("vhk-completions: cannot write the script: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: vhk-completions SHELL PROGRAM | --list");
            ExitCode::from(2)
        }
    }
}
