//! The simulator mounted as a real filesystem over FUSE, so unmodified programs (mdevctl, a
//! shell's `echo -2 > apmask`, our binaries) see a live sysfs.
//!
//! The FUSE root is the sysfs root: mount it on `DIR/sys` and `DIR` can hold plain `etc/`,
//! `run/`, `usr/` for `MDEVCTL_ENV_ROOT=DIR`, or be bind-mounted over `/sys` in a private mount
//! namespace. The kernel walks paths itself (symlinks included); we answer per-component
//! lookups from the same tree as [`Sim::read`]. Every open file gets `direct_io`, so each
//! `write(2)` reaches the store with its own result (EBUSY, EINVAL...) and reads never come
//! from a stale page cache; attributes and entries get a zero TTL because the tree changes
//! under writes. A read-open snapshots the value at the first read, like sysfs' seq_file.
//! uses the pure-Rust mount of `fuser` (no libfuse): as root it calls mount(2) directly.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyWrite, Request,
};

use crate::model::{Ent, FileId, Sim, State};

const TTL: Duration = Duration::ZERO;

/// Inode numbers for symlink-free paths (`""` is the root, inode 1). Paths are never
/// forgotten: the tree is small and a path keeps its inode across mdev remove/create.
#[derive(Default)]
struct Inodes {
    by_path: HashMap<String, u64>,
    paths: Vec<String>,
}

impl Inodes {
    fn ino(&mut self, path: &str) -> u64 {
        if let Some(&i) = self.by_path.get(path) {
            return i;
        }
        self.paths.push(path.to_string());
        let i = self.paths.len() as u64; // root "" is pushed first and gets 1
        self.by_path.insert(path.to_string(), i);
        i
    }

    fn path(&self, ino: u64) -> Option<String> {
        self.paths.get((ino as usize).checked_sub(1)?).cloned()
    }
}

enum Handle {
    File {
        id: FileId,
        snapshot: Option<Vec<u8>>,
    },
    Dir(Vec<(u64, FileType, String)>),
}

/// The FUSE side of a [`Sim`].
pub struct SysFs {
    sim: Arc<Sim>,
    udev_events: bool,
    inodes: Mutex<Inodes>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
}

