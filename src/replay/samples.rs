//! A replay's mismatches as diff-store samples, so the dashboard shows replay runs
//! beside live shadows: the recorded answer as the primary, the target's as the shadow,
//! grouped apart from the live groups (their signature is marked as a replay's).

use super::Replayed;
use crate::store::redact::Redactor;
use crate::store::Sample;
use serde_json::json;

pub fn samples(replayed: &[Replayed], target: &str, redactor: &Redactor, at: f64) -> Vec<Sample> {
    replayed
        .iter()
        .map(|r| {
            let route = r.record.route.clone().unwrap_or_else(|| "(no route)".into());
            let mut fields: Vec<(&str, &str)> = r
                .differences
                .iter()
                .map(|d| (d.field.as_str(), d.kind.label()))
                .collect();
            fields.sort_unstable();
            fields.dedup();
            let fields_json = serde_json::to_string(&fields).unwrap_or_default();
            let signature = format!(
                "{:016x}",
                xxhash_rust::xxh3::xxh3_64(format!("replay|{route}|{fields_json}").as_bytes())
            );
            let request = &r.record.request;
            let recorded = &r.record.response;
            let answer = r.answer.as_ref();
            let content_type = |h: &http::HeaderMap| {
                h.get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            Sample {
                route,
                signature,
                fields: fields_json,
                at,
                request: json!({
                    "method": request.method,
                    "path": request.target(),
                    "headers": request.headers,
                    "body": request.body.body,
                    "replay": { "target": target, "recorded_at": r.record.time },
                }),
                primary: json!({
                    "upstream": "recorded",
                    "status": recorded.status,
                    "headers": recorded.headers,
                    "body": recorded.body.body,
                }),
                shadow: json!({
                    "upstream": target,
                    "status": answer.map_or(0, |a| a.status),
                    "headers": answer.map(|a| redactor.headers(&a.headers)).unwrap_or_default(),
                    "body": answer.map(|a| redactor.body(&crate::compare::content::decoded(a), content_type(&a.headers).as_deref())).unwrap_or_default(),
                }),
                differences: redactor.differences(&r.differences),
                primary_ms: recorded.latency_ms,
                shadow_ms: r.latency.as_secs_f64() * 1e3,
            }
        })
        .collect()
}
