//! Crash-safe replacement of a file, and the cross-process lock on a tenant directory.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, Mode, OFlags, linkat, openat};

/// Mode of a `security.yml` keyward creates: readable by ops and git.
const NEW_FILE_MODE: u32 = 0o644;

/// Writes `text` to an unnamed file in `path`'s directory (`O_TMPFILE`, 0600), fsyncs it,
/// gives it the old file's permissions, names it, renames it over `path` and fsyncs the
/// directory. A crash at any point leaves the old file or the new one, never a torn one.
///
/// The file has no name until it is complete, and has one only between `linkat` and the
/// rename, so a killed writer leaves nothing behind to clean up, and keyward never deletes
/// a file by its name: a file ops keep (or git tracks) beside `security.yml` is never
/// mistaken for one of keyward's. Where the filesystem has no `O_TMPFILE` the file is named
/// from the start, and a writer killed mid-write leaves it for ops to remove.
///
/// `still_current` runs just before the rename; when it says no (someone outside keyward,
/// such as `git checkout`, replaced the file meanwhile) nothing is renamed and the result
/// is `Ok(false)`.
pub fn replace_file(
    path: &Path,
    text: &str,
    still_current: impl FnOnce() -> io::Result<bool>,
) -> io::Result<bool> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("file has no parent directory"))?;
    let mode = match fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => NEW_FILE_MODE,
        Err(e) => return Err(e),
    };
    let Some(mut file) = unnamed_file_in(dir)? else {
        return replace_via_named_file(path, dir, text, mode, still_current);
    };
    file.write_all(text.as_bytes())?;
    file.set_permissions(Permissions::from_mode(mode))?;
    file.sync_all()?;
    if !still_current()? {
        return Ok(false);
    }
    let name = dir.join(format!(".security.yml.{}.tmp", rand::random::<u64>()));
    let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    linkat(CWD, fd_path.as_str(), CWD, &name, AtFlags::SYMLINK_FOLLOW)?;
    if let Err(e) = fs::rename(&name, path) {
        let _ = fs::remove_file(&name);
        return Err(e);
    }
    File::open(dir)?.sync_all()?;
    Ok(true)
}

/// An unnamed file in `dir`; None where the filesystem (or `/proc`) cannot make one.
fn unnamed_file_in(dir: &Path) -> io::Result<Option<File>> {
    if !Path::new("/proc/self/fd").is_dir() {
        return Ok(None);
    }
    let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
    match openat(CWD, dir, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(e)
            if e == rustix::io::Errno::OPNOTSUPP
                || e == rustix::io::Errno::ISDIR
                || e == rustix::io::Errno::INVAL =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// `replace_file` with a temp file named from the start.
fn replace_via_named_file(
    path: &Path,
    dir: &Path,
    text: &str,
    mode: u32,
    still_current: impl FnOnce() -> io::Result<bool>,
) -> io::Result<bool> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".security.yml.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    if !still_current()? {
        return Ok(false);
    }
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()?;
    Ok(true)
}

/// What identifies one version of a file on disk: a rename-save or `git checkout` makes a
/// new inode, an in-place write changes the size or the modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }

    /// The stamp of the file at `path` now; `None` when there is none.
    pub fn at(path: &Path) -> io::Result<Option<Self>> {
        match fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(Self::of(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An exclusive `flock` on a directory, released on drop.
pub struct DirLock(File);

impl DirLock {
    pub fn exclusive(dir: &Path) -> io::Result<Self> {
        let f = File::open(dir)?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Self(f))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.0, rustix::fs::FlockOperation::Unlock);
    }
}
