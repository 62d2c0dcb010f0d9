//! How `lastUsedAt` is laid out in Redis, for every replica of one cluster:
//!
//! - `keyward:usage:last_used`, a sorted set: member `tenant/keyName`, score the key's last
//!   use in Unix seconds. Written with `ZADD GT`, so it only ever moves forward, whatever
//!   order replicas push in.
//! - `keyward:usage:changed`, a sorted set of the same members, scored by when a replica
//!   last pushed a use of them (the pusher's clock). A replica asks it what changed since
//!   its last pull: a use pushed late (Redis was down, a replica was cut off) is still
//!   found, since it is found by when it arrived, not by when it happened. Entries older
//!   than `CHANGES_KEPT` are trimmed by every push; a replica that has not pulled for that
//!   long reads the whole `last_used` set once instead.
//!
//! Tenant ids and key names are both `[A-Za-z0-9._-]`, so the `/` between them is never
//! part of either and a member splits back unambiguously.

use std::collections::HashMap;

use redis::aio::ConnectionManager;

use crate::domain::{KeyName, TenantId};

const LAST_USED: &str = "keyward:usage:last_used";
const CHANGED: &str = "keyward:usage:changed";
/// How long the changes log remembers a push, in seconds.
pub const CHANGES_KEPT: i64 = 3600;
/// Members per command: a million uses go out as a pipeline of moderate commands, never as
/// one reply Redis must build whole.
const CHUNK: usize = 1000;
/// Members per page when the whole set is read.
const PAGE: isize = 10_000;

/// The sorted-set member for one key.
pub fn member(tenant: &TenantId, key: &KeyName) -> String {
    format!("{}/{}", tenant.as_str(), key.as_str())
}

/// The key a member names; None for anything keyward did not write.
pub fn parse_member(member: &str) -> Option<(TenantId, KeyName)> {
    let (tenant, key) = member.split_once('/')?;
    Some((TenantId::parse(tenant).ok()?, KeyName::parse(key).ok()?))
}

/// Adds `uses` (member -> last use) to the cluster's set, keeping each key's later use, and
/// logs them as changed at `now`: one pipeline, one round trip.
pub async fn push(
    conn: &mut ConnectionManager,
    uses: &HashMap<String, i64>,
    now: i64,
) -> redis::RedisResult<()> {
    let uses: Vec<(&String, &i64)> = uses.iter().collect();
    let mut pipe = redis::pipe();
    for chunk in uses.chunks(CHUNK) {
        let last_used = pipe.cmd("ZADD").arg(LAST_USED).arg("GT");
        for (member, at) in chunk {
            last_used.arg(**at).arg(member.as_str());
        }
        let changed = pipe.cmd("ZADD").arg(CHANGED);
        for (member, _) in chunk {
            changed.arg(now).arg(member.as_str());
        }
    }
    pipe.cmd("ZREMRANGEBYSCORE")
        .arg(CHANGED)
        .arg("-inf")
        .arg(format!("({}", now - CHANGES_KEPT));
    pipe.exec_async(conn).await
}

/// Every key whose use was pushed after `since` (Unix seconds), with its last use.
pub async fn changed_since(
    conn: &mut ConnectionManager,
    since: i64,
) -> redis::RedisResult<Vec<(String, i64)>> {
    let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(CHANGED)
        .arg(format!("({since}"))
        .arg("+inf")
        .query_async(conn)
        .await?;
    let mut found = Vec::with_capacity(members.len());
    for chunk in members.chunks(CHUNK) {
        let scores: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg(LAST_USED)
            .arg(chunk)
            .query_async(conn)
            .await?;
        found.extend(
            chunk
                .iter()
                .zip(scores)
                .filter_map(|(m, s)| Some((m.clone(), s? as i64))),
        );
    }
    Ok(found)
}

/// Every key's last use, read page by page.
pub async fn everything(conn: &mut ConnectionManager) -> redis::RedisResult<Vec<(String, i64)>> {
    let mut found = Vec::new();
    for start in (0..).step_by(PAGE as usize) {
        let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(LAST_USED)
            .arg(start)
            .arg(start + PAGE - 1)
            .arg("WITHSCORES")
            .query_async(conn)
            .await?;
        let last = page.len() < PAGE as usize;
        found.extend(page.into_iter().map(|(m, s)| (m, s as i64)));
        if last {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_splits_back_into_its_tenant_and_key() {
        let tenant = TenantId::parse("acme.eu-1").unwrap();
        let key = KeyName::parse("ci_deploy.v2-x").unwrap();
        let m = member(&tenant, &key);
        assert_eq!(m, "acme.eu-1/ci_deploy.v2-x");
        assert_eq!(parse_member(&m), Some((tenant, key)));
    }

    #[test]
    fn members_keyward_did_not_write_are_ignored() {
        for other in ["acme", "acme/", "/key", "acme/a/b", "ac me/key", "../x/key"] {
            assert_eq!(parse_member(other), None, "{other}");
        }
    }
}
