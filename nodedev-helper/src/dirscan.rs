//! One directory, scanned through one file descriptor: list, stat and read its entries with
//! `openat`/`fstatat` relative to that descriptor.
//!
//! The callout looks at every file of `/etc/mdevctl.d/matrix` on each `pre define`; resolving
//! the full path of each of 1,000 configs again and again was a large part of its time, and the
//! directory's own identity ([`FileKey`]) tells [`crate::autostart_index`] whether any entry was
//! added, removed or renamed since it last looked.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Which version of a file (or directory) this is: a rename-over gives a new inode, any write
/// a new ctime, so equal keys mean equal contents unless the file changed within one tick of
/// the file system's clock (callers treat recent keys as unknown, see `RACY_NS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileKey {
    fn of(st: &libc::stat) -> FileKey {
        // the stat field types differ between targets (s390x, x86_64): widen explicitly
        #[allow(clippy::unnecessary_cast)]
        FileKey {
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime as i64 * 1_000_000_000 + st.st_ctime_nsec as i64,
        }
    }

    /// The later of the two change times.
    pub fn changed_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn stat_zeroed() -> libc::stat {
    // SAFETY: `stat` is plain old data; all-zero is a valid value
    unsafe { std::mem::zeroed() }
}

impl Dir {
    /// Opens `path`; `Ok(None)` when it does not exist.
    pub fn open(path: &Path) -> io::Result<Option<Dir>> {
        let c = cstr(path.as_os_str())?;
        // SAFETY: valid NUL-terminated path; the returned fd is owned below
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(Dir {
            // SAFETY: fd was just opened and is owned by nobody else
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's own key: changes whenever an entry is added, removed or renamed.
    pub fn key(&self) -> io::Result<FileKey> {
        let mut st = stat_zeroed();
        // SAFETY: fd is open, st is a valid out pointer
        if unsafe { libc::fstat(self.fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(FileKey::of(&st))
    }

    /// The key of entry `name` (following symlinks, as reading it would); `None` if absent.
    pub fn stat(&self, name: &str) -> io::Result<Option<FileKey>> {
        // called 1,000 times per callout run: the C string lives on the stack
        let mut buf = [0u8; 64];
        let c = match name.len() < buf.len() && !name.as_bytes().contains(&0) {
            true => {
                buf[..name.len()].copy_from_slice(name.as_bytes());
                CStr::from_bytes_until_nul(&buf).map_err(|_| io::ErrorKind::InvalidInput)?
            }
            false => &cstr(OsStr::new(name))?,
        };
        let mut st = stat_zeroed();
        // SAFETY: fd is open, c is NUL-terminated, st is a valid out pointer
        if unsafe { libc::fstatat(self.fd.as_raw_fd(), c.as_ptr(), &mut st, 0) } != 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(FileKey::of(&st)))
    }

    /// Every entry's name except `.` and `..`, in directory order.
    pub fn names(&self) -> io::Result<Vec<String>> {
        // fdopendir takes ownership of its fd: give it a duplicate
        // SAFETY: fd is open; the duplicate is handed to fdopendir or closed
        let dup = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: dup is a directory fd we own
        let dirp = unsafe { libc::fdopendir(dup) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so dup is still ours to close
            unsafe { libc::close(dup) };
            return Err(e);
        }
        // the duplicate shares the file offset with `fd`: start from the beginning
        // SAFETY: dirp is a valid DIR*
        unsafe { libc::rewinddir(dirp) };
        let mut out = Vec::new();
        let result = loop {
            // readdir returns NULL with errno unchanged at the end, errno set on error
            // SAFETY: errno location is thread-local
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: dirp is valid until closedir below
            let ent = unsafe { libc::readdir64(dirp) };
            if ent.is_null() {
                let errno = io::Error::last_os_error();
                break match errno.raw_os_error() {
                    Some(0) | None => Ok(()),
                    _ => Err(errno),
                };
            }
            // SAFETY: d_name is NUL-terminated within the entry
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            let b = name.to_bytes();
            if b == b"." || b == b".." {
                continue;
            }
            if let Ok(s) = std::str::from_utf8(b) {
                out.push(s.to_string());
            }
        };
        // SAFETY: dirp came from fdopendir and is closed once
        unsafe { libc::closedir(dirp) };
        result.map(|()| out)
    }

    /// Reads entry `name` whole, with the key of exactly the version read (fstat of the open
    /// file, so a rename between stat and read cannot pair old key and new contents).
    /// `None` if absent; at most `cap` bytes (more is an `InvalidData` error); opened without
    /// blocking, and anything but a regular file is an `InvalidInput` error.
    pub fn read_keyed(&self, name: &str, cap: usize) -> io::Result<Option<(FileKey, Vec<u8>)>> {
        let c = cstr(OsStr::new(name))?;
        // SAFETY: fd is open, c is NUL-terminated
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                // non-blocking: a FIFO planted as a config must not hang the callout
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: fd was just opened and is owned here
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut st = stat_zeroed();
        // SAFETY: file is open, st is a valid out pointer
        if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file; refusing to read it",
            ));
        }
        let key = FileKey::of(&st);
        let mut buf = vec![0u8; (key.size as usize).clamp(64, cap) + 1];
        let mut len = 0;
        loop {
            if len == buf.len() {
                if buf.len() > cap {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("larger than {cap} bytes"),
                    ));
                }
                buf.resize((buf.len() * 2).min(cap + 1), 0);
            }
            // SAFETY: the range [len, buf.len()) is writable memory of buf
            let n = unsafe {
                libc::read(
                    file.as_raw_fd(),
                    buf[len..].as_mut_ptr().cast(),
                    buf.len() - len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                break;
            }
            len += n as usize;
        }
        if len > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {cap} bytes"),
            ));
        }
        buf.truncate(len);
        Ok(Some((key, buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn lists_stats_and_reads_relative_to_the_directory() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("a"), b"hello").unwrap();
        fs::write(t.path().join("b"), vec![b'x'; 10_000]).unwrap();
        let d = Dir::open(t.path()).unwrap().unwrap();
        let mut names = d.names().unwrap();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        // a second listing starts from the beginning again
        assert_eq!(d.names().unwrap().len(), 2);
        let k = d.stat("a").unwrap().unwrap();
        assert_eq!(k.size, 5);
        let (k2, bytes) = d.read_keyed("a", 1 << 20).unwrap().unwrap();
        assert_eq!((k2, bytes.as_slice()), (k, &b"hello"[..]));
        assert_eq!(d.read_keyed("b", 1 << 20).unwrap().unwrap().1.len(), 10_000);
        assert!(d.read_keyed("b", 100).is_err(), "over the cap");
        assert_eq!(d.stat("missing").unwrap(), None);
        assert!(d.read_keyed("missing", 10).unwrap().is_none());
        assert!(Dir::open(&t.path().join("nope")).unwrap().is_none());
    }

    #[test]
    fn keys_change_with_rename_and_with_writes() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("a"), b"1").unwrap();
        let d = Dir::open(t.path()).unwrap().unwrap();
        let (dk, ak) = (d.key().unwrap(), d.stat("a").unwrap().unwrap());
        fs::write(t.path().join(".tmp"), b"2").unwrap();
        fs::rename(t.path().join(".tmp"), t.path().join("a")).unwrap();
        let ak2 = d.stat("a").unwrap().unwrap();
        assert_ne!(ak.ino, ak2.ino, "rename-over is a new inode");
        assert_ne!(dk, d.key().unwrap(), "a rename changes the directory");
    }
}
