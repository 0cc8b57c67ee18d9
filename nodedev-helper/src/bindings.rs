//! Waiting for the AP bus to bind every queue (`nodedev-helper ap wait-bindings`): the
//! kernel's `bindings` attribute, read once or polled, and woken by its udev `change` event
//! with `BINDINGS=complete` on the real host.

use std::time::{Duration, Instant};

use crate::root::Root;
use crate::sysfs;

/// What `/sys/bus/ap/bindings` says: `"<bound>/<total>"`, with ` (complete)` appended once
/// every queue is bound (kernel `ap_bus.c`, `bindings_show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bindings {
    pub bound: u32,
    pub total: u32,
    pub complete: bool,
}

/// Parses the `bindings` attribute; `None` when it is not in the kernel's format (a wrong
/// file, a truncated read), which the caller reports instead of waiting on it forever.
pub fn parse_bindings(text: &str) -> Option<Bindings> {
    let t = text.trim_end_matches('\n');
    let (counts, complete) = match t.strip_suffix(" (complete)") {
        Some(c) => (c, true),
        None => (t, false),
    };
    let (b, n) = counts.split_once('/')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(b) || !digits(n) {
        return None;
    }
    Some(Bindings {
        bound: b.parse().ok()?,
        total: n.parse().ok()?,
        complete,
    })
}

/// `bindings` reads `"<bound>/<total> (complete)"` once every queue is bound.
pub fn bindings_complete(text: &str) -> bool {
    parse_bindings(text).is_some_and(|b| b.complete)
}

/// Exit status of `wait-bindings` when `--timeout` ran out (1 is an error such as a missing or
/// malformed `bindings` file, 2 is wrong usage): boot scripts can tell "no AP bus" from "slow".
pub const EXIT_TIMED_OUT: i32 = 3;

/// How `wait_for_bindings` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Complete; the attribute's last content.
    Complete(String),
    /// Not complete when the deadline passed; the attribute's last content.
    TimedOut(String),
}

/// Errors while waiting: the file is unreadable or not in the kernel's format.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    File(#[from] sysfs::FileError),
    #[error("{}: not an AP bindings value: {:?} (expected \"<bound>/<total>[ (complete)]\")", path.display(), text)]
    Malformed {
        path: std::path::PathBuf,
        text: String,
    },
}

/// Reads `path` once into `last`: true when complete, false while still binding.
fn check_bindings(path: &std::path::Path, last: &mut String) -> Result<bool, WaitError> {
    let text = sysfs::read(path)?;
    let parsed = parse_bindings(&text).ok_or_else(|| WaitError::Malformed {
        path: path.to_path_buf(),
        text: text.clone(),
    })?;
    *last = text.trim_end().to_string();
    Ok(parsed.complete)
}

/// One round of a wait: reads `path`; the outcome when complete or past `deadline`, else how
/// long to wait before the next round (at most `step`).
fn round(
    path: &std::path::Path,
    last: &mut String,
    deadline: Instant,
    step: Duration,
) -> Result<Result<WaitOutcome, Duration>, WaitError> {
    if check_bindings(path, last)? {
        return Ok(Ok(WaitOutcome::Complete(std::mem::take(last))));
    }
    let now = Instant::now();
    if now >= deadline {
        return Ok(Ok(WaitOutcome::TimedOut(std::mem::take(last))));
    }
    Ok(Err((deadline - now).min(step)))
}

/// Without a uevent source the attribute is read every 100 ms until complete or `deadline`.
pub fn poll_bindings(path: &std::path::Path, deadline: Instant) -> Result<WaitOutcome, WaitError> {
    let mut last = String::new();
    loop {
        match round(path, &mut last, deadline, Duration::from_millis(100))? {
            Ok(outcome) => return Ok(outcome),
            Err(wait) => std::thread::sleep(wait),
        }
    }
}

/// True for the uevent the kernel sends when every AP queue is bound:
/// `change` on `/devices/ap`, subsystem `ap`, `BINDINGS=complete`.
pub fn is_bindings_complete_event(
    action: &str,
    subsystem: Option<&str>,
    bindings: Option<&str>,
) -> bool {
    action == "change" && subsystem == Some("ap") && bindings == Some("complete")
}

