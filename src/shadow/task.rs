//! The shadow task: everything after the request path let go. Wait for the request body's
//! copy, send it to the shadow (and, for noise, a second copy to the primary), wait for
//! the primary's response copy, compare, count, and store a mismatch sample. Bounded by
//! the route's shadow timeout, counted whatever happens.

use super::spec::{ShadowSpec, SAFE_METHODS};
use super::SHADOW_HEADER;
use crate::body;
use crate::body::tap::Captured;
use crate::compare::{compare, Difference, Response};
use crate::config::ShadowSettings;
use crate::live::{RouteFigures, ShadowOutcome as Outcome};
use crate::metrics;
use crate::routing::UpstreamId;
use crate::store::redact::Redactor;
use crate::store::Sample;
use crate::telemetry::spans::{ChildSpan, RequestTrace};
use crate::trace::context::TRACEPARENT;
use crate::upstream::failure::UpstreamFailure;
use crate::upstream::request::Outgoing;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use http_body_util::{BodyExt, Limited};
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub struct Job {
    pub env: Arc<super::Env>,
    /// The route's live figures (and its name).
    pub figures: Arc<RouteFigures>,
    pub spec: Arc<ShadowSpec>,
    pub primary: UpstreamId,
    /// Where the copy goes.
    pub to: UpstreamId,
    pub shadow_request: Outgoing,
    pub primary_request: Outgoing,
    pub request_body: oneshot::Receiver<Captured>,
    pub primary_response: oneshot::Receiver<Captured>,
    pub started: Instant,
    pub max_body: usize,
    pub _permits: super::limits::Permits,
    /// The request's trace, when banyan exports spans.
    pub trace: Option<RequestTrace>,
}

pub async fn run(mut job: Job) {
    let figures = job.figures.clone();
    let span = shadow_span(&mut job);
    let deadline = tokio::time::Instant::from_std(job.started + job.spec.timeout);
    let outcome = tokio::time::timeout_at(deadline, compare_job(&mut job, &figures, &span))
        .await
        .unwrap_or(Outcome::Timeout);
    figures.shadow.outcome(outcome);
    if let Some(span) = span {
        span.set(KeyValue::new("banyan.shadow.outcome", outcome.label()));
        let failed = matches!(outcome, Outcome::Error | Outcome::Timeout);
        span.end(failed.then_some(outcome.label()));
    }
}

/// The copy's span, under the request's; the copies name it as their parent.
fn shadow_span(job: &mut Job) -> Option<ChildSpan> {
    let trace = job.trace.as_ref()?;
    let span = trace.child(
        "banyan shadow",
        SpanKind::Client,
        vec![
            KeyValue::new("banyan.route", job.figures.name.clone()),
            KeyValue::new("banyan.shadow.to", job.env.pool(job.to).name().to_owned()),
        ],
    );
    for request in [&mut job.shadow_request, &mut job.primary_request] {
        request.headers.insert(TRACEPARENT, span.traceparent());
    }
    Some(span)
}

/// A response read whole, and how long its headers took.
struct Fetched {
    response: Response,
    latency: Duration,
}

enum FetchError {
    Timeout,
    Failed,
    TooLarge,
}

/// The copy's steps: the request body, the copies sent, the primary's answer, the
/// comparison, the counts, and a mismatch's sample.
async fn compare_job(job: &mut Job, figures: &RouteFigures, span: &Option<ChildSpan>) -> Outcome {
    let body = match request_body(job).await {
        Ok(body) => body,
        Err(outcome) => return outcome,
    };
    let (shadow, secondary) = send_copies(job, &body).await;
    let (primary, primary_latency) = match primary_answer(job).await {
        Ok(answer) => answer,
        Err(outcome) => return outcome,
    };
    let shadow = match shadow {
        Ok(s) => s,
        Err(FetchError::TooLarge) => return Outcome::TooLarge,
        Err(FetchError::Timeout) => return Outcome::Timeout,
        Err(FetchError::Failed) => return Outcome::Error,
    };
    let secondary = secondary.and_then(Result::ok);
    observe_latencies(figures, primary_latency, &shadow, secondary.as_ref());
    if shadow.response.status >= 500 && primary.status < 500 {
        return Outcome::Error;
    }
    let rules = &job.spec.rules;
    let comparing = span
        .as_ref()
        .map(|s| s.child("banyan compare", SpanKind::Internal, Vec::new()));
    let mut diffs = compare(&primary, &shadow.response, rules);
    // Fields the new service added where the route lets it grow.
    let new_is_shadow = job.to == job.spec.new;
    if job.to == job.spec.new || job.primary == job.spec.new {
        diffs.retain(|d| !rules.allows_extra(d, new_is_shadow));
    }
    let noise = secondary.map_or_else(Vec::new, |s| compare(&primary, &s.response, rules));
    if let Some(c) = comparing {
        c.set(KeyValue::new(
            "banyan.compare.differences",
            diffs.len() as i64,
        ));
        c.set(KeyValue::new("banyan.compare.match", diffs.is_empty()));
        c.end(None);
    }
    let counted = count(figures, &job.env.settings, &diffs, &noise);
    if diffs.is_empty() {
        return Outcome::Match;
    }
    store(
        job,
        &figures.name,
        &body,
        &primary,
        primary_latency,
        &shadow,
        &diffs,
        &counted,
    );
    Outcome::Mismatch
}

