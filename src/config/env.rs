//! Which `KEYWARD_*` variables are settings. The environment is not the operator's alone (a
//! shell keeps `KEYWARD_TOKEN` from the dev banner, a test harness passes `KEYWARD_BIN`):
//! a variable that names a setting is read and held to its value like the file is, and one
//! that names none is left out, by name, for a warning.

use std::collections::HashSet;
use std::ffi::OsString;

use super::{ConfigError, Settings};

/// `KEYWARD_AUTH__HS256_SECRET` is `auth.hs256_secret`.
pub(super) const PREFIX: &str = "KEYWARD";
pub(super) const SEPARATOR: &str = "__";

/// Splits the process environment into the `KEYWARD_*` variables that name a setting (for
/// the `config` crate, which would refuse the others as unknown fields) and the names of
/// those that do not. Other variables, and names that are not Unicode, are not ours.
pub(super) fn setting_variables(
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Result<(config::Map<String, String>, Vec<String>), ConfigError> {
    let known = setting_keys();
    let prefix = format!("{}_", PREFIX.to_lowercase());
    let mut settings = config::Map::new();
    let mut ignored = Vec::new();
    for (name, value) in vars {
        let Ok(name) = name.into_string() else {
            continue;
        };
        // The `config` crate's own reading of a name: case-insensitive, `__` nests.
        let Some(key) = name
            .to_lowercase()
            .strip_prefix(&prefix)
            .map(|rest| rest.replace(SEPARATOR, "."))
        else {
            continue;
        };
        if !known.contains(&key) {
            ignored.push(name);
            continue;
        }
        // Refused by name: the value may be a secret.
        let value = value
            .into_string()
            .map_err(|_| ConfigError::NotUnicode(name.clone()))?;
        settings.insert(name, value);
    }
    ignored.sort();
    Ok((settings, ignored))
}

/// Every setting's dotted key (`auth.hs256_secret`), sections (`auth`) included, as
/// `Settings` itself declares them: a new field is a known setting without a list to update.
fn setting_keys() -> HashSet<String> {
    use serde_reflection::{ContainerFormat, Format, Tracer, TracerConfig};
    let mut tracer = Tracer::new(TracerConfig::default());
    let traced = tracer
        .trace_simple_type::<Settings>()
        .map(|(format, _)| format);
    let registry = tracer.registry_unchecked();
    let mut keys = HashSet::new();
    // Tracing a plain struct of plain fields cannot fail; were it to, every variable would
    // count as unknown and the tests of this module would say so.
    let Ok(root) = traced else {
        return keys;
    };
    let mut pending = vec![(String::new(), root)];
    while let Some((path, format)) = pending.pop() {
        let format = match format {
            Format::Option(inner) => *inner,
            other => other,
        };
        let Format::TypeName(name) = format else {
            continue;
        };
        let Some(ContainerFormat::Struct(fields)) = registry.get(&name) else {
            continue;
        };
        for field in fields {
            let key = if path.is_empty() {
                field.name.clone()
            } else {
                format!("{path}.{}", field.name)
            };
            keys.insert(key.clone());
            pending.push((key, field.value.clone()));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_and_section_is_a_known_key() {
        let keys = setting_keys();
        for key in [
            "listen",
            "cors_allowed_origins",
            "max_connections",
            "auth",
            "auth.hs256_secret",
            "auth.jwks_url",
            "auth.dev_token",
            "git.webhook_secret",
            "console.client_id",
        ] {
            assert!(keys.contains(key), "{key}: {keys:?}");
        }
        assert!(!keys.contains("token") && !keys.contains("ignored_variables"));
    }

    #[test]
    fn variables_that_name_no_setting_are_set_apart_by_name() {
        let vars = [
            ("KEYWARD_TOKEN", "eyJ.secret.jwt"),
            ("KEYWARD_AUTH__LEEWAY_SECONDS", "5"),
            ("keyward_read_only", "true"),
            ("KEYWARD_AUTH__NOPE", "x"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let (kept, ignored) = setting_variables(vars.into_iter()).unwrap();
        assert_eq!(ignored, ["KEYWARD_AUTH__NOPE", "KEYWARD_TOKEN"]);
        let mut kept: Vec<_> = kept.into_keys().collect();
        kept.sort();
        assert_eq!(kept, ["KEYWARD_AUTH__LEEWAY_SECONDS", "keyward_read_only"]);
    }
}
