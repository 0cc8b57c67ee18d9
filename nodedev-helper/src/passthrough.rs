//! `nodedev-helper passthrough`: give crypto domains to a KVM guest in one command, or take
//! them back.
//!
//! The six manual steps of doc/ap-bus.md ("The workflow this serves") — identify, take the
//! APQNs from the host, create the mediated
//! device, assign, attach, verify — plus persistence (`chzdev -t ap`, `start: auto`) become:
//!
//! 1. preflight, changing nothing: ids, card hwtype (vfio_ap needs CEX4 = hwtype 10 or newer),
//!    queues, vfio_ap loaded, APQNs not in another active or auto-start mdev, the UUID free,
//!    the guest present and without a vfio-ap hostdev (a guest can have only one);
//! 2. masks: clear the adapters in apmask and the domains in aqmask (active and persistent,
//!    under chzdev's lock, with `ap set`'s conflict checks) where the host still owns them;
//! 3. `mdevctl define` (so the callouts, ours or ap-check, validate the device), then
//!    `mdevctl start` — or, with `--via libvirt`, the same through libvirt's node device API
//!    (define, autostart, start; libvirt runs mdevctl); the resulting `matrix` is read back
//!    and compared;
//! 4. the `<hostdev … model='vfio-ap'>` XML is printed and, with `--domain`, added to the
//!    guest's persistent definition through the libvirt API.
//!
//! Each step is a function of its own (`give` calls them in order). Every step is reported
//! as it completes; when one fails, the steps already done are undone
//! in reverse order and reported too. `--remove UUID` detaches, stops, undefines, and gives
//! adapters and domains back to the host when no other mdev uses them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::apmask::{Apqn, Mask};
use crate::chzdev::{MaskSpec, Term};
use crate::inventory::{self, VFIO_AP_TYPE};
use crate::masks::{self, MaskState, Request};
use crate::mdev;
use crate::root::Root;
use crate::udev_rule;
use crate::vfio_ap::{self, Conflict};

#[derive(Debug, clap::Args)]
#[command(
    about = "Give crypto domains (APQNs) to a guest in one command, or take them back",
    long_about = "Takes the APQNs ADAPTER.DOMAIN from the host (active and persistent AP \
                  masks), defines and starts a vfio_ap-passthrough mediated device through \
                  mdevctl, prints its <hostdev> XML and, with --domain, adds it to the guest's \
                  persistent definition. The matrix is adapters x domains: every combination \
                  of the adapters and domains given must be listed. Each step is reported; a \
                  failure undoes the steps already done.\n\n\
                  Example: nodedev-helper passthrough 2.43 --domain guest1"
)]
pub struct Args {
    /// APQNs as ADAPTER.DOMAIN (decimal, or 0x hex), e.g. 2.43.
    #[arg(value_name = "ADAPTER.DOMAIN", required_unless_present = "remove")]
    apqns: Vec<String>,
    /// Extra control domain (repeatable); usage domains are control domains anyway.
    #[arg(long = "control-domain", value_name = "N")]
    control_domains: Vec<String>,
    /// UUID of the new mdev (default: a random one).
    #[arg(long, value_name = "UUID")]
    uuid: Option<String>,
    /// Start the mdev at boot (`start: auto`, the default).
    #[arg(long, conflicts_with = "manual")]
    autostart: bool,
    /// Start the mdev only on request (`start: manual`).
    #[arg(long)]
    manual: bool,
    /// Guest (libvirt domain name) whose persistent definition gets the hostdev.
    #[arg(long = "domain", value_name = "GUEST")]
    guest: Option<String>,
    /// libvirt connection URI for --domain and --via libvirt (default: libvirt's default,
    /// e.g. qemu:///system).
    #[arg(long, value_name = "URI")]
    connect: Option<String>,
    /// Who defines and starts the mdev: mdevctl directly, or libvirt's node device API
    /// (what `virsh nodedev-define`, `nodedev-autostart`, `nodedev-start` do; libvirt then
    /// runs mdevctl and knows the device at once).
    #[arg(long, value_enum, default_value_t = Via::Mdevctl, conflicts_with = "remove")]
    via: Via,
    /// Undo a passthrough: detach from --domain, stop, undefine, give APQNs back.
    #[arg(long, value_name = "UUID", conflicts_with_all = ["apqns", "uuid", "control_domains", "autostart", "manual"])]
    remove: Option<String>,
    /// Check and show the steps, change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// The mdevctl to run (default: $NODEDEV_HELPER_MDEVCTL, else `mdevctl` from PATH).
    #[arg(long, value_name = "PATH")]
    mdevctl: Option<PathBuf>,
}

/// How the mdev is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// `mdevctl define` and `mdevctl start`.
    Mdevctl,
    /// libvirt's node device API (define, autostart, start).
    Libvirt,
}

/// Parses `ADAPTER.DOMAIN` (base-0 ids as ap-check reads them, ≤ 255).
pub fn parse_apqn(s: &str) -> anyhow::Result<Apqn> {
    let (a, d) = s
        .split_once('.')
        .with_context(|| format!("'{s}' is not ADAPTER.DOMAIN (e.g. 2.43)"))?;
    let id = |v: &str, what: &str| {
        inventory::parse_id(v)
            .with_context(|| format!("'{s}': {what} '{v}' is not a number 0..255"))
    };
    Ok(Apqn::new(id(a, "adapter")?, id(d, "domain")?))
}

