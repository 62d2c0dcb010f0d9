use sha2::{Digest, Sha256};

use crate::domain::KeyEntry;
use crate::store::render;

/// A strong ETag: 128 bits of the SHA-256 of the entry's YAML exactly as keyward writes it,
/// so it changes when (and only when) what is stored for the key changes.
pub fn etag(entry: &KeyEntry) -> String {
    let digest = Sha256::digest(render::entry_yaml(entry).as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}
