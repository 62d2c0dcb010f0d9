//! Reading `security.yml`: the one loader used by the server, the watcher and `keyward check`.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

use super::yaml_edit;
use crate::domain::{KeyEntry, KeyHash, KeyName};

/// Files larger than this are refused rather than parsed (10,000 keys take about 3 MB).
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;

/// The meaning of one tenant's `security.yml`, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityFile {
    pub keys: Vec<KeyEntry>,
}

/// Why a file is invalid, with a position when one is known (1-based).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileProblem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{l}:{c}: {}", self.message),
            (Some(l), None) => write!(f, "{l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(rename = "apiKeys", default, deserialize_with = "null_as_empty")]
    api_keys: Vec<KeyEntry>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<KeyEntry>, D::Error> {
    Ok(Option::<Vec<KeyEntry>>::deserialize(d)?.unwrap_or_default())
}

impl SecurityFile {
    /// Parses and validates a whole file. Other top-level keys are allowed and ignored.
    pub fn parse(text: &str) -> Result<Self, FileProblem> {
        if text.len() > MAX_FILE_BYTES {
            return Err(FileProblem {
                line: None,
                column: None,
                message: format!("file is larger than {MAX_FILE_BYTES} bytes"),
            });
        }
        let raw: Option<RawFile> = serde_yaml::from_str(text).map_err(|e| {
            let loc = e.location();
            FileProblem {
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: clean_serde_message(&e.to_string()),
            }
        })?;
        let file = SecurityFile {
            keys: raw.map(|r| r.api_keys).unwrap_or_default(),
        };
        file.check_unique(text)?;
        Ok(file)
    }

    fn check_unique(&self, text: &str) -> Result<(), FileProblem> {
        let mut names: HashMap<&KeyName, usize> = HashMap::new();
        let mut hashes: HashMap<&KeyHash, usize> = HashMap::new();
        for (i, key) in self.keys.iter().enumerate() {
            if let Some(first) = names.insert(&key.name, i) {
                return Err(at_item(
                    text,
                    i,
                    format!(
                        "duplicate key name {:?} (first used by entry {})",
                        key.name.as_str(),
                        first + 1
                    ),
                ));
            }
            let all = std::iter::once(&key.hash).chain(key.previous_hashes.iter().map(|p| &p.hash));
            for h in all {
                if let Some(first) = hashes.insert(h, i) {
                    return Err(at_item(
                        text,
                        i,
                        format!(
                            "duplicate hash in key {:?} (also used by entry {})",
                            key.name.as_str(),
                            first + 1
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn find(&self, name: &KeyName) -> Option<(usize, &KeyEntry)> {
        self.keys.iter().enumerate().find(|(_, k)| &k.name == name)
    }
}

/// Points an error at the `-` of the `index`th entry when the editor can find it.
fn at_item(text: &str, index: usize, message: String) -> FileProblem {
    let pos = yaml_edit::item_positions(text)
        .ok()
        .and_then(|p| p.into_iter().nth(index));
    FileProblem {
        line: pos.as_ref().map(|p| p.line),
        column: pos.as_ref().map(|p| p.column),
        message,
    }
}

/// serde_yaml appends " at line X column Y" to messages; we report the position apart.
fn clean_serde_message(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
