//! Parsing `security.yml` into its meaning: the one loader used by the server, the watcher and
//! `keyward check`.
//!
//! A problem is reported by position and kind only. The file can hold anything (a pasted
//! secret, a line of another tool's config), and problems reach logs, the status endpoint
//! and CI output, so no message made here quotes the file. serde_yaml's messages do quote
//! values, so only their shape is read: the path (keyward's own field names) and the kind.
//! The position is then moved to the offending value with the editor's locator, since
//! serde_yaml puts a value refused by a domain type at the start of its whole entry.

use std::collections::HashMap;
use std::fmt;
use std::iter;

use serde::{Deserialize, Deserializer};

use super::yaml_edit::{self, ListScalar, Pos, Step};
use crate::domain::{
    Description, DomainError, DomainErrorKind, FileProblem, KeyEntry, KeyHash, KeyName, Permission,
    Permissions, SecurityFile, Subject,
};

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

/// What is wrong, in keyward's own words: never anything read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotYaml,
    MoreThanOneDocument,
    ExpectedMapping,
    ExpectedList,
    ExpectedString,
    ExpectedBool,
    UnknownKeyField,
    UnknownPreviousHashField,
    DuplicateField,
    MissingField,
    InvalidName,
    InvalidHash,
    InvalidPermission,
    DuplicatePermission,
    TooManyPermissions,
    InvalidDescription,
    InvalidSubject,
    InvalidTimestamp,
    InvalidValue,
    /// `first`: the index of the entry that used the name first.
    DuplicateName {
        first: usize,
    },
    DuplicateHash {
        first: usize,
    },
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::NotYaml => f.write_str("not valid YAML"),
            Kind::MoreThanOneDocument => f.write_str("more than one YAML document"),
            Kind::ExpectedMapping => f.write_str("expected a mapping"),
            Kind::ExpectedList => f.write_str("expected a list"),
            Kind::ExpectedString => f.write_str("expected a string"),
            Kind::ExpectedBool => f.write_str("expected true or false"),
            Kind::UnknownKeyField => write!(
                f,
                "unknown field in a key entry (known: {})",
                ENTRY_FIELDS.join(", ")
            ),
            Kind::UnknownPreviousHashField => write!(
                f,
                "unknown field in a previous hash (known: {})",
                PREVIOUS_HASH_FIELDS.join(", ")
            ),
            Kind::DuplicateField => f.write_str("duplicate field"),
            Kind::MissingField => f.write_str("required field is missing"),
            Kind::InvalidName => f.write_str(
                "invalid key name (expected 1 to 128 characters of A-Z a-z 0-9 . _ -, not . or ..)",
            ),
            Kind::InvalidHash => {
                f.write_str("invalid hash (expected sha256:<64 lowercase hex> or 64 hex)")
            }
            Kind::InvalidPermission => f.write_str(
                "invalid permission (expected 1 to 256 printable ASCII characters, no whitespace)",
            ),
            Kind::DuplicatePermission => f.write_str("duplicate permission"),
            Kind::TooManyPermissions => {
                write!(f, "too many permissions (at most {})", Permissions::MAX)
            }
            Kind::InvalidDescription => write!(
                f,
                "invalid description (at most {} characters, no control characters but newline and tab)",
                Description::MAX_CHARS
            ),
            Kind::InvalidSubject => write!(
                f,
                "invalid createdBy (expected 1 to {} characters, no control characters)",
                Subject::MAX_CHARS
            ),
            Kind::InvalidTimestamp => {
                f.write_str("invalid timestamp (expected RFC 3339, like 2026-11-22T10:00:00Z)")
            }
            Kind::InvalidValue => f.write_str("invalid value"),
            Kind::DuplicateName { first } => {
                write!(f, "duplicate key name (first used by apiKeys[{first}])")
            }
            Kind::DuplicateHash { first } => {
                write!(f, "duplicate hash (also used by apiKeys[{first}])")
            }
        }
    }
}

