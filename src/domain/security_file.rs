use std::fmt;

use super::{KeyEntry, KeyName};

/// The meaning of one tenant's `security.yml`, validated (the store parses it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityFile {
    pub keys: Vec<KeyEntry>,
}

impl SecurityFile {
    pub fn find(&self, name: &KeyName) -> Option<(usize, &KeyEntry)> {
        self.keys.iter().enumerate().find(|(_, k)| &k.name == name)
    }
}

/// Why a file is invalid: a position when one is known (1-based) and a kind in keyward's
/// own words. It never quotes the file, which can hold anything.
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