/// Waits on a udev monitor that is already subscribed to subsystem `ap` (subscribing before
/// the first read of `path` is what makes this race-free: a completion between the read and
/// the wait is still queued on the socket). The file stays the source of truth: an event only
/// wakes us to re-read it, and it is re-read every second anyway, so a missing udevd or an
/// overflowed socket costs at most a second, never the whole timeout.
pub fn wait_with_monitor(
    socket: &udev::MonitorSocket,
    path: &std::path::Path,
    deadline: Instant,
) -> Result<WaitOutcome, WaitError> {
    use std::os::fd::AsRawFd;
    let mut last = String::new();
    loop {
        let wait = match round(path, &mut last, deadline, Duration::from_secs(1))? {
            Ok(outcome) => return Ok(outcome),
            Err(wait) => wait,
        };
        let mut pfd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up so a sub-millisecond remainder does not spin with timeout 0.
        let ms = wait.as_millis().saturating_add(1).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call; the socket outlives it.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        let broken = if r < 0 {
            let e = std::io::Error::last_os_error();
            (e.kind() != std::io::ErrorKind::Interrupted).then(|| e.to_string())
        } else if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            Some(format!("poll revents {:#x}", pfd.revents))
        } else {
            None
        };
        if let Some(why) = broken {
            // The monitor broke: poll the file for the rest of the time rather than spin.
            eprintln!(
                "nodedev-helper: udev monitor failed ({why}); polling {}",
                path.display()
            );
            return poll_bindings(path, deadline);
        }
        // Drain what arrived; the loop re-reads the file either way, the event only says
        // there is no point in sleeping.
        for ev in socket.iter() {
            let subsystem = ev.subsystem().and_then(|s| s.to_str());
            let bindings = ev.property_value("BINDINGS").and_then(|s| s.to_str());
            if is_bindings_complete_event(&ev.event_type().to_string(), subsystem, bindings) {
                break;
            }
        }
    }
}

/// Subscribes to udev events of subsystem `ap`; `None` (with the reason) when udev cannot
/// give us a monitor, e.g. no netlink in this sandbox.
fn ap_monitor() -> Result<udev::MonitorSocket, std::io::Error> {
    udev::MonitorBuilder::new()?.match_subsystem("ap")?.listen()
}

