//! Parsing `security.yml` into its meaning: the one loader used by the server, the watcher and
//! `keyward check`.
//!
//! A problem is reported by position and kind only. The file can hold anything (a pasted
//! secret, a line of another tool's config), and problems reach logs, the status endpoint
//! and CI output, so no message made here quotes the file. serde_yaml's messages do quote
//! values, so only their shape is read: the path (keyward's own field names) and the kind.
//! The position is then moved to the offending value with the editor's locator, since
//! serde_yaml puts a value refused by a domain type at the start of its whole entry.

mod problem;

use std::collections::HashMap;
use std::iter;

use serde::{Deserialize, Deserializer};

use super::yaml_edit;
use crate::domain::{DomainError, FileProblem, KeyEntry, KeyHash, KeyName, SecurityFile};
use problem::{FieldPath, Kind, from_serde, problem};
use yaml_edit::Step;

/// Files larger than this are refused rather than parsed (10,000 keys take about 3 MB).
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Deserialize)]
struct RawFile {
    #[serde(rename = "apiKeys", default, deserialize_with = "null_as_empty")]
    api_keys: Vec<KeyEntry>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<KeyEntry>, D::Error> {
    Ok(Option::<Vec<KeyEntry>>::deserialize(d)?.unwrap_or_default())
}

/// The loader: what a file means lives in `domain`, how to read it here.
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
        // serde passes a domain type's refusal on as text: its kind is watched for instead.
        let (raw, refused) = DomainError::watch(|| serde_yaml::from_str::<Option<RawFile>>(text));
        let raw = raw.map_err(|e| from_serde(text, &e, refused))?;
        let file = SecurityFile {
            keys: raw.map(|r| r.api_keys).unwrap_or_default(),
        };
        check_unique(&file, text)?;
        Ok(file)
    }
}