/// The request body's copy, whole.
async fn request_body(job: &mut Job) -> Result<Bytes, Outcome> {
    match (&mut job.request_body).await {
        Ok(Captured::Complete { body, .. }) => Ok(concat(body)),
        Ok(Captured::TooLarge) => Err(Outcome::TooLarge),
        _ => Err(Outcome::Skipped),
    }
}

/// Send the copy to the shadow side and, for noise on a safe method, a second copy to
/// the primary's upstream; both at once.
async fn send_copies(
    job: &Job,
    body: &Bytes,
) -> (
    Result<Fetched, FetchError>,
    Option<Result<Fetched, FetchError>>,
) {
    let env = &job.env;
    let shadow = fetch(
        env.pool(job.to),
        job.shadow_request.clone(),
        body.clone(),
        job.max_body,
    );
    let described = |call: &String| {
        let protobuf = job.spec.rules.protobuf.as_ref();
        protobuf.is_some_and(|p| p.is_idempotent(call))
    };
    let replayable = SAFE_METHODS.contains(&job.primary_request.method)
        || grpc_call(&job.primary_request)
            .is_some_and(|call| job.spec.grpc_idempotent || described(&call));
    let with_secondary = job.spec.noise && replayable;
    let secondary = async {
        if !with_secondary {
            return None;
        }
        let mut request = job.primary_request.clone();
        request
            .headers
            .insert(SHADOW_HEADER, HeaderValue::from_static("secondary"));
        Some(fetch(env.pool(job.primary), request, body.clone(), job.max_body).await)
    };
    tokio::join!(shadow, secondary)
}

/// The primary's answer as the client got it, and how long its headers took.
async fn primary_answer(job: &mut Job) -> Result<(Response, Duration), Outcome> {
    match (&mut job.primary_response).await {
        Ok(Captured::Complete {
            head: Some(head),
            body,
        }) => Ok((
            Response {
                status: head.status.as_u16(),
                headers: head.headers,
                body: concat(body),
                call: grpc_call(&job.primary_request),
            },
            head.at.duration_since(job.started),
        )),
        Ok(Captured::TooLarge) => Err(Outcome::TooLarge),
        _ => Err(Outcome::Skipped),
    }
}

fn observe_latencies(
    figures: &RouteFigures,
    primary: Duration,
    shadow: &Fetched,
    secondary: Option<&Fetched>,
) {
    let observe = |side: &str, d: Duration| {
        metrics::metrics()
            .shadow_duration_seconds
            .with_label_values(&[figures.name.as_str(), side])
            .observe(d.as_secs_f64());
    };
    observe("primary", primary);
    observe("shadow", shadow.latency);
    if let Some(s) = secondary {
        observe("secondary", s.latency);
    }
    let live = &figures.shadow;
    live.primary_latency.record(primary.as_secs_f64(), false);
    live.shadow_latency
        .record(shadow.latency.as_secs_f64(), false);
}

/// Count a comparison in the route's figures and the per-field metric; returns the
/// differing (field, kind) pairs, each once.
fn count<'d>(
    figures: &RouteFigures,
    settings: &ShadowSettings,
    diffs: &'d [Difference],
    noise: &[Difference],
) -> Vec<(&'d str, &'d str)> {
    let raw_fields: Vec<&str> = diffs.iter().map(|d| d.field.as_str()).collect();
    let noise_fields: Vec<&str> = noise.iter().map(|d| d.field.as_str()).collect();
    figures
        .shadow
        .compared(&raw_fields, &noise_fields, settings.max_fields);
    let mut counted: Vec<(&str, &str)> = diffs
        .iter()
        .map(|d| (d.field.as_str(), d.kind.label()))
        .collect();
    counted.sort_unstable();
    counted.dedup();
    for (field, kind) in &counted {
        let label = figures.shadow.field_label(field, settings.max_fields);
        metrics::metrics()
            .shadow_field_diffs_total
            .with_label_values(&[figures.name.as_str(), label.as_str(), kind])
            .inc();
    }
    counted
}