/// The whole wait: udev monitor on the real root, polling otherwise.
pub fn wait_for_bindings(root: &Root, timeout: Duration) -> Result<WaitOutcome, WaitError> {
    let path = root.ap_bus().join("bindings");
    let deadline = Instant::now() + timeout;
    // Under --root there is no kernel behind the tree, so no uevent can announce it.
    if root.base() != std::path::Path::new("/") {
        return poll_bindings(&path, deadline);
    }
    match ap_monitor() {
        Ok(socket) => wait_with_monitor(&socket, &path, deadline),
        Err(e) => {
            eprintln!(
                "nodedev-helper: no udev monitor ({e}); polling {} every 100 ms",
                path.display()
            );
            poll_bindings(&path, deadline)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_text() {
        assert!(bindings_complete("4/4 (complete)\n"));
        assert!(!bindings_complete("3/4\n"));
        assert_eq!(
            parse_bindings("3/4\n"),
            Some(Bindings {
                bound: 3,
                total: 4,
                complete: false
            })
        );
        assert_eq!(
            parse_bindings("96/96 (complete)\n"),
            Some(Bindings {
                bound: 96,
                total: 96,
                complete: true
            })
        );
        for bad in [
            "",
            "\n",
            "complete",
            "3/",
            "/4",
            "-1/4",
            "3/4 (done)",
            "3 / 4",
            "0x3/4",
        ] {
            assert_eq!(parse_bindings(bad), None, "{bad:?}");
            assert!(!bindings_complete(bad), "{bad:?}");
        }
    }

    #[test]
    fn bindings_event_filter() {
        assert!(is_bindings_complete_event(
            "change",
            Some("ap"),
            Some("complete")
        ));
        assert!(!is_bindings_complete_event(
            "add",
            Some("ap"),
            Some("complete")
        ));
        assert!(!is_bindings_complete_event("change", Some("ap"), None));
        assert!(!is_bindings_complete_event(
            "change",
            Some("net"),
            Some("complete")
        ));
    }

    /// A bindings file in a temp dir, replaced atomically (sysfs reads are atomic too; a
    /// truncate-then-write could be read empty and be reported as malformed, rightly).
    fn bindings_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bindings");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    fn flip_later(path: &std::path::Path, after: Duration) -> std::thread::JoinHandle<()> {
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, "4/4 (complete)\n").unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        })
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn polling_returns_once_another_thread_completes_the_bindings() {
        let (_d, p) = bindings_file("1/4\n");
        let t = flip_later(&p, Duration::from_millis(300));
        let r = poll_bindings(&p, far()).unwrap();
        t.join().unwrap();
        assert_eq!(r, WaitOutcome::Complete("4/4 (complete)".into()));
    }

    #[test]
    fn polling_times_out_with_the_last_content() {
        let (_d, p) = bindings_file("3/4\n");
        let r = poll_bindings(&p, Instant::now() + Duration::from_millis(250)).unwrap();
        assert_eq!(r, WaitOutcome::TimedOut("3/4".into()));
    }

    #[test]
    fn malformed_or_missing_bindings_are_errors_naming_the_file() {
        let (d, p) = bindings_file("garbage\n");
        let e = poll_bindings(&p, far()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: not an AP bindings value: \"garbage\\n\" (expected \"<bound>/<total>[ (complete)]\")",
                p.display()
            )
        );
        let missing = d.path().join("nope");
        let e = poll_bindings(&missing, far()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read {}:", missing.display())),
            "{e}"
        );
    }

    #[test]
    fn wait_for_bindings_under_a_root_polls_the_trees_file() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        std::fs::create_dir_all(root.ap_bus()).unwrap();
        let p = root.ap_bus().join("bindings");
        std::fs::write(&p, "0/2\n").unwrap();
        let t = flip_later(&p, Duration::from_millis(200));
        let r = wait_for_bindings(&root, Duration::from_secs(30)).unwrap();
        t.join().unwrap();
        assert_eq!(r, WaitOutcome::Complete("4/4 (complete)".into()));
    }

    /// The monitor path with a real udev monitor socket (netlink, subsystem `ap`). No AP bus
    /// exists off s390x, so no `ap` uevent can arrive here: this proves the subscribe-then-read
    /// loop, its wait on the socket and its periodic re-read, not the event wake-up itself.
    fn real_monitor() -> udev::MonitorSocket {
        ap_monitor().unwrap_or_else(|e| panic!("cannot open a udev netlink monitor: {e}"))
    }

    #[test]
    fn monitor_path_returns_at_once_when_already_complete() {
        let (_d, p) = bindings_file("4/4 (complete)\n");
        let s = real_monitor();
        let r = wait_with_monitor(&s, &p, far()).unwrap();
        assert_eq!(r, WaitOutcome::Complete("4/4 (complete)".into()));
    }

    #[test]
    fn monitor_path_notices_completion_without_an_event() {
        let (_d, p) = bindings_file("2/4\n");
        let s = real_monitor();
        let t = flip_later(&p, Duration::from_millis(300));
        let r = wait_with_monitor(&s, &p, far()).unwrap();
        t.join().unwrap();
        assert_eq!(r, WaitOutcome::Complete("4/4 (complete)".into()));
    }

    #[test]
    fn monitor_path_times_out_with_the_last_content() {
        let (_d, p) = bindings_file("2/4\n");
        let s = real_monitor();
        let r = wait_with_monitor(&s, &p, Instant::now() + Duration::from_millis(300)).unwrap();
        assert_eq!(r, WaitOutcome::TimedOut("2/4".into()));
        std::fs::write(&p, "2/four\n").unwrap();
        let e = wait_with_monitor(&s, &p, far()).unwrap_err();
        assert!(e.to_string().contains("not an AP bindings value"), "{e}");
    }
}
