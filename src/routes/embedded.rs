//! Files built into the binary and served by keyward itself (the console, the docs page):
//! each build's files live under a URL named by a digest of them all, so a browser never
//! mixes a cached file of an old build with a new page, and every answer carries the same
//! hardening headers.

use std::fmt::Write as _;

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use actix_web::{HttpResponse, HttpResponseBuilder};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// Revalidated on every load: a page, which names this build's files.
pub const NO_CACHE: &str = "no-cache";
/// Kept for good: a file's URL changes when its bytes do.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A digest of every file, in hex: the URL segment that names this build's files.
pub fn version(assets: &[Asset]) -> String {
    let mut hash = Sha256::new();
    for a in assets {
        hash.update(a.name.as_bytes());
        hash.update((a.bytes.len() as u64).to_le_bytes());
        hash.update(a.bytes);
    }
    hash.finalize()[..6].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A 200 with the headers every embedded answer carries, cached as `cache` says.
pub fn hardened(cache: &'static str) -> HttpResponseBuilder {
    let mut res = HttpResponse::Ok();
    res.insert_header((X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .insert_header((X_FRAME_OPTIONS, "DENY"))
        .insert_header((CACHE_CONTROL, cache));
    res
}

/// The file `file` of build `asked`, kept for good; 404 for an unknown file or a build
/// other than `current`.
pub fn serve(
    assets: &[Asset],
    current: &str,
    asked: &str,
    file: &str,
) -> Result<HttpResponse, ApiError> {
    let found = assets
        .iter()
        .find(|a| a.name == file)
        .filter(|_| asked == current)
        .ok_or(ApiError::NotFound)?;
    Ok(hardened(IMMUTABLE)
        .insert_header((CONTENT_TYPE, found.content_type))
        .body(found.bytes))
}
