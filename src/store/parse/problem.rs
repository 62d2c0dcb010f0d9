//! A parse's problem in keyward's own words: what is wrong (`Kind`), where (a path made of
//! keyward's field names only), and the line and column of the offending value. Apart from
//! the parse because reading serde_yaml's messages without ever quoting the file is a job
//! of its own.

use std::fmt;
use std::iter;

use super::super::yaml_edit::{self, ListScalar, Pos, Step};
use crate::domain::{
    Description, DomainErrorKind, FileProblem, Permission, Permissions, Subject, TokenHint,
};

/// What is wrong, in keyward's own words: never anything read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
    InvalidHint,
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
            Kind::InvalidHint => write!(
                f,
                "invalid hint (expected a token prefix, `_...` and 4 letters or digits, at most {} characters)",
                TokenHint::MAX_LEN
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
const ENTRY_FIELDS: [&str; 11] = [
    "name",
    "hash",
    "hint",
    "enabled",
    "permissions",
    "description",
    "createdAt",
    "createdBy",
    "rotatedAt",
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
        DomainErrorKind::BadHint => (Kind::InvalidHint, "hint"),
        DomainErrorKind::BadTenantId
        | DomainErrorKind::BadTokenPrefix
        | DomainErrorKind::MalformedKey => return None,
    })
}

/// A path from the top of the file, made of keyward's field names and list indices only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FieldPath(pub(super) Vec<Step<'static>>);

impl FieldPath {
    pub(super) fn entry(index: usize) -> Self {
        Self(vec![Step::Key(API_KEYS), Step::Index(index)])
    }

    pub(super) fn then(&self, step: Step<'static>) -> Self {
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

pub(super) fn problem(path: &FieldPath, kind: Kind, at: Option<Pos>) -> FileProblem {
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
pub(super) fn from_serde(
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
    if matches!(
        path.last_key(),
        Some("createdAt" | "rotatedAt" | "expiresAt")
    ) {
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
    use crate::domain::{KeyHash, KeyName};

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
            (TokenHint::parse("kw_abcd").unwrap_err(), Kind::InvalidHint),
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