fn comps(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn entry_of(st: &State, path: &str) -> Option<Ent> {
    let c = comps(path);
    match c.split_last() {
        None => Some(Ent::Dir),
        Some((last, parent)) => st
            .children(parent)?
            .into_iter()
            .find(|(n, _)| n == last)
            .map(|(_, e)| e),
    }
}

fn file_type(e: &Ent) -> FileType {
    match e {
        Ent::Dir => FileType::Directory,
        Ent::File(..) => FileType::RegularFile,
        Ent::Link(_) => FileType::Symlink,
    }
}

fn attr(ino: u64, e: &Ent) -> FileAttr {
    let st = crate::model::stat_of(e);
    let size = match e {
        Ent::Dir => 0,
        // sysfs reports one page for every attribute
        Ent::File(..) => 4096,
        Ent::Link(t) => t.len() as u64,
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: file_type(e),
        perm: st.mode,
        nlink: if matches!(e, Ent::Dir) { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn err(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl SysFs {
    /// Serve `sim`.
    pub fn new(sim: Arc<Sim>) -> SysFs {
        SysFs::with_options(sim, MountOptions::default())
    }

    /// Serve `sim` with `opts`.
    pub fn with_options(sim: Arc<Sim>, opts: MountOptions) -> SysFs {
        let mut inodes = Inodes::default();
        inodes.ino("");
        SysFs {
            sim,
            udev_events: opts.udev_events,
            inodes: Mutex::new(inodes),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn path(&self, ino: INodeNo) -> Option<String> {
        self.inodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .path(ino.0)
    }

    fn ino(&self, path: &str) -> u64 {
        self.inodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ino(path)
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Handle>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, h);
        fh
    }

    fn lookup_path(&self, ino: INodeNo) -> Result<(String, Ent), Errno> {
        let p = self.path(ino).ok_or(Errno::ENOENT)?;
        let e = entry_of(&self.sim.lock(), &p).ok_or(Errno::ENOENT)?;
        Ok((p, e))
    }
}

impl Filesystem for SysFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(pp) = self.path(parent) else {
            return reply.error(Errno::ENOENT);
        };
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        let child = join(&pp, name);
        let e = {
            let st = self.sim.lock();
            match st.children(&comps(&pp)) {
                None => return reply.error(Errno::ENOTDIR),
                Some(kids) => kids.into_iter().find(|(n, _)| n == name).map(|(_, e)| e),
            }
        };
        match e {
            Some(e) => reply.entry(&TTL, &attr(self.ino(&child), &e), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.lookup_path(ino) {
            Ok((_, e)) => reply.attr(&TTL, &attr(ino.0, &e)),
            Err(e) => reply.error(e),
        }
    }

    // `echo x > attr` opens with O_TRUNC, which FUSE turns into a size change: accept it and
    // change nothing, as sysfs does.
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.lookup_path(ino) {
            Ok((_, e)) => reply.attr(&TTL, &attr(ino.0, &e)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.lookup_path(ino) {
            Ok((_, Ent::Link(t))) => reply.data(t.as_bytes()),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (id, mode) = match self.lookup_path(ino) {
            Ok((_, Ent::File(id, mode))) => (id, mode),
            Ok((_, Ent::Dir)) => return reply.error(Errno::EISDIR),
            Ok(_) => return reply.error(Errno::ELOOP),
            Err(e) => return reply.error(e),
        };
        // kernfs refuses an access mode the attribute has no method for, even to root
        let acc = flags.0 & libc::O_ACCMODE;
        let wants_read = acc == libc::O_RDONLY || acc == libc::O_RDWR;
        let wants_write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        if (wants_read && mode & 0o444 == 0) || (wants_write && mode & 0o222 == 0) {
            return reply.error(Errno::EACCES);
        }
        let fh = self.new_handle(Handle::File { id, snapshot: None });
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let mut handles = self.handles();
        let Some(Handle::File { id, snapshot }) = handles.get_mut(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        if snapshot.is_none() || offset == 0 {
            match self.sim.lock().show(id) {
                Ok(v) => *snapshot = Some(v),
                Err(e) => return reply.error(err(&e)),
            }
        }
        let data = snapshot.as_deref().unwrap_or_default();
        let start = (offset as usize).min(data.len());
        let end = (start + size as usize).min(data.len());
        reply.data(&data[start..end]);
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let id = match self.handles().get(&fh.0) {
            Some(Handle::File { id, .. }) => id.clone(),
            _ => return reply.error(Errno::EBADF),
        };
        // sysfs ignores the file position: every write(2) is one store of its bytes
        let (result, events) = {
            let mut st = self.sim.lock();
            let r = st.store(&id, data);
            (r, st.take_uevents())
        };
        // the events reach the caller's namespace before its write(2) returns, as udev's
        // would reach a listener long before the listener's next step
        if self.udev_events && !events.is_empty() {
            if let Err(e) = crate::netlink::send_in_netns_of(req.pid(), &events) {
                eprintln!(
                    "ap-sim: cannot send {} udev event(s) to the namespace of pid {}: {e}",
                    events.len(),
                    req.pid()
                );
            }
        }
        match result {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let p = match self.lookup_path(ino) {
            Ok((p, Ent::Dir)) => p,
            Ok(_) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(e),
        };
        let kids = match self.sim.lock().children(&comps(&p)) {
            Some(k) => k,
            None => return reply.error(Errno::ENOTDIR),
        };
        let parent = match p.rfind('/') {
            Some(i) => self.ino(&p[..i]),
            None => 1,
        };
        let mut list = vec![
            (ino.0, FileType::Directory, ".".to_string()),
            (parent, FileType::Directory, "..".to_string()),
        ];
        for (name, e) in kids {
            list.push((self.ino(&join(&p, &name)), file_type(&e), name));
        }
        let fh = self.new_handle(Handle::Dir(list));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let handles = self.handles();
        let Some(Handle::Dir(list)) = handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
        reply.ok();
    }

    // sysfs has no file creation (vfs_create: EACCES) and no mknod/mkdir/unlink (EPERM)
    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EACCES);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }
}

/// Mount options shared by [`Mounted`] and the `ap-sim mount` binary.
pub fn config() -> fuser::Config {
    let mut c = fuser::Config::default();
    c.mount_options = vec![
        fuser::MountOption::FSName("ap-sim".to_string()),
        fuser::MountOption::Subtype("ap-sim".to_string()),
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoExec,
    ];
    // programs running as other users (e.g. qemu's) may look at sysfs too
    c.acl = fuser::SessionACL::All;
    c
}

/// What a mount serves beyond the sysfs tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Send udev's netlink events (group 2, libudev's format) for every device event a
    /// write causes, in the writer's network namespace, before the write returns. Off by
    /// default: listeners in the namespace (a udev monitor, libvirtd) would see them.
    pub udev_events: bool,
}

/// Why a mount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Creating the mount point.
    #[error("cannot create mount point {path}: {source}")]
    MountPoint {
        /// the directory
        path: PathBuf,
        /// cause
        source: io::Error,
    },
    /// mount(2) / the FUSE session.
    #[error("cannot mount the AP simulator on {path}: {source} (needs root and /dev/fuse)")]
    Mount {
        /// the directory
        path: PathBuf,
        /// cause
        source: io::Error,
    },
}

/// A simulator mounted in a background thread; unmounted when dropped.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let root = tempfile::tempdir()?;
/// let m = ap_sim::Mounted::new(ap_sim::HostConfig::example(), root.path())?;
/// std::fs::write(root.path().join("sys/bus/ap/apmask"), "-2")?;
/// assert!(!m.sim().apmask().get(2));
/// # Ok(()) }
/// ```
pub struct Mounted {
    sim: Arc<Sim>,
    sys: PathBuf,
    dev: u64,
    session: Option<fuser::BackgroundSession>,
}

impl Mounted {
    /// Build the host and mount its sysfs on `root/sys` (created if missing). `root` stays a
    /// plain directory for `etc/`, `run/`, `usr/`.
    pub fn new(cfg: crate::HostConfig, root: &Path) -> Result<Mounted, Box<dyn std::error::Error>> {
        let sim = Arc::new(Sim::new(&cfg)?);
        Ok(Mounted::with_sim(sim, root)?)
    }

    /// Mount an existing (shared) simulator on `root/sys`.
    pub fn with_sim(sim: Arc<Sim>, root: &Path) -> Result<Mounted, MountError> {
        Mounted::with_options(sim, root, MountOptions::default())
    }

    /// Mount an existing (shared) simulator on `root/sys` with `opts` (udev events).
    pub fn with_options(
        sim: Arc<Sim>,
        root: &Path,
        opts: MountOptions,
    ) -> Result<Mounted, MountError> {
        let sys = root.join("sys");
        std::fs::create_dir_all(&sys).map_err(|source| MountError::MountPoint {
            path: sys.clone(),
            source,
        })?;
        let mount_err = |source| MountError::Mount {
            path: sys.clone(),
            source,
        };
        let session = fuser::spawn_mount(SysFs::with_options(sim.clone(), opts), &sys, &config())
            .map_err(mount_err)?;
        let mut m = Mounted {
            sim,
            sys: sys.clone(),
            dev: 0,
            session: Some(session),
        };
        // the FUSE connection number (fusectl) is the minor of the mount's st_dev
        m.dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&sys).map_err(mount_err)?);
        Ok(m)
    }

    /// The simulator behind the mount (typed view, `set_guest`, `set_vfio_ap_loaded`...).
    pub fn sim(&self) -> &Arc<Sim> {
        &self.sim
    }

    /// The mount point (`root/sys`).
    pub fn sys(&self) -> &Path {
        &self.sys
    }

    /// Whether the FUSE session still runs (false once someone unmounted it).
    pub fn is_serving(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Unmount now and report the error, instead of on drop.
    pub fn unmount(mut self) -> io::Result<()> {
        self.shutdown()
    }

    /// Unmount and stop the session without ever hanging: a mount namespace created while we
    /// were mounted keeps a copy of the mount, which keeps the FUSE connection (and our
    /// reader thread) alive after our unmount; then the connection is aborted through fusectl,
    /// which turns those copies into ENOTCONN instead of a stale live filesystem.
    fn shutdown(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(session.umount_and_join());
        });
        let wait = Duration::from_secs(3);
        match rx.recv_timeout(wait) {
            Ok(Ok(())) => return Ok(()),
            // busy (a process has a file open or its cwd inside): detach it lazily
            Ok(Err(_)) => lazy_umount(&self.sys),
            Err(_) => {}
        }
        abort_connection(self.dev)?;
        match rx.recv_timeout(wait) {
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Ok(()),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("FUSE session of {} did not stop", self.sys.display()),
            )),
        }
    }
}

fn lazy_umount(path: &Path) {
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: c is a valid NUL-terminated path; umount2 has no other inputs.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Write to `/sys/fs/fuse/connections/<minor>/abort`, mounting fusectl on a private temporary
/// directory when it is not mounted there.
fn abort_connection(dev: u64) -> io::Result<()> {
    let minor = libc::minor(dev);
    let std_path = PathBuf::from(format!("/sys/fs/fuse/connections/{minor}/abort"));
    if std_path.exists() {
        return std::fs::write(&std_path, "1");
    }
    let dir = std::env::temp_dir().join(format!("ap-sim-fusectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
    // SAFETY: all pointers are valid NUL-terminated strings; fusectl takes no data.
    let rc = unsafe {
        libc::mount(
            c"fusectl".as_ptr(),
            c.as_ptr(),
            c"fusectl".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let result = if rc != 0 {
        Err(io::Error::last_os_error())
    } else {
        let r = std::fs::write(dir.join(format!("{minor}/abort")), "1");
        // SAFETY: as above.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
        r
    };
    std::fs::remove_dir(&dir).ok();
    result
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("ap-sim: unmounting {}: {e}", self.sys.display());
        }
    }
}
