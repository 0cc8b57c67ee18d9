//! `storage-align`: plan and create right-aligned partitions for libvirt disk pools.
//!
//! Thin edge over the library: parses the command line, dispatches to the engine
//! ([`storage_align::placement`], [`storage_align::volume`]) and prints its report; an error
//! is printed once, with its chain, prefixed by the program name.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Parser;
use serde_json::json;
use storage_align::cli::{Cli, Cmd};
use storage_align::placement::{self, Description};
use storage_align::report;
use storage_align::root::Root;
use storage_align::volume::{self, VolCreate};

fn run(cli: Cli) -> Result<()> {
    let root = Root::resolve(cli.root());
    match cli.cmd {
        Cmd::Plan {
            device,
            common,
            label,
            cylinder_size,
            geometry,
            free,
        } => {
            let described = label.is_some()
                || cylinder_size.is_some()
                || geometry.is_some()
                || !free.is_empty();
            let (p, extra) = match (device, label) {
                (Some(_), _) if described => bail!(
                    "with DEVICE, the label, geometry, sector size and free extents are read from the disk; drop --label/--cylinder-size/--geometry/--free"
                ),
                (Some(device), _) => {
                    let (_, p) = placement::on_disk(&root, &device, &common.options())?;
                    (p, json!({"device": device}))
                }
                (None, None) => bail!("--label is required without DEVICE"),
                (None, Some(label)) => {
                    let d = Description {
                        label,
                        cylinder_size,
                        geometry,
                        free,
                    };
                    (
                        placement::described(&root, &d, &common.options())?,
                        json!({}),
                    )
                }
            };
            emit(
                common.json,
                report::plan_json(&p, extra),
                report::plan_text(&p),
            );
        }
        Cmd::Create {
            device,
            common,
            dry_run,
        } => {
            let (disk, p) = placement::on_disk(&root, &device, &common.options())?;
            if dry_run {
                let cmd = placement::mkpart_command(&device, &disk, &p);
                let text = format!("{}\ndry run, would run: {cmd}", report::plan_text(&p));
                let extra = json!({"device": device, "dry_run": true, "command": cmd});
                emit(common.json, report::plan_json(&p, extra), text);
                return Ok(());
            }
            let part = placement::create(&device, &disk, &p)?;
            let mut extra = report::created_json(&part);
            extra["device"] = json!(device);
            let text = format!(
                "{}\ncreated partition {} ({}-{}) on {} and verified it in the table",
                report::plan_text(&p),
                part.number,
                part.start,
                part.end,
                device.display()
            );
            emit(common.json, report::plan_json(&p, extra), text);
        }
        Cmd::VolCreate {
            connect,
            pool,
            name,
            common,
            dry_run,
        } => {
            let req = VolCreate {
                uri: &connect,
                pool: &pool,
                name: name.as_deref(),
                dry_run,
            };
            let r = volume::vol_create(&root, &req, &common.options())?;
            for w in &r.warnings {
                eprintln!("storage-align: warning: {w}");
            }
            emit(common.json, r.json(), r.text());
        }
    }
    Ok(())
}

fn emit(json: bool, value: serde_json::Value, text: String) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage-align: {e:#}");
            ExitCode::FAILURE
        }
    }
}
