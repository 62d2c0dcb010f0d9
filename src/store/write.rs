//! The write engine: one change to one key, made surgically in the file's text, checked to
//! mean exactly that change, and written atomically under the tenant's locks. The parse
//! cache lives here because writes fill it: the next write to a file keyward just wrote
//! parses none of it again.

use std::io;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::check;
use super::edit::{Edited, Parsed, apply, other_top_level};
use super::read::OnDisk;
use super::yaml_edit::{self, Layout};
use super::{FILE_NAME, Store, StoreError, Version, atomic};
use crate::domain::{KeyEntry, KeyName, SecurityFile, TenantId};

/// A change to one key, decided by the caller against the file as it is on disk.
#[derive(Debug)]
pub enum Change {
    Create(KeyEntry),
    Replace(KeyEntry),
    Delete(KeyName),
}

/// How often a write starts again because the file was replaced from outside keyward while
/// it was being written, before it gives up with `StoreError::Busy`.
const WRITE_ATTEMPTS: usize = 5;

/// At most this many tenants' parsed files are kept (the ones written last).
const PARSED_CACHE: usize = 64;

/// A write that reached the disk.
#[derive(Debug)]
pub struct Written {
    pub version: Version,
    /// False when the change left the file byte for byte as it was (nothing was written).
    pub changed: bool,
    /// The created or replaced entry as stored (None for a delete).
    pub entry: Option<KeyEntry>,
}

/// An edit made in memory: the new text, what it means, and the created or replaced entry.
#[derive(Debug)]
pub struct Edit {
    pub text: String,
    pub file: Arc<SecurityFile>,
    pub entry: Option<KeyEntry>,
}

impl Store {
    /// Applies one change decided by `decide` against the current file on disk.
    ///
    /// `decide` may run more than once: when the file is replaced from outside keyward
    /// (`git checkout`, an editor) during the write, nothing is renamed and the write starts
    /// again from the new file, so the outside edit is kept.
    ///
    /// Blocking: call it from a blocking thread.
    pub fn write<E, F>(&self, tenant: &TenantId, mut decide: F) -> Result<Written, E>
    where
        E: From<StoreError>,
        F: FnMut(&SecurityFile) -> Result<Change, E>,
    {
        if self.read_only {
            return Err(StoreError::ReadOnly.into());
        }
        let lock = self.tenant_lock(tenant);
        let _guard = lock.lock();
        let dir = self.tenant_dir(tenant);
        // Another keyward process on the same directory takes the same lock.
        let _flock = atomic::DirLock::exclusive(&dir).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::TenantNotFound
            } else {
                StoreError::Io(e)
            }
        })?;
        let path = dir.join(FILE_NAME);
        for _ in 0..WRITE_ATTEMPTS {
            let (text, stamp, digest) = match self.read_settled(tenant)? {
                OnDisk::Gone => return Err(StoreError::TenantNotFound.into()),
                OnDisk::File { symlink: true, .. } => return Err(StoreError::ReadOnly.into()),
                OnDisk::File {
                    text,
                    stamp,
                    digest,
                    ..
                } => (text, stamp, digest),
            };
            let Edit {
                text: new_text,
                file,
                entry,
            } = self.edit_parsed(tenant, &text, digest, &mut decide)?;
            let changed = new_text != text;
            let replaced =
                !changed
                    || atomic::replace_file(&path, &new_text, || {
                        Ok(atomic::Stamp::at(&path)? == stamp)
                    })
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly,
                        _ => StoreError::Io(e),
                    })?;
            if !replaced {
                tracing::info!(%tenant, "security.yml changed on disk during a write; starting again");
                continue;
            }
            let digest = Sha256::digest(new_text.as_bytes()).into();
            self.record_valid(tenant, digest, false);
            let generation = self.next_generation();
            return Ok(Written {
                version: Version {
                    file,
                    digest,
                    generation,
                },
                changed,
                entry,
            });
        }
        Err(StoreError::Busy.into())
    }

    /// One change decided by `decide` against `text` (a tenant file's content as git has
    /// it), made in memory only: git mode writes the result as a commit, not to the disk.
    pub fn edit<E, F>(&self, tenant: &TenantId, text: &str, mut decide: F) -> Result<Edit, E>
    where
        E: From<StoreError>,
        F: FnMut(&SecurityFile) -> Result<Change, E>,
    {
        let digest = Sha256::digest(text.as_bytes()).into();
        self.edit_parsed(tenant, text, digest, &mut decide)
    }

    /// Decides, edits surgically and checks the meaning of the edit; remembers what the new
    /// text means, so that the next edit or load of it parses nothing.
    fn edit_parsed<E, F>(
        &self,
        tenant: &TenantId,
        text: &str,
        digest: [u8; 32],
        decide: &mut F,
    ) -> Result<Edit, E>
    where
        E: From<StoreError>,
        F: FnMut(&SecurityFile) -> Result<Change, E>,
    {
        let cached = self.parsed.lock().get(tenant).cloned();
        let current = match cached {
            Some(p) if p.digest == digest => p,
            _ => Arc::new(Parsed {
                digest,
                file: Arc::new(SecurityFile::parse(text).map_err(StoreError::Invalid)?),
                // A comparison that cannot be made is not a pass.
                others: other_top_level(text).ok_or_else(|| {
                    StoreError::Edit(yaml_edit::EditError::Unsupported(
                        "its other top-level values cannot be read as plain YAML values \
                         (an alias bomb?)"
                            .into(),
                    ))
                })?,
                layout: None,
            }),
        };
        let change = decide(&current.file)?;
        let parsed_now;
        let layout = match &current.layout {
            Some(layout) => layout,
            None => {
                parsed_now = Layout::of(text).map_err(StoreError::Edit)?;
                &parsed_now
            }
        };
        let edited = apply(text, layout, &current.file, change)?;
        let others = check::meaning(text, &current, layout, &edited)?;
        let layout = check::next_layout(layout, &edited);
        let Edited {
            text: new_text,
            expected,
            touched,
            ..
        } = edited;
        let entry = touched.and_then(|i| expected.keys.get(i).cloned());
        let file = Arc::new(expected);
        let new_digest: [u8; 32] = Sha256::digest(new_text.as_bytes()).into();
        let mut cache = self.parsed.lock();
        if cache.len() >= PARSED_CACHE && !cache.contains_key(tenant) {
            cache.clear();
        }
        cache.insert(
            tenant.clone(),
            Arc::new(Parsed {
                digest: new_digest,
                file: file.clone(),
                others,
                layout,
            }),
        );
        Ok(Edit {
            text: new_text,
            file,
            entry,
        })
    }
}