#[allow(clippy::too_many_arguments)]
fn store(
    job: &Job,
    name: &str,
    request_body: &Bytes,
    primary: &Response,
    primary_latency: Duration,
    shadow: &Fetched,
    diffs: &[Difference],
    fields: &[(&str, &str)],
) {
    let Some(store) = job.env.store.as_ref() else {
        metrics::metrics()
            .shadow_samples_dropped_total
            .with_label_values(&[name])
            .inc();
        return;
    };
    let mut rules = job.env.settings.redact.clone();
    rules.paths.extend(job.spec.redact.iter().cloned());
    let redactor = Redactor::new(&rules);
    // Which side answered: in a canary, the primary is legacy or new request by request.
    let response = |r: &Response, upstream: UpstreamId| {
        // A gRPC answer the descriptor set describes is shown as its decoded messages.
        let body = match crate::compare::grpc::decoded(r, &job.spec.rules) {
            Some(Ok(messages)) => {
                let text = serde_json::to_vec(&messages).unwrap_or_default();
                redactor.body(&text, Some("application/json"))
            }
            _ => redactor.body(
                &crate::compare::content::decoded(r),
                content_type(&r.headers),
            ),
        };
        json!({
            "upstream": job.env.pool(upstream).name(),
            "status": r.status,
            "headers": redactor.headers(&r.headers),
            "body": body,
        })
    };
    let req = &job.shadow_request;
    let primary_side = response(primary, job.primary);
    let signature_text = format!(
        "{name}|{}",
        serde_json::to_string(fields).unwrap_or_default()
    );
    let sample = Sample {
        route: name.to_string(),
        signature: format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(signature_text.as_bytes())
        ),
        fields: serde_json::to_string(fields).unwrap_or_default(),
        at: crate::clock::now_unix(),
        request: json!({
            "method": req.method.as_str(),
            "path": redactor.target(req.path_and_query.as_str()),
            "headers": redactor.headers(&job.primary_request.headers),
            "body": request_text(job, &redactor, request_body),
        }),
        shadow: with_line_diff(
            &primary_side,
            response(&shadow.response, job.to),
            primary,
            &shadow.response,
            diffs,
        ),
        primary: primary_side,
        differences: redactor.differences(diffs),
        primary_ms: primary_latency.as_secs_f64() * 1e3,
        shadow_ms: shadow.latency.as_secs_f64() * 1e3,
    };
    if !store.submit(sample) {
        metrics::metrics()
            .shadow_samples_dropped_total
            .with_label_values(&[name])
            .inc();
    }
}

/// The shadow's side of a sample, with a line diff of the two (stored, redacted) bodies
/// when they are text that differs as text: the dashboard shows the changed lines.
fn with_line_diff(
    primary_side: &serde_json::Value,
    mut shadow_side: serde_json::Value,
    primary: &Response,
    shadow: &Response,
    diffs: &[Difference],
) -> serde_json::Value {
    use crate::compare::content::body_kind;
    let text_differs = diffs
        .iter()
        .any(|d| d.path == "body" && d.kind == crate::compare::Kind::Value);
    let is_text = |r: &Response| body_kind(content_type(&r.headers), &r.body).is_text();
    if text_differs && is_text(primary) && is_text(shadow) {
        if let (Some(a), Some(b)) = (primary_side["body"].as_str(), shadow_side["body"].as_str()) {
            let hunks = crate::compare::text::line_diff(a, b);
            shadow_side["line_diff"] = serde_json::to_value(hunks).unwrap_or_default();
        }
    }
    shadow_side
}

/// The request body as a sample shows it: a gRPC call's messages decoded when the
/// descriptor set describes the call.
fn request_text(job: &Job, redactor: &Redactor, body: &Bytes) -> String {
    let request = &job.primary_request;
    let decoded = grpc_call(request).and_then(|call| {
        crate::compare::grpc::decoded_request(body, &request.headers, &call, &job.spec.rules)
    });
    match decoded {
        Some(Ok(messages)) => {
            let text = serde_json::to_vec(&messages).unwrap_or_default();
            redactor.body(&text, Some("application/json"))
        }
        _ => redactor.body(body, content_type(&request.headers)),
    }
}

fn content_type(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Send a copy and read its answer whole (up to `max_body`).
async fn fetch(
    pool: &crate::upstream::Pool,
    outgoing: Outgoing,
    body: Bytes,
    max_body: usize,
) -> Result<Fetched, FetchError> {
    let sent = Instant::now();
    let call = grpc_call(&outgoing);
    let req = outgoing.into_request(pool, body::full(body));
    let resp =
        pool.shadow_client()
            .request(req)
            .await
            .map_err(|e| match UpstreamFailure::of(&e) {
                UpstreamFailure::Timeout => FetchError::Timeout,
                _ => FetchError::Failed,
            })?;
    let latency = sent.elapsed();
    let (mut parts, incoming) = resp.into_parts();
    let collected = Limited::new(incoming, max_body)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                FetchError::TooLarge
            } else {
                FetchError::Failed
            }
        })?;
    // Trailers (a gRPC answer's status) are compared with the headers.
    if let Some(trailers) = collected.trailers() {
        for (name, value) in trailers {
            parts.headers.append(name, value.clone());
        }
    }
    Ok(Fetched {
        response: Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: collected.to_bytes(),
            call,
        },
        latency,
    })
}

/// The gRPC call a request makes (its path), when it is one.
fn grpc_call(request: &Outgoing) -> Option<String> {
    crate::grpc::is_grpc(&request.headers).then(|| request.path_and_query.path().to_string())
}

fn concat(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut buf = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in chunks {
                buf.extend_from_slice(&c);
            }
            buf.freeze()
        }
    }
}