/// The fields of a key entry, as `KeyEntry` spells them. A path is only ever built from
/// these, so it can be shown.
const ENTRY_FIELDS: [&str; 9] = [
    "name",
    "hash",
    "enabled",
    "permissions",
    "description",
    "createdAt",
    "createdBy",
    "expiresAt",
    "previousHashes",
];

const PREVIOUS_HASH_FIELDS: [&str; 2] = ["hash", "expiresAt"];

const API_KEYS: &str = "apiKeys";

/// `field` as keyward's own string, when it is one of keyward's field names.
fn known_field(field: &str) -> Option<&'static str> {
    iter::once(API_KEYS)
        .chain(ENTRY_FIELDS)
        .find(|known| *known == field)
}

/// The loader's kind for a domain type's refusal (src/domain), and the field that holds such
/// a value: serde_yaml reports these at the enclosing entry, so the field is how the value
/// is found. None for refusals no value of a file can cause.
fn refused_field(kind: DomainErrorKind) -> Option<(Kind, &'static str)> {
    Some(match kind {
        DomainErrorKind::BadHash => (Kind::InvalidHash, "hash"),
        DomainErrorKind::BadKeyName => (Kind::InvalidName, "name"),
        DomainErrorKind::BadPermission => (Kind::InvalidPermission, "permissions"),
        DomainErrorKind::DuplicatePermission => (Kind::DuplicatePermission, "permissions"),
        DomainErrorKind::TooManyPermissions => (Kind::TooManyPermissions, "permissions"),
        DomainErrorKind::BadDescription => (Kind::InvalidDescription, "description"),
        DomainErrorKind::BadSubject => (Kind::InvalidSubject, "createdBy"),
        DomainErrorKind::BadTenantId
        | DomainErrorKind::BadTokenPrefix
        | DomainErrorKind::MalformedKey => return None,
    })
}

/// A path from the top of the file, made of keyward's field names and list indices only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FieldPath(Vec<Step<'static>>);

impl FieldPath {
    fn entry(index: usize) -> Self {
        Self(vec![Step::Key(API_KEYS), Step::Index(index)])
    }

    fn then(&self, step: Step<'static>) -> Self {
        let mut steps = self.0.clone();
        steps.push(step);
        Self(steps)
    }

