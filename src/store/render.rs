//! A key entry as the YAML the editor writes: fixed field order (name, hash, hint, enabled,
//! permissions, description, createdAt, createdBy, rotatedAt, expiresAt, previousHashes),
//! optional fields omitted.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::yaml_edit::Node;
use crate::domain::KeyEntry;

pub fn entry_node(e: &KeyEntry) -> Node {
    let s = |v: &str| Node::Str(v.to_owned());
    let mut fields = vec![
        ("name".to_owned(), s(e.name.as_str())),
        ("hash".to_owned(), s(&e.hash.to_string())),
    ];
    if let Some(h) = &e.hint {
        fields.push(("hint".to_owned(), s(h.as_str())));
    }
    fields.push(("enabled".to_owned(), Node::Bool(e.enabled)));
    if !e.permissions.is_empty() {
        let list = e.permissions.iter().map(|p| s(p.as_str())).collect();
        fields.push(("permissions".to_owned(), Node::Seq(list)));
    }
    if let Some(d) = &e.description {
        fields.push(("description".to_owned(), s(d.as_str())));
    }
    if let Some(t) = e.created_at {
        fields.push(("createdAt".to_owned(), s(&timestamp(t))));
    }
    if let Some(by) = &e.created_by {
        fields.push(("createdBy".to_owned(), s(by.as_str())));
    }
    if let Some(t) = e.rotated_at {
        fields.push(("rotatedAt".to_owned(), s(&timestamp(t))));
    }
    if let Some(t) = e.expires_at {
        fields.push(("expiresAt".to_owned(), s(&timestamp(t))));
    }
    if !e.previous_hashes.is_empty() {
        let list = e
            .previous_hashes
            .iter()
            .map(|p| {
                Node::Map(vec![
                    ("hash".to_owned(), s(&p.hash.to_string())),
                    ("expiresAt".to_owned(), s(&timestamp(p.expires_at))),
                ])
            })
            .collect();
        fields.push(("previousHashes".to_owned(), Node::Seq(list)));
    }
    Node::Map(fields)
}

/// RFC 3339 in UTC (`2026-11-22T10:00:00Z`), the form ops see in the file and the API.
pub fn timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The entry as the YAML lines keyward writes for it (a one-item `apiKeys` list).
pub fn entry_yaml(e: &KeyEntry) -> String {
    super::yaml_edit::new_list(&entry_node(e))
}