/// The `<hostdev>` element libvirt needs for a vfio-ap mdev.
pub fn hostdev_xml(uuid: &str) -> String {
    format!(
        "<hostdev mode='subsystem' type='mdev' model='vfio-ap'>\n  <source>\n    <address uuid='{uuid}'/>\n  </source>\n</hostdev>\n"
    )
}

/// A random (v4) UUID from the kernel.
fn new_uuid() -> anyhow::Result<String> {
    let p = Path::new("/proc/sys/kernel/random/uuid");
    Ok(std::fs::read_to_string(p)
        .with_context(|| format!("cannot read {}", p.display()))?
        .trim()
        .to_string())
}

/// What was done, so that it can be undone.
enum Done {
    Masks { state: MaskState },
    Defined { uuid: String },
    Started { uuid: String },
    Attached { guest: String, xml: String },
    NodedevDefined { name: String },
    NodedevStarted { name: String },
}

struct Ctx<'a> {
    root: &'a Root,
    mdevctl: &'a Path,
    connect: Option<&'a str>,
}

impl Ctx<'_> {
    /// Runs mdevctl with the host root (mdevctl ≥ 1.3 honours MDEVCTL_ENV_ROOT; the real
    /// host has `/`, where it is not needed).
    /// `stdin` is given as the device JSON (`--jsonfile /dev/stdin`, as libvirt does).
    fn mdevctl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        use std::io::Write;
        use std::process::Stdio;
        let mut c = Command::new(self.mdevctl);
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.root.base() != Path::new("/") {
            c.env(crate::root::MDEVCTL_ENV_ROOT, self.root.base());
        } else {
            // on the real host (or in a privileged run, which ignored the variable) mdevctl
            // must not act on a root the caller's environment names
            c.env_remove(crate::root::MDEVCTL_ENV_ROOT);
        }
        // mdevctl's error is relayed to the user; a Rust backtrace in it would bury it
        c.env("RUST_BACKTRACE", "0");
        let cannot = || format!("cannot run {}", self.mdevctl.display());
        let mut child = c.spawn().with_context(cannot)?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.unwrap_or_default().as_bytes())
                .with_context(cannot)?;
        }
        let out = child.wait_with_output().with_context(cannot)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!(
                "mdevctl {} failed ({}): {}",
                args.join(" "),
                out.status,
                err.trim_end()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn undo(&self, d: &Done) -> anyhow::Result<String> {
        match d {
            Done::Masks { state } => {
                restore_masks(self.root, state)?;
                Ok("AP masks restored".into())
            }
            Done::Defined { uuid } => {
                self.mdevctl(&["undefine", "--uuid", uuid], None)?;
                Ok(format!("mdev {uuid} undefined"))
            }
            Done::Started { uuid } => {
                self.mdevctl(&["stop", "--uuid", uuid], None)?;
                Ok(format!("mdev {uuid} stopped"))
            }
            Done::Attached { guest, xml } => {
                libvirt::detach(self.connect, guest, xml)?;
                Ok(format!("hostdev detached from {guest}"))
            }
            Done::NodedevDefined { name } => {
                libvirt::nodedev_undefine(self.connect, name)?;
                Ok(format!("node device {name} undefined"))
            }
            Done::NodedevStarted { name } => {
                libvirt::nodedev_destroy(self.connect, name)?;
                Ok(format!("node device {name} destroyed"))
            }
        }
    }
}

/// Puts the active masks and the rule back as they were (under the lock).
fn restore_masks(root: &Root, old: &MaskState) -> anyhow::Result<()> {
    let _g = crate::lock::Guard::take(&root.ap_lock(), crate::lock::DEFAULT_WAIT)?;
    let now = masks::read_state(root)?;
    let plan = masks::Plan {
        active: Some(masks::Change {
            before: now.active,
            after: old.active,
        }),
        persistent: Some((now.persistent, old.persistent)),
        ..masks::Plan::default()
    };
    masks::execute(root, &plan)?;
    Ok(())
}

pub fn run(root: &Root, args: &Args) -> anyhow::Result<i32> {
    let mdevctl = args
        .mdevctl
        .clone()
        .or_else(|| crate::root::env("NODEDEV_HELPER_MDEVCTL").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("mdevctl"));
    let ctx = Ctx {
        root,
        mdevctl: &mdevctl,
        connect: args.connect.as_deref(),
    };
    // one connection held for the whole command (see libvirt::open)
    let _libvirt = if args.guest.is_some() || args.via == Via::Libvirt {
        Some(libvirt::open(ctx.connect)?)
    } else {
        None
    };
    if let Some(uuid) = &args.remove {
        return remove(&ctx, uuid, args.guest.as_deref(), args.dry_run);
    }
    let mut done: Vec<Done> = Vec::new();
    match give(&ctx, args, &mut done) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("nodedev-helper: {e:#}");
            if !done.is_empty() {
                eprintln!("rolling back:");
            }
            let mut clean = true;
            for d in done.iter().rev() {
                match ctx.undo(d) {
                    Ok(msg) => eprintln!("  undone: {msg}"),
                    Err(e) => {
                        clean = false;
                        eprintln!("  FAILED to undo: {e:#}");
                    }
                }
            }
            if !clean {
                eprintln!("nodedev-helper: the host is left partly changed; see above");
            }
            Ok(1)
        }
    }
}

