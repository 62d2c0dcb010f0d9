//! Crash-safe replacement of a file, and the cross-process lock on a tenant directory.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Mode of a `security.yml` keyward creates: readable by ops and git.
const NEW_FILE_MODE: u32 = 0o644;

/// Writes `text` to a temp file beside `path` (created 0600), fsyncs it, gives it the old
/// file's permissions, renames it over `path` and fsyncs the directory. A crash at any
/// point leaves the old file or the new one, never a torn one.
pub fn replace_file(path: &Path, text: &str) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("file has no parent directory"))?;
    let mode = match fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => NEW_FILE_MODE,
        Err(e) => return Err(e),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".security.yml.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
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