/// Names and hashes (previous hashes included) are unique within a file.
fn check_unique(file: &SecurityFile, text: &str) -> Result<(), FileProblem> {
    let mut names: HashMap<&KeyName, usize> = HashMap::new();
    let mut hashes: HashMap<&KeyHash, usize> = HashMap::new();
    for (i, key) in file.keys.iter().enumerate() {
        if let Some(first) = names.insert(&key.name, i) {
            let path = FieldPath::entry(i).then(Step::Key("name"));
            let at = yaml_edit::value_position(text, &path.0);
            return Err(problem(&path, Kind::DuplicateName { first }, at));
        }
        // None: the key's own hash; Some(j): its previous hash number j.
        let previous = key.previous_hashes.iter().enumerate();
        let previous = previous.map(|(j, p)| (Some(j), &p.hash));
        for (previous, hash) in iter::once((None, &key.hash)).chain(previous) {
            if let Some(first) = hashes.insert(hash, i) {
                let holder = match previous {
                    None => FieldPath::entry(i),
                    Some(j) => FieldPath::entry(i)
                        .then(Step::Key("previousHashes"))
                        .then(Step::Index(j)),
                };
                let path = holder.then(Step::Key("hash"));
                let at = yaml_edit::value_position(text, &path.0);
                return Err(problem(&path, Kind::DuplicateHash { first }, at));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn problem_in(text: &str) -> String {
        SecurityFile::parse(text).unwrap_err().to_string()
    }

    /// Each case: a file whose every value from outside keyward says "secret", and the
    /// whole problem as `keyward check` shows it (after the file name).
    fn cases() -> Vec<(String, &'static str)> {
        let entry = format!("apiKeys:\n  - name: a\n    hash: {H1}\n");
        vec![
            (
                "apiKeys:\n  - name: a\n    enabled: true\n    hash: \"secret-not-a-hash\"\n"
                    .into(),
                "4:11: apiKeys[0].hash: invalid hash (expected sha256:<64 lowercase hex> or 64 hex)",
            ),
            (
                format!("{entry}    name: secret\n"),
                "4:5: apiKeys[0].name: duplicate field",
            ),
            (
                format!("{entry}  - name: a\n    hash: {H2}\n"),
                "4:11: apiKeys[1].name: duplicate key name (first used by apiKeys[0])",
            ),
            (
                format!("{entry}  - name: b\n    hash: {H1}\n"),
                "5:11: apiKeys[1].hash: duplicate hash (also used by apiKeys[0])",
            ),
            (
                format!(
                    "{entry}  - name: b\n    hash: {H2}\n    previousHashes:\n      - hash: {H1}\n        expiresAt: 2026-01-01T00:00:00Z\n"
                ),
                "7:15: apiKeys[1].previousHashes[0].hash: duplicate hash (also used by apiKeys[0])",
            ),
            (
                format!("{entry}DB_PASSWORD=hunter2-secret\n"),
                "4:1: not valid YAML",
            ),
            (
                "apiKeys:\n  - name: a\n    DB_PASSWORD=hunter2-secret\n".into(),
                "3:5: not valid YAML",
            ),
            (
                "DB_PASSWORD=hunter2-secret\n".into(),
                "1:1: expected a mapping",
            ),
            (
                format!("{entry}    secret: 1\n"),
                "4:5: apiKeys[0]: unknown field in a key entry (known: name, hash, hint, enabled, \
                 permissions, description, createdAt, createdBy, rotatedAt, expiresAt, \
                 previousHashes)",
            ),
            (
                format!("apiKeys:\n  - name: a b secret\n    hash: {H1}\n"),
                "2:11: apiKeys[0].name: invalid key name (expected 1 to 128 characters of A-Z a-z 0-9 . _ -, not . or ..)",
            ),
            (
                format!("{entry}    permissions: [ok, \"a b secret\"]\n"),
                "4:23: apiKeys[0].permissions: invalid permission (expected 1 to 256 printable \
                 ASCII characters, no whitespace)",
            ),
            (
                format!("{entry}    permissions:\n      - secret\n      - x\n      - secret\n"),
                "7:9: apiKeys[0].permissions: duplicate permission",
            ),
            (
                format!("{entry}    description: \"secret\\u0001\"\n"),
                "4:18: apiKeys[0].description: invalid description (at most 1024 characters, \
                 no control characters but newline and tab)",
            ),
            (
                format!("{entry}    createdBy: \"\"\n"),
                "4:16: apiKeys[0].createdBy: invalid createdBy (expected 1 to 256 characters, \
                 no control characters)",
            ),
            (
                format!("{entry}    hint: kw_...secret\n"),
                "4:11: apiKeys[0].hint: invalid hint (expected a token prefix, `_...` and 4 \
                 letters or digits, at most 24 characters)",
            ),
            (
                format!("{entry}    rotatedAt: secret\n"),
                "4:16: apiKeys[0].rotatedAt: invalid timestamp (expected RFC 3339, like 2026-11-22T10:00:00Z)",
            ),
            (
                format!("{entry}    createdAt: secret\n"),
                "4:16: apiKeys[0].createdAt: invalid timestamp (expected RFC 3339, like 2026-11-22T10:00:00Z)",
            ),
            (
                format!("{entry}    enabled: secret\n"),
                "4:14: apiKeys[0].enabled: expected true or false",
            ),
            (
                format!("{entry}    permissions: {{secret: 1}}\n"),
                "4:18: apiKeys[0].permissions: expected a list",
            ),
            (
                "apiKeys:\n  - secret\n".into(),
                "2:5: apiKeys[0]: expected a mapping",
            ),
            ("apiKeys: secret\n".into(), "1:10: apiKeys: expected a list"),
            (
                "apiKeys:\n  - name: secret\n".into(),
                "2:5: apiKeys[0].hash: required field is missing",
            ),
            (
                format!("{entry}    previousHashes:\n      - hash: secret\n"),
                "5:15: apiKeys[0].previousHashes[0].hash: invalid hash (expected sha256:<64 lowercase hex> or 64 hex)",
            ),
            (
                format!("{entry}    previousHashes:\n      - hash: {H2}\n        secret: 1\n"),
                "6:9: apiKeys[0].previousHashes[0]: unknown field in a previous hash (known: hash, expiresAt)",
            ),
            (
                "apiKeys:\n  - name: \"secret\n".into(),
                "2:11: not valid YAML",
            ),
            ("apiKeys:\n\t- name: secret\n".into(), "2:1: not valid YAML"),
            (
                "apiKeys:\n  - name: *secret\n".into(),
                "2:11: not valid YAML",
            ),
            (
                "apiKeys: []\nsecret: []\napiKeys: []\n".into(),
                "3:1: apiKeys: duplicate field",
            ),
            (
                "apiKeys: [{name: a, hash: secret}]\n".into(),
                "1:27: apiKeys[0].hash: invalid hash (expected sha256:<64 lowercase hex> or 64 hex)",
            ),
            (
                format!("apiKeys: [{{name: a, name: secret, hash: {H1}}}]\n"),
                "1:21: apiKeys[0].name: duplicate field",
            ),
            (
                "secret: 1\n---\nsecret: 2\n".into(),
                "more than one YAML document",
            ),
        ]
    }

    #[test]
    fn a_problem_points_at_the_offending_value_and_never_quotes_the_file() {
        for (text, expected) in cases() {
            let problem = problem_in(&text);
            assert_eq!(problem, expected, "{text:?}");
            assert!(!problem.contains("secret"), "{problem}");
        }
    }
}
