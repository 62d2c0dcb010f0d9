//! The two text formats a scraper may ask for, and which one an `Accept` header asks for.
//!
//! Prometheus asks for OpenMetrics first and the classic text format after it, with
//! q-values; promtool, Python's classic parser and `curl` ask for neither and must get the
//! classic format, which is the one every tool reads.

use actix_web::http::header::{Quality, QualityItem};
use actix_web::mime::Mime;

/// An exposition format `/metrics` can answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics text, in the version the scraper asked for.
    OpenMetrics(OpenMetricsVersion),
}

/// The OpenMetrics text versions there are; their syntax is the same for what we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMetricsVersion {
    V0_0_1,
    V1_0_0,
}

impl Format {
    /// The format `accept` (the header's value, if any) prefers: OpenMetrics only when it
    /// is listed and ranked at least as high as any media range the classic format matches.
    /// An unreadable header gets the classic format, which every scraper reads.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(items) = accept.and_then(parse_accept) else {
            return Self::Text;
        };
        let best_openmetrics = items
            .iter()
            .filter_map(|i| openmetrics_version(&i.item).map(|v| (i.quality, v)))
            .filter(|(q, _)| *q > Quality::ZERO)
            .max_by_key(|(q, _)| *q);
        let best_text = items
            .iter()
            .filter(|i| matches_text(&i.item))
            .map(|i| i.quality)
            .max();
        match (best_openmetrics, best_text) {
            (Some((q, version)), text) if text.is_none_or(|t| q >= t) => Self::OpenMetrics(version),
            _ => Self::Text,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics(OpenMetricsVersion::V0_0_1) => {
                "application/openmetrics-text; version=0.0.1; charset=utf-8"
            }
            Self::OpenMetrics(OpenMetricsVersion::V1_0_0) => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }
    }
}

fn parse_accept(value: &str) -> Option<Vec<QualityItem<Mime>>> {
    let items: Result<Vec<_>, _> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse::<QualityItem<Mime>>)
        .collect();
    items.ok()
}

/// The OpenMetrics version `mime` names: none for another type or a version we do not write.
fn openmetrics_version(mime: &Mime) -> Option<OpenMetricsVersion> {
    if mime.essence_str() != "application/openmetrics-text" {
        return None;
    }
    match mime.get_param("version").map(|v| v.as_str()) {
        None | Some("1.0.0") => Some(OpenMetricsVersion::V1_0_0),
        Some("0.0.1") => Some(OpenMetricsVersion::V0_0_1),
        Some(_) => None,
    }
}

/// Whether `mime` is a range the classic text format answers (`text/plain`, `text/*`, `*/*`).
fn matches_text(mime: &Mime) -> bool {
    match (mime.type_().as_str(), mime.subtype().as_str()) {
        ("*", "*") | ("text", "*") => true,
        ("text", "plain") => mime
            .get_param("version")
            .is_none_or(|v| v.as_str() == "0.0.4"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_is_chosen_only_when_ranked_at_least_as_high_as_the_classic_format() {
        let om = Format::OpenMetrics(OpenMetricsVersion::V1_0_0);
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
            application/openmetrics-text;version=0.0.1;q=0.4,\
            text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        for (accept, want) in [
            (None, Format::Text),
            (Some(""), Format::Text),
            (Some("*/*"), Format::Text),
            (Some("text/plain"), Format::Text),
            (Some("not a media type;;"), Format::Text),
            (Some("application/openmetrics-text"), om),
            (Some(prometheus), om),
            (
                Some("application/openmetrics-text; version=0.0.1"),
                Format::OpenMetrics(OpenMetricsVersion::V0_0_1),
            ),
            (
                Some("application/openmetrics-text;version=2.0.0"),
                Format::Text,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Text),
            (
                Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
                Format::Text,
            ),
            (
                Some("text/plain;q=0.5,application/openmetrics-text;q=0.9"),
                om,
            ),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }
}