/// The store's safety nets, which no HTTP request can reach: they guard against a bug in the
/// editor and against a file that never stops changing.
#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::domain::KeyHash;
    use crate::store::Loaded;

    const FILE: &str = "\
apiKeys:
  - name: a   # kept
    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
  - name: b
    hash: sha256:2222222222222222222222222222222222222222222222222222222222222222
users: [alice]
";

    fn entry(name: &str, digit: char) -> KeyEntry {
        KeyEntry {
            name: KeyName::parse(name).unwrap(),
            hash: KeyHash::parse(&digit.to_string().repeat(64)).unwrap(),
            hint: None,
            enabled: true,
            permissions: Default::default(),
            description: None,
            created_at: None,
            created_by: None,
            rotated_at: None,
            expires_at: None,
            previous_hashes: Vec::new(),
        }
    }

    fn store_with(text: &str) -> (tempfile::TempDir, Store, TenantId) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("acme")).unwrap();
        fs::write(dir.path().join("acme").join(FILE_NAME), text).unwrap();
        let store = Store::new(dir.path().to_path_buf(), false);
        (dir, store, TenantId::parse("acme").unwrap())
    }

    fn parsed(text: &str) -> (Parsed, Layout) {
        let parsed = Parsed {
            digest: [0; 32],
            file: Arc::new(SecurityFile::parse(text).unwrap()),
            others: other_top_level(text).unwrap(),
            layout: None,
        };
        (parsed, Layout::of(text).unwrap())
    }

    #[test]
    fn an_edit_that_changes_more_than_intended_is_refused() {
        let (before, layout) = parsed(FILE);
        let edited = apply(FILE, &layout, &before.file, Change::Create(entry("c", '3'))).unwrap();
        assert!(check::meaning(FILE, &before, &layout, &edited).is_ok());

        // The same edit, had the editor also touched another key or another top-level value.
        let other_key = edited.text.replace("name: b", "name: bb");
        let other_value = edited.text.replace("[alice]", "[alice, mallory]");
        for wrong in [other_key, other_value] {
            let wrong = Edited {
                text: wrong,
                ..apply(FILE, &layout, &before.file, Change::Create(entry("c", '3'))).unwrap()
            };
            assert!(matches!(
                check::meaning(FILE, &before, &layout, &wrong),
                Err(StoreError::EditMismatch)
            ));
        }
    }

    #[test]
    fn a_file_that_keeps_changing_during_a_write_gives_busy_and_keeps_the_outside_edit() {
        let (dir, store, acme) = store_with(FILE);
        let path = dir.path().join("acme").join(FILE_NAME);
        let mut round = 0;

        let result = store.write(&acme, |_| -> Result<Change, StoreError> {
            // Someone outside keyward replaces the file while keyward decides and writes.
            round += 1;
            fs::write(&path, format!("{FILE}# outside edit {round}\n")).unwrap();
            Ok(Change::Create(entry("c", '3')))
        });

        assert!(matches!(result, Err(StoreError::Busy)), "{result:?}");
        assert_eq!(round, WRITE_ATTEMPTS);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with(&format!("# outside edit {WRITE_ATTEMPTS}\n")),
            "{text}"
        );
        assert!(!text.contains("name: c"));
    }

    #[test]
    fn versions_are_ordered_by_the_tenant_lock() {
        let (_dir, store, acme) = store_with(FILE);
        let Loaded::Valid(first) = store.load(&acme).unwrap() else {
            panic!("the file loads");
        };
        let written = store
            .write(&acme, |_| -> Result<Change, StoreError> {
                Ok(Change::Delete(KeyName::parse("b").unwrap()))
            })
            .unwrap();
        assert!(written.version.generation > first.generation);
        assert!(
            matches!(store.load(&acme).unwrap(), Loaded::Unchanged),
            "keyward's own write is not parsed again"
        );
    }
}