    fn last_key(&self) -> Option<&'static str> {
        match self.0.last() {
            Some(Step::Key(key)) => Some(key),
            _ => None,
        }
    }

    /// Splits serde_yaml's `apiKeys[0].previousHashes[1]: rest` into the path and the rest.
    /// A prefix that is not made of keyward's field names is no path: the whole message is
    /// then the rest, at the top.
    fn split_off(message: &str) -> (Self, &str) {
        Self::parse_prefix(message).unwrap_or_else(|| (Self::default(), message))
    }

    fn parse_prefix(message: &str) -> Option<(Self, &str)> {
        let mut steps = Vec::new();
        let mut rest = message;
        loop {
            if let Some(after) = rest.strip_prefix('[') {
                let (index, after) = after.split_once(']')?;
                steps.push(Step::Index(index.parse().ok()?));
                rest = after;
            } else {
                let after = if steps.is_empty() {
                    rest
                } else {
                    rest.strip_prefix('.')?
                };
                let end = after
                    .find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(after.len());
                steps.push(Step::Key(known_field(&after[..end])?));
                rest = &after[end..];
            }
            if let Some(after) = rest.strip_prefix(": ") {
                return Some((Self(steps), after));
            }
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if i == 0 => f.write_str(key)?,
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

fn problem(path: &FieldPath, kind: Kind, at: Option<Pos>) -> FileProblem {
    let message = if path.0.is_empty() {
        kind.to_string()
    } else {
        format!("{path}: {kind}")
    };
    FileProblem {
        line: at.map(|p| p.line),
        column: at.map(|p| p.column),
        message,
    }
}

/// serde_yaml's error as a problem that does not quote the file, at the offending value.
/// `refused`: the kind of the domain refusal that stopped the parse, if one did.
fn from_serde(
    text: &str,
    err: &serde_yaml::Error,
    refused: Option<DomainErrorKind>,
) -> FileProblem {
    let full = err.to_string();
    let reported = err.location().map(|l| Pos {
        line: l.line(),
        column: l.column(),
    });
    let (path, rest) = FieldPath::split_off(&full);
    let (kind, path) = classify(path, rest, refused);
    let found = match kind {
        // serde_yaml already points at the unknown key (the path ends above it); a second
        // document has no one value to point at.
        Kind::UnknownKeyField | Kind::UnknownPreviousHashField | Kind::MoreThanOneDocument => None,
        Kind::NotYaml => scanning_start(rest),
        Kind::DuplicateField => {
            let (parent, field) = path.0.split_at(path.0.len().saturating_sub(1));
            match field {
                [Step::Key(field)] => yaml_edit::repeated_key_position(text, parent, field),
                _ => None,
            }
        }
        Kind::DuplicatePermission => first_scalar(text, &path, |seen, item| {
            seen.iter().any(|s| s.value == item.value)
        }),
        Kind::InvalidPermission => first_scalar(text, &path, |_, item| {
            Permission::parse(&item.value).is_err()
        }),
        _ => yaml_edit::value_position(text, &path.0),
    };
    problem(&path, kind, found.or(reported))
}

/// The kind of serde_yaml's message `rest` (what follows its path), or of the domain
/// refusal that stopped the parse (`refused`), and the path of the offending value, which
/// for some kinds is one field below serde_yaml's.
fn classify(path: FieldPath, rest: &str, refused: Option<DomainErrorKind>) -> (Kind, FieldPath) {
    let quoted_field = |prefix: &str| {
        let name = rest.strip_prefix(prefix)?.split('`').next()?;
        known_field(name)
    };
    if matches!(path.last_key(), Some("createdAt" | "expiresAt")) {
        return (Kind::InvalidTimestamp, path);
    }
    if rest.starts_with("unknown field `") {
        let in_previous_hash = path.0.contains(&Step::Key("previousHashes"));
        let kind = if in_previous_hash {
            Kind::UnknownPreviousHashField
        } else {
            Kind::UnknownKeyField
        };
        return (kind, path);
    }
    if let Some(field) = quoted_field("duplicate field `") {
        return (Kind::DuplicateField, path.then(Step::Key(field)));
    }
    if let Some(field) = quoted_field("missing field `") {
        return (Kind::MissingField, path.then(Step::Key(field)));
    }
    if ["invalid type: ", "invalid value: ", "invalid length "]
        .iter()
        .any(|p| rest.starts_with(p))
    {
        return (expected(rest), path);
    }
    if let Some((kind, field)) = refused.and_then(refused_field) {
        let path = if path.last_key() == Some(field) {
            path
        } else {
            path.then(Step::Key(field))
        };
        return (kind, path);
    }
    if rest.starts_with("deserializing from YAML containing more than one document") {
        return (Kind::MoreThanOneDocument, path);
    }
    let kind = if path.0.is_empty() {
        Kind::NotYaml
    } else {
        Kind::InvalidValue
    };
    (kind, path)
}

/// serde's `invalid type: <the value, quoted>, expected <a description of the type>`: only
/// the part after the last `, expected ` comes from keyward's types.
fn expected(message: &str) -> Kind {
    const EXPECTED: &str = ", expected ";
    let Some(at) = message.rfind(EXPECTED) else {
        return Kind::InvalidValue;
    };
    let expected = &message[at + EXPECTED.len()..];
    if expected.starts_with("struct ") || expected.starts_with("a map") {
        Kind::ExpectedMapping
    } else if expected.starts_with("a sequence") {
        Kind::ExpectedList
    } else if expected.starts_with("a boolean") {
        Kind::ExpectedBool
    } else if expected.starts_with("a string") {
        Kind::ExpectedString
    } else {
        Kind::InvalidValue
    }
}

/// The first scalar of the list at `path` for which `bad(earlier items, item)` holds.
fn first_scalar(
    text: &str,
    path: &FieldPath,
    bad: impl Fn(&[ListScalar], &ListScalar) -> bool,
) -> Option<Pos> {
    let items = yaml_edit::list_scalars(text, &path.0)?;
    (0..items.len())
        .find(|&i| bad(&items[..i], &items[i]))
        .map(|i| items[i].pos)
}

/// libyaml's scanner says `..., while scanning a simple key at line 4 column 1`: the token
/// it was reading starts there, and that is where the mistake is (the problem mark is where
/// it gave up, often the next line). Only the two numbers are read.
fn scanning_start(message: &str) -> Option<Pos> {
    let context = &message[message.rfind(", while scanning ")?..];
    let at = context.rfind(" at line ")?;
    let (line, column) = context[at + " at line ".len()..].split_once(" column ")?;
    Some(Pos {
        line: line.parse().ok()?,
        column: column.trim_end().parse().ok()?,
    })
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
                "4:5: apiKeys[0]: unknown field in a key entry (known: name, hash, enabled, \
                 permissions, description, createdAt, createdBy, expiresAt, previousHashes)",
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

    #[test]
    fn every_refusal_a_domain_type_makes_in_a_file_has_its_kind_and_field() {
        let p = |s: &str| Permission::parse(s).unwrap();
        let too_many = (0..=Permissions::MAX)
            .map(|i| p(&format!("p{i}")))
            .collect();
        let refusals = [
            (KeyHash::parse("x").unwrap_err(), Kind::InvalidHash),
            (KeyName::parse("a b").unwrap_err(), Kind::InvalidName),
            (
                Permission::parse("a b").unwrap_err(),
                Kind::InvalidPermission,
            ),
            (
                Permissions::new(vec![p("x"), p("x")]).unwrap_err(),
                Kind::DuplicatePermission,
            ),
            (
                Permissions::new(too_many).unwrap_err(),
                Kind::TooManyPermissions,
            ),
            (
                Description::parse("\u{1}").unwrap_err(),
                Kind::InvalidDescription,
            ),
            (
                Description::parse(&"x".repeat(Description::MAX_CHARS + 1)).unwrap_err(),
                Kind::InvalidDescription,
            ),
            (Subject::parse("").unwrap_err(), Kind::InvalidSubject),
        ];
        for (refusal, kind) in refusals {
            let path = FieldPath::entry(0);
            let message = refusal.to_string();
            assert_eq!(
                classify(path, &message, Some(refusal.kind())).0,
                kind,
                "{refusal}"
            );
        }
    }

    #[test]
    fn a_refusal_is_known_by_its_kind_whatever_its_words() {
        let path = FieldPath::entry(0);

        let (kind, at) = classify(path, "reworded", Some(DomainErrorKind::BadKeyName));

        assert_eq!(kind, Kind::InvalidName);
        assert_eq!(at.to_string(), "apiKeys[0].name");
    }

    #[test]
    fn a_path_is_read_only_when_it_is_made_of_keywards_field_names() {
        let (path, rest) = FieldPath::split_off("apiKeys[2].previousHashes[0]: x: y");
        assert_eq!(path.to_string(), "apiKeys[2].previousHashes[0]");
        assert_eq!(rest, "x: y");
        for message in [
            "secret: x",
            "apiKeys[0].secret: x",
            "apiKeys[x]: y",
            "apiKeys",
        ] {
            assert_eq!(
                FieldPath::split_off(message),
                (FieldPath::default(), message)
            );
        }
    }
}