/// Conflicts, one per line.
fn lines(c: &[Conflict]) -> String {
    c.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn step(n: usize, msg: impl AsRef<str>) {
    println!("[{n}] {}", msg.as_ref());
}

/// What the preflight settled: the device to create and for whom.
struct Device {
    apqns: Vec<Apqn>,
    adapters: Mask,
    domains: Mask,
    control: Mask,
    uuid: String,
    autostart: bool,
    /// Other mdev configs (for the mask plan's conflict checks).
    defined: Vec<mdev::DefinedMdev>,
    /// The `<hostdev>` XML of the device.
    xml: String,
}

impl Device {
    fn list(&self) -> String {
        self.apqns
            .iter()
            .map(|q| q.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The steps, in order; each failure leaves `done` for [`run`] to roll back.
fn give(ctx: &Ctx, args: &Args, done: &mut Vec<Done>) -> anyhow::Result<i32> {
    let dev = preflight(ctx, args)?;
    step(
        1,
        format!(
            "checked: APQNs {} on vfio_ap-capable cards, free of other mdevs; mdev {} ({})",
            dev.list(),
            dev.uuid,
            if dev.autostart { "autostart" } else { "manual" }
        ),
    );
    if args.dry_run {
        dry_run(ctx, args, &dev)?;
        return Ok(0);
    }
    take_from_host(ctx.root, &dev, done)?;
    match args.via {
        Via::Mdevctl => create_with_mdevctl(ctx, &dev, done)?,
        Via::Libvirt => create_with_libvirt(ctx, &dev, done)?,
    }
    verify_active(ctx.root, &dev)?;
    attach(ctx, args, &dev, done)?;
    Ok(0)
}

/// Step 1, changing nothing: ids, the adapters x domains shape, card types and queues,
/// vfio_ap loaded, the UUID free, no conflict with active or auto-start mdevs, the guest.
fn preflight(ctx: &Ctx, args: &Args) -> anyhow::Result<Device> {
    let mut dev = device_asked(args)?;
    let root = ctx.root;
    if !root.matrix().is_dir() {
        bail!(
            "vfio_ap module is not loaded ({} does not exist): run modprobe vfio_ap",
            root.matrix().display()
        );
    }
    check_cards(root, &dev)?;
    dev.defined = check_conflicts(root, &dev)?;
    if let Some(g) = &args.guest {
        libvirt::check_guest(ctx.connect, g)?;
    }
    Ok(dev)
}

/// The device the arguments ask for: APQNs forming adapters x domains, control domains, the
/// UUID (given or new), the start policy. Reads nothing of the host.
fn device_asked(args: &Args) -> anyhow::Result<Device> {
    let apqns = args
        .apqns
        .iter()
        .map(|s| parse_apqn(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let adapters: Mask = apqns.iter().map(|q| q.adapter).collect();
    let domains: Mask = apqns.iter().map(|q| q.domain).collect();
    let missing: Vec<String> = Apqn::product(&adapters, &domains)
        .into_iter()
        .filter(|q| !apqns.contains(q))
        .map(|q| q.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "an mdev's matrix is adapters x domains: with adapters {} and domains {} it also holds {}; list them too",
            adapters.ranges(),
            domains.ranges(),
            missing.join(" ")
        );
    }
    let mut control = domains;
    for c in &args.control_domains {
        control.set(
            inventory::parse_id(c)
                .with_context(|| format!("--control-domain '{c}' is not a number 0..255"))?,
        );
    }
    let uuid = match &args.uuid {
        Some(u) => {
            if !inventory::is_uuid(u) {
                bail!("--uuid '{u}' is not a UUID (8-4-4-4-12 hex digits)");
            }
            u.to_ascii_lowercase()
        }
        None => new_uuid()?,
    };
    let xml = hostdev_xml(&uuid);
    Ok(Device {
        apqns,
        adapters,
        domains,
        control,
        uuid,
        autostart: !args.manual,
        defined: Vec::new(),
        xml,
    })
}

/// Every adapter is a card vfio_ap drives (CEX4 or newer) and every APQN a queue of it.
fn check_cards(root: &Root, dev: &Device) -> anyhow::Result<()> {
    let cards = inventory::cards(root)?;
    for a in dev.adapters.iter() {
        let Some(card) = cards.iter().find(|c| c.adapter == a) else {
            bail!("adapter {a} (card{a:02x}) does not exist on the AP bus");
        };
        if !vfio_ap::supports_hwtype(card.hwtype) {
            let hwtype = card.hwtype;
            bail!("{}", Conflict::UnsupportedCard { adapter: a, hwtype });
        }
        for d in dev.domains.iter() {
            if !card.queues.iter().any(|(qd, _)| *qd == d) {
                bail!(
                    "APQN {} (queue {}) does not exist on the AP bus",
                    Apqn::new(a, d),
                    Apqn::new(a, d).queue_name()
                );
            }
        }
    }
    Ok(())
}

/// The UUID is free and no active mdev holds an APQN, nor (for an auto-start device) another
/// auto-start config; sharing with manual configs is a warning. Returns the defined configs.
fn check_conflicts(root: &Root, dev: &Device) -> anyhow::Result<Vec<mdev::DefinedMdev>> {
    let (uuid, autostart) = (&dev.uuid, dev.autostart);
    let active = mdev::active(root)?;
    let (defined, bad) = mdev::defined(root)?;
    for w in &bad {
        eprintln!("{}", vfio_ap::warning(w));
    }
    if active.iter().any(|m| &m.uuid == uuid) || defined.iter().any(|m| &m.uuid == uuid) {
        bail!("mdev {uuid} already exists");
    }
    let mut problems = Vec::new();
    for q in &dev.apqns {
        for m in &active {
            if m.apqns().contains(q) {
                let by = m.uuid.clone();
                problems.push(Conflict::InUse { apqn: *q, by }.to_string());
            }
        }
        for d in &defined {
            if d.apqns().contains(q) {
                if autostart && d.autostart {
                    let by = d.uuid.clone();
                    problems.push(Conflict::DefinedForAutostart { apqn: *q, by }.to_string());
                } else {
                    eprintln!(
                        "{}",
                        vfio_ap::warning(format_args!(
                            "APQN {q} is also defined for {} mdev {}: only one of them can be active",
                            if d.autostart { "autostart" } else { "manual" },
                            d.uuid
                        ))
                    );
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(defined)
}

/// The mask change that gives the device's adapters and domains to vfio_ap, and which sides
/// (active, persistent) still keep any of its APQNs for the host.
struct MaskStep {
    req: Request,
    desc: String,
}

fn mask_step(root: &Root, dev: &Device) -> anyhow::Result<MaskStep> {
    let state = masks::read_state(root)?;
    let eff = vfio_ap::persistent_masks(root)?;
    let host_active = dev.apqns.iter().any(|q| state.active.keep(*q));
    let host_persistent = dev.apqns.iter().any(|q| eff.masks.keep(*q))
        || state.persistent.apmask.is_none()
        || state.persistent.aqmask.is_none();
    let clear = |m: &Mask| {
        MaskSpec::Relative(
            m.iter()
                .map(|b| Term {
                    sign: Some(false),
                    first: b,
                    last: b,
                })
                .collect(),
        )
    };
    let terms = |m: &Mask| {
        m.iter()
            .map(|b| format!("-{b}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    Ok(MaskStep {
        req: Request {
            apmask: Some(clear(&dev.adapters)),
            aqmask: Some(clear(&dev.domains)),
            active: host_active,
            persistent: host_persistent,
            ..Request::default()
        },
        desc: format!(
            "apmask={} aqmask={}",
            terms(&dev.adapters),
            terms(&dev.domains)
        ),
    })
}

/// `--dry-run`: the steps that would run, nothing changed.
fn dry_run(ctx: &Ctx, args: &Args, dev: &Device) -> anyhow::Result<()> {
    let m = mask_step(ctx.root, dev)?;
    let uuid = &dev.uuid;
    step(
        2,
        format!(
            "would set {} (active: {}, persistent: {})",
            m.desc, m.req.active, m.req.persistent
        ),
    );
    match args.via {
        Via::Mdevctl => {
            step(
                3,
                format!(
                    "would run: mdevctl define --uuid {uuid} --parent matrix --jsonfile <{}>",
                    config_json(&dev.apqns, dev.control, dev.autostart)
                ),
            );
            step(4, format!("would run: mdevctl start --uuid {uuid}"));
        }
        Via::Libvirt => {
            step(
                3,
                format!(
                    "would define through libvirt's node device API{}:\n{}",
                    if dev.autostart {
                        ", set it to autostart"
                    } else {
                        ""
                    },
                    nodedev_xml(dev)
                ),
            );
            step(4, format!("would start node device {}", nodedev_name(uuid)));
        }
    }
    match &args.guest {
        Some(g) => step(
            5,
            format!("would attach to the persistent definition of {g}:"),
        ),
        None => step(5, "hostdev XML:"),
    }
    print!("{}", dev.xml);
    println!("dry run: nothing changed");
    Ok(())
}

/// Step 2: clear the device's adapters and domains in the masks that still keep them for
/// the host (active and persistent), under the AP configuration lock.
fn take_from_host(root: &Root, dev: &Device, done: &mut Vec<Done>) -> anyhow::Result<()> {
    let m = mask_step(root, dev)?;
    let (host_active, host_persistent) = (m.req.active, m.req.persistent);
    if !(host_active || host_persistent) {
        step(2, "the host masks already leave the APQNs to vfio_ap");
        return Ok(());
    }
    let _g = crate::lock::Guard::take(&root.ap_lock(), crate::lock::DEFAULT_WAIT)?;
    // re-read under the lock: chzdev may have changed something meanwhile
    let state = masks::read_state(root)?;
    let plan = masks::plan(&m.req, &state, &mdev::active(root)?, &dev.defined);
    if !plan.conflicts.is_empty() {
        bail!("{}", lines(&plan.conflicts));
    }
    masks::execute(root, &plan)?;
    done.push(Done::Masks { state });
    step(
        2,
        format!(
            "host gave up the APQNs: {} ({})",
            m.desc,
            match (host_active, host_persistent) {
                (true, true) => "active and persistent",
                (true, false) => "active; persistent masks already free",
                _ => "persistent; active masks already free",
            }
        ),
    );
    Ok(())
}

/// Step 3 with mdevctl: `mdevctl define` (the callouts validate the device), `mdevctl start`.
fn create_with_mdevctl(ctx: &Ctx, dev: &Device, done: &mut Vec<Done>) -> anyhow::Result<()> {
    let uuid = &dev.uuid;
    let json = config_json(&dev.apqns, dev.control, dev.autostart);
    ctx.mdevctl(
        &[
            "define",
            "--uuid",
            uuid,
            "--parent",
            "matrix",
            "--jsonfile",
            "/dev/stdin",
        ],
        Some(&json),
    )?;
    done.push(Done::Defined { uuid: uuid.clone() });
    step(
        3,
        format!("mdevctl defined mdev {uuid} on parent matrix: {json}"),
    );
    ctx.mdevctl(&["start", "--uuid", uuid], None)?;
    done.push(Done::Started { uuid: uuid.clone() });
    Ok(())
}

/// Step 3 through libvirt's node device API (`virsh nodedev-define`, `nodedev-autostart`,
/// `nodedev-start`): libvirt runs mdevctl, which runs the callouts. libvirt 9.0 defines every
/// mdev with manual start, so autostart is a separate call (`mdevctl modify --auto`).
fn create_with_libvirt(ctx: &Ctx, dev: &Device, done: &mut Vec<Done>) -> anyhow::Result<()> {
    let xml = nodedev_xml(dev);
    let name = libvirt::nodedev_define(ctx.connect, &xml)?;
    done.push(Done::NodedevDefined { name: name.clone() });
    step(
        3,
        format!(
            "libvirt defined node device {name} (mdev {}) on parent ap_matrix",
            dev.uuid
        ),
    );
    if dev.autostart {
        libvirt::nodedev_autostart(ctx.connect, &name)?;
        step(3, format!("libvirt set node device {name} to autostart"));
    }
    libvirt::nodedev_start(ctx.connect, &name)?;
    done.push(Done::NodedevStarted { name });
    Ok(())
}

/// libvirt's name of a defined mdev on the vfio_ap parent.
fn nodedev_name(uuid: &str) -> String {
    format!("mdev_{}_matrix", uuid.replace('-', "_"))
}

/// The node device XML of the mdev (`virsh nodedev-define`), attributes in mdevctl's order.
fn nodedev_xml(dev: &Device) -> String {
    let mut attrs = String::new();
    let mut attr =
        |n: &str, v: u8| attrs.push_str(&format!("    <attr name='{n}' value='{v}'/>\n"));
    for a in dev.adapters.iter() {
        attr("assign_adapter", a);
    }
    for d in dev.domains.iter() {
        attr("assign_domain", d);
    }
    for c in dev.control.and_not(dev.domains).iter() {
        attr("assign_control_domain", c);
    }
    format!(
        "<device>\n  <parent>ap_matrix</parent>\n  <capability type='mdev'>\n    <type id='{VFIO_AP_TYPE}'/>\n    <uuid>{}</uuid>\n{attrs}  </capability>\n</device>\n",
        dev.uuid
    )
}

/// Step 4: the device is active and its matrix holds exactly the APQNs asked for.
fn verify_active(root: &Root, dev: &Device) -> anyhow::Result<()> {
    let uuid = &dev.uuid;
    let got = mdev::active(root)?
        .into_iter()
        .find(|m| &m.uuid == uuid)
        .with_context(|| {
            format!(
                "the mdev {uuid} was started but {} does not exist",
                root.matrix().join(uuid).display()
            )
        })?;
    let mut want = dev.apqns.clone();
    want.sort();
    let mut have = got.apqns();
    have.sort();
    if want != have {
        let show = |v: &[Apqn]| {
            v.iter()
                .map(|q| q.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        bail!(
            "mdev {uuid} is active but its matrix holds [{}] instead of [{}]",
            show(&have),
            show(&want)
        );
    }
    step(
        4,
        format!("mdev {uuid} is active; its matrix holds {}", dev.list()),
    );
    Ok(())
}

/// Step 5: the hostdev into the guest's persistent definition (`--domain`), or printed.
fn attach(ctx: &Ctx, args: &Args, dev: &Device, done: &mut Vec<Done>) -> anyhow::Result<()> {
    match &args.guest {
        Some(g) => {
            libvirt::attach(ctx.connect, g, &dev.xml)?;
            done.push(Done::Attached {
                guest: g.clone(),
                xml: dev.xml.clone(),
            });
            step(
                5,
                format!(
                    "attached to the persistent definition of guest {g} (effective at its next start):"
                ),
            );
        }
        None => step(
            5,
            "hostdev XML for the guest (virsh attach-device GUEST FILE --config):",
        ),
    }
    print!("{}", dev.xml);
    Ok(())
}

/// The device JSON for `mdevctl define --jsonfile`.
fn config_json(apqns: &[Apqn], control: Mask, autostart: bool) -> String {
    let adapters: Mask = apqns.iter().map(|q| q.adapter).collect();
    let domains: Mask = apqns.iter().map(|q| q.domain).collect();
    let mut attrs = Vec::new();
    for a in adapters.iter() {
        attrs.push(serde_json::json!({"assign_adapter": a.to_string()}));
    }
    for d in domains.iter() {
        attrs.push(serde_json::json!({"assign_domain": d.to_string()}));
    }
    for c in control.and_not(domains).iter() {
        attrs.push(serde_json::json!({"assign_control_domain": c.to_string()}));
    }
    serde_json::json!({
        "mdev_type": VFIO_AP_TYPE,
        "start": if autostart { "auto" } else { "manual" },
        "attrs": attrs,
    })
    .to_string()
}

fn remove(ctx: &Ctx, uuid: &str, guest: Option<&str>, dry_run: bool) -> anyhow::Result<i32> {
    let root = ctx.root;
    if !inventory::is_uuid(uuid) {
        bail!("--remove '{uuid}' is not a UUID");
    }
    let uuid = uuid.to_ascii_lowercase();
    let active = mdev::active(root)?;
    let (defined, _) = mdev::defined(root)?;
    let me_active = active.iter().find(|m| m.uuid == uuid);
    let me_defined = defined.iter().find(|m| m.uuid == uuid);
    if me_active.is_none() && me_defined.is_none() {
        bail!("mdev {uuid} is neither active nor defined");
    }
    let mut adapters = Mask::EMPTY;
    let mut domains = Mask::EMPTY;
    if let Some(m) = me_active {
        for q in &m.apqns() {
            adapters.set(q.adapter);
            domains.set(q.domain);
        }
    }
    if let Some(d) = me_defined {
        adapters = adapters.or(d.matrix.adapters);
        domains = domains.or(d.matrix.domains);
    }
    // ids some other device still uses stay with vfio_ap
    let (mut other_a, mut other_d) = (Mask::EMPTY, Mask::EMPTY);
    for m in active.iter().filter(|m| m.uuid != uuid) {
        for q in &m.apqns() {
            other_a.set(q.adapter);
            other_d.set(q.domain);
        }
    }
    for d in defined.iter().filter(|d| d.uuid != uuid) {
        other_a = other_a.or(d.matrix.adapters);
        other_d = other_d.or(d.matrix.domains);
    }
    let back_a = adapters.and_not(other_a);
    let back_d = domains.and_not(other_d);
    let xml = hostdev_xml(&uuid);
    let plus = |m: &Mask| {
        MaskSpec::Relative(
            m.iter()
                .map(|b| Term {
                    sign: Some(true),
                    first: b,
                    last: b,
                })
                .collect(),
        )
    };
    let terms = |m: &Mask| {
        m.iter()
            .map(|b| format!("+{b}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let desc = format!("apmask={} aqmask={}", terms(&back_a), terms(&back_d));
    if dry_run {
        let mut n = 1;
        if let Some(g) = guest {
            step(n, format!("would detach the hostdev from {g}"));
            n += 1;
        }
        if me_active.is_some() {
            step(n, format!("would run: mdevctl stop --uuid {uuid}"));
            n += 1;
        }
        if me_defined.is_some() {
            step(n, format!("would run: mdevctl undefine --uuid {uuid}"));
            n += 1;
        }
        step(n, format!("would give back to the host: {desc}"));
        println!("dry run: nothing changed");
        return Ok(0);
    }
    let mut n = 1;
    if let Some(g) = guest {
        libvirt::detach(ctx.connect, g, &xml)?;
        step(
            n,
            format!("detached mdev {uuid} from the persistent definition of {g}"),
        );
        n += 1;
    }
    if me_active.is_some() {
        ctx.mdevctl(&["stop", "--uuid", &uuid], None)?;
        step(n, format!("mdev {uuid} stopped"));
        n += 1;
    }
    if me_defined.is_some() {
        ctx.mdevctl(&["undefine", "--uuid", &uuid], None)?;
        step(n, format!("mdev {uuid} undefined"));
        n += 1;
    }
    if back_a.is_empty() && back_d.is_empty() {
        step(
            n,
            "every adapter and domain is still used by another mdev: masks unchanged",
        );
        return Ok(0);
    }
    let _g = crate::lock::Guard::take(&root.ap_lock(), crate::lock::DEFAULT_WAIT)?;
    let state = masks::read_state(root)?;
    let req = Request {
        apmask: (!back_a.is_empty()).then(|| plus(&back_a)),
        aqmask: (!back_d.is_empty()).then(|| plus(&back_d)),
        active: true,
        persistent: state.persistent != udev_rule::PersistentMasks::default(),
        ..Request::default()
    };
    let plan = masks::plan(&req, &state, &mdev::active(root)?, &mdev::defined(root)?.0);
    if !plan.conflicts.is_empty() {
        bail!(
            "cannot give the APQNs back to the host:\n{}",
            lines(&plan.conflicts)
        );
    }
    masks::execute(root, &plan)?;
    step(n, format!("host took back {desc}"));
    Ok(0)
}

/// The libvirt side: the guest's persistent definition, through the libvirt API.
mod libvirt {
    use anyhow::{Context, bail};
    use virt::connect::Connect;
    use virt::sys;

    /// Opens a connection. Callers keep one open for the whole command: it also keeps the
    /// state of the per-process test driver (`test:///default`) alive between steps.
    pub fn open(uri: Option<&str>) -> anyhow::Result<Connect> {
        // libvirt prints every error to stderr by default; ours are reported once, with
        // context, and an expected NoSupport (test driver) must not look like a failure.
        virt::error::clear_error_callback();
        Connect::open(uri).with_context(|| {
            format!(
                "cannot connect to libvirt ({})",
                uri.unwrap_or("default URI")
            )
        })
    }

    fn inactive_xml(c: &Connect, guest: &str) -> anyhow::Result<(virt::domain::Domain, String)> {
        let d = c
            .lookup_domain_by_name(guest)
            .with_context(|| format!("no guest named {guest}"))?;
        let xml = d
            .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .with_context(|| format!("cannot read the definition of {guest}"))?;
        Ok((d, xml))
    }

    /// The guest exists and has no vfio-ap hostdev yet (a guest can have only one).
    pub fn check_guest(uri: Option<&str>, guest: &str) -> anyhow::Result<()> {
        let c = open(uri)?;
        let (_, xml) = inactive_xml(&c, guest)?;
        if let Some(u) = vfio_ap_uuid(&xml) {
            bail!(
                "guest {guest} already has a vfio-ap hostdev (mdev {u}); a guest can have only one"
            );
        }
        Ok(())
    }

    /// Whether libvirt said the driver cannot do this (the test driver has no
    /// attach/detach; redefining the domain is the documented equivalent for its config).
    fn unsupported(e: &virt::error::Error) -> bool {
        e.code() == virt::error::ErrorNumber::NoSupport.into()
    }

    pub fn attach(uri: Option<&str>, guest: &str, hostdev: &str) -> anyhow::Result<()> {
        let c = open(uri)?;
        let (d, xml) = inactive_xml(&c, guest)?;
        if let Some(u) = vfio_ap_uuid(&xml) {
            bail!(
                "guest {guest} already has a vfio-ap hostdev (mdev {u}); a guest can have only one"
            );
        }
        match d.attach_device_flags(hostdev, sys::VIR_DOMAIN_AFFECT_CONFIG) {
            Ok(()) => {}
            Err(e) if unsupported(&e) => {
                let Some(at) = xml.rfind("</devices>") else {
                    bail!("the definition of {guest} has no <devices> element");
                };
                let new = format!("{}{}{}", &xml[..at], hostdev, &xml[at..]);
                c.define_domain_xml(&new)
                    .with_context(|| format!("cannot redefine {guest} with the hostdev"))?;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot attach the hostdev to {guest}"));
            }
        }
        let (_, after) = inactive_xml(&c, guest)?;
        if vfio_ap_uuid(&after).is_none() {
            bail!("libvirt accepted the hostdev but the definition of {guest} does not show it");
        }
        Ok(())
    }

    /// A node device by name.
    fn nodedev(c: &Connect, name: &str) -> anyhow::Result<virt::nodedev::NodeDevice> {
        c.lookup_node_device_by_name(name)
            .with_context(|| format!("libvirt has no node device {name}"))
    }

    /// `virsh nodedev-define`: returns the new device's name. (The virt crate has no safe
    /// wrapper for the define/create/autostart calls of libvirt ≥ 7.3; they are called here.)
    pub fn nodedev_define(uri: Option<&str>, xml: &str) -> anyhow::Result<String> {
        let c = open(uri)?;
        let cxml = std::ffi::CString::new(xml).context("node device XML contains NUL")?;
        // SAFETY: c is an open connection and cxml a NUL-terminated string, both alive for
        // the call; a non-null result is a new reference that NodeDevice takes over.
        let dev = unsafe {
            let p = sys::virNodeDeviceDefineXML(c.as_ptr(), cxml.as_ptr(), 0);
            if p.is_null() {
                return Err(virt::error::Error::last_error())
                    .context("libvirt refused to define the mdev");
            }
            virt::nodedev::NodeDevice::from_ptr(p)
        };
        dev.name().context("cannot read the new node device's name")
    }

    /// `virsh nodedev-autostart NAME`.
    pub fn nodedev_autostart(uri: Option<&str>, name: &str) -> anyhow::Result<()> {
        let c = open(uri)?;
        let d = nodedev(&c, name)?;
        // SAFETY: d holds a valid node device reference for the call.
        if unsafe { sys::virNodeDeviceSetAutostart(d.as_ptr(), 1) } < 0 {
            return Err(virt::error::Error::last_error())
                .with_context(|| format!("libvirt refused to set {name} to autostart"));
        }
        Ok(())
    }

    /// `virsh nodedev-start NAME`.
    pub fn nodedev_start(uri: Option<&str>, name: &str) -> anyhow::Result<()> {
        let c = open(uri)?;
        let d = nodedev(&c, name)?;
        // SAFETY: as above.
        if unsafe { sys::virNodeDeviceCreate(d.as_ptr(), 0) } < 0 {
            return Err(virt::error::Error::last_error())
                .with_context(|| format!("libvirt refused to start {name}"));
        }
        Ok(())
    }

    /// `virsh nodedev-destroy NAME`.
    pub fn nodedev_destroy(uri: Option<&str>, name: &str) -> anyhow::Result<()> {
        let c = open(uri)?;
        nodedev(&c, name)?
            .destroy()
            .with_context(|| format!("libvirt refused to stop {name}"))
    }

    /// `virsh nodedev-undefine NAME`.
    pub fn nodedev_undefine(uri: Option<&str>, name: &str) -> anyhow::Result<()> {
        let c = open(uri)?;
        let d = nodedev(&c, name)?;
        // SAFETY: as above.
        if unsafe { sys::virNodeDeviceUndefine(d.as_ptr(), 0) } < 0 {
            return Err(virt::error::Error::last_error())
                .with_context(|| format!("libvirt refused to undefine {name}"));
        }
        Ok(())
    }

    pub fn detach(uri: Option<&str>, guest: &str, hostdev: &str) -> anyhow::Result<()> {
        let c = open(uri)?;
        let (d, xml) = inactive_xml(&c, guest)?;
        match d.detach_device_flags(hostdev, sys::VIR_DOMAIN_AFFECT_CONFIG) {
            Ok(()) => Ok(()),
            Err(e) if unsupported(&e) => {
                let Some(new) = without_vfio_ap(&xml) else {
                    bail!("guest {guest} has no vfio-ap hostdev");
                };
                c.define_domain_xml(&new)
                    .with_context(|| format!("cannot redefine {guest} without the hostdev"))?;
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("cannot detach the hostdev from {guest}")),
        }
    }

    /// The domain XML without its vfio-ap `<hostdev>` element (None when it has none).
    pub fn without_vfio_ap(xml: &str) -> Option<String> {
        let mut from = 0;
        while let Some(i) = xml[from..].find("<hostdev") {
            let start = from + i;
            let end = start + xml[start..].find("</hostdev>")? + "</hostdev>".len();
            let el = &xml[start..end];
            if el.contains("model='vfio-ap'") || el.contains("model=\"vfio-ap\"") {
                // drop the line's indentation and newline too
                let line_start = xml[..start].rfind('\n').map_or(start, |n| n + 1);
                let cut_start = if xml[line_start..start].trim().is_empty() {
                    line_start
                } else {
                    start
                };
                let cut_end = if xml[end..].starts_with('\n') {
                    end + 1
                } else {
                    end
                };
                return Some(format!("{}{}", &xml[..cut_start], &xml[cut_end..]));
            }
            from = end;
        }
        None
    }

    /// The mdev UUID of the guest's vfio-ap hostdev, if it has one.
    pub fn vfio_ap_uuid(domain_xml: &str) -> Option<String> {
        use quick_xml::events::Event;
        let mut r = quick_xml::Reader::from_str(domain_xml);
        let mut in_vfio_ap = false;
        loop {
            match r.read_event() {
                Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                    let attr = |name: &[u8]| {
                        e.attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == name)
                            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                    };
                    if e.name().as_ref() == b"hostdev" {
                        in_vfio_ap = attr(b"model").as_deref() == Some("vfio-ap");
                    } else if in_vfio_ap && e.name().as_ref() == b"address" {
                        if let Some(u) = attr(b"uuid") {
                            return Some(u);
                        }
                    }
                }
                Ok(Event::End(e)) if e.name().as_ref() == b"hostdev" => in_vfio_ap = false,
                Ok(Event::Eof) | Err(_) => return None,
                _ => {}
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn finds_the_vfio_ap_hostdev() {
            let xml = "<domain><devices>\
                <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='x'/></source></hostdev>\
                <hostdev mode='subsystem' type='mdev' model='vfio-ap'><source><address uuid='6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10'/></source></hostdev>\
                </devices></domain>";
            assert_eq!(
                super::vfio_ap_uuid(xml).as_deref(),
                Some("6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10")
            );
            assert_eq!(super::vfio_ap_uuid("<domain><devices/></domain>"), None);
            let without = super::without_vfio_ap(xml).unwrap();
            assert!(without.contains("vfio-pci"), "{without}");
            assert_eq!(super::vfio_ap_uuid(&without), None);
            assert_eq!(super::without_vfio_ap(&without), None);
        }

        /// The real libvirt library with its built-in test driver (per-process state).
        #[test]
        fn attach_and_detach_on_the_test_driver() {
            let uri = Some("test:///default");
            let _keep = super::open(uri).unwrap();
            let hd = crate::passthrough::hostdev_xml("6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10");
            super::check_guest(uri, "test").unwrap();
            super::attach(uri, "test", &hd).unwrap();
            let e = super::check_guest(uri, "test").unwrap_err();
            assert!(
                e.to_string().contains(
                    "already has a vfio-ap hostdev (mdev 6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10)"
                ),
                "{e}"
            );
            let e = super::attach(uri, "test", &hd).unwrap_err();
            assert!(e.to_string().contains("a guest can have only one"), "{e}");
            super::detach(uri, "test", &hd).unwrap();
            super::check_guest(uri, "test").unwrap();
            let e = super::check_guest(uri, "nosuchguest").unwrap_err();
            assert_eq!(e.to_string(), "no guest named nosuchguest");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apqn_arguments() {
        assert_eq!(parse_apqn("2.43").unwrap(), Apqn::new(2, 43));
        assert_eq!(parse_apqn("0x2.0x2b").unwrap(), Apqn::new(2, 43));
        assert_eq!(
            parse_apqn("2.256").unwrap_err().to_string(),
            "'2.256': domain '256' is not a number 0..255"
        );
        assert!(parse_apqn("2").is_err());
    }

    #[test]
    fn config_json_is_what_mdevctl_expects() {
        let j = config_json(&[Apqn::new(2, 43)], Mask::EMPTY.with(43).with(1), true);
        assert_eq!(
            j,
            r#"{"attrs":[{"assign_adapter":"2"},{"assign_domain":"43"},{"assign_control_domain":"1"}],"mdev_type":"vfio_ap-passthrough","start":"auto"}"#
        );
    }

    #[test]
    fn hostdev() {
        assert_eq!(
            hostdev_xml("u"),
            "<hostdev mode='subsystem' type='mdev' model='vfio-ap'>\n  <source>\n    <address uuid='u'/>\n  </source>\n</hostdev>\n"
        );
    }
}
