//! The access log's glue: what a request contributes to its entry, gathered as it runs,
//! and the entry handed to the writer when the answer has ended. Nothing here runs when
//! no access log is configured.

use super::error::ERROR_HEADER;
use super::forward::Trail;
use super::headers::{self, X_REQUEST_ID};
use super::Client;
use crate::access::{self, entry::Entry};
use crate::body::tap::End;
use crate::body::ResponseBody;
use crate::inbound::client_body::Verdict;
use crate::routing::{Action, RouteId, UpstreamId};
use crate::snapshot::Snapshot;
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Method, Request, Response, Version};
use http_body::Body as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// A request's access-log facts, filled in as the request runs.
pub struct Record {
    time: SystemTime,
    client: IpAddr,
    method: Method,
    target: Option<PathAndQuery>,
    version: Version,
    host: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    trace_id: Option<[u8; 16]>,
    pub route: Option<RouteId>,
    pub request_id: Option<HeaderValue>,
    /// `copied` or `not_copied` when the route shadows this request.
    pub shadow: Option<&'static str>,
    pub trail: Trail,
    /// Who answered; None when banyan answered before choosing.
    pub answered_by: Option<UpstreamId>,
    pub fell_back: bool,
    pub verdict: Verdict,
}

impl Record {
    /// The request's record, when the snapshot writes an access log.
    pub fn begin<B>(
        snap: &Snapshot,
        client: Client,
        req: &Request<B>,
        trace_id: Option<[u8; 16]>,
    ) -> Option<Box<Record>> {
        snap.access_log.as_ref()?;
        let h = req.headers();
        let trust = snap.config.server.trust_forwarded_headers;
        // Boxed: the request's future carries it across every await, logged or not.
        Some(Box::new(Record {
            time: SystemTime::now(),
            client: headers::client_ip(h, client.addr.ip(), trust),
            method: req.method().clone(),
            target: req.uri().path_and_query().cloned(),
            version: req.version(),
            host: h
                .get(header::HOST)
                .cloned()
                .or_else(|| HeaderValue::from_str(req.uri().authority()?.as_str()).ok()),
            user_agent: h.get(header::USER_AGENT).cloned(),
            referer: h.get(header::REFERER).cloned(),
            trace_id,
            route: None,
            request_id: h.get(X_REQUEST_ID).cloned(),
            shadow: None,
            trail: Trail::default(),
            answered_by: None,
            fell_back: false,
            verdict: Verdict::default(),
        }))
    }

    /// The request id banyan sent upstream (the client's, or the one it made).
    pub fn sent_headers(&mut self, sent: &http::HeaderMap) {
        if self.request_id.is_none() {
            self.request_id = sent.get(X_REQUEST_ID).cloned();
        }
    }

    /// Hand the entry to the writer when the answer ends (its bytes counted), or now for
    /// an answer held in memory; unless the route's sample leaves it out.
    pub fn finish(
        self: Box<Self>,
        snap: &Arc<Snapshot>,
        started: Instant,
        resp: &mut Response<ResponseBody>,
    ) {
        let error = resp.headers().get(ERROR_HEADER).cloned();
        let status = resp.status();
        let share = self
            .route
            .and_then(|r| snap.config.features(r).access_log_share);
        if !access::sampled(share, status.is_server_error() || error.is_some()) {
            return;
        }
        let verdict = self.verdict.clone();
        let mut entry = self.entry(snap, status.as_u16(), error, started);
        let snap = snap.clone();
        match resp.body_mut() {
            http_body_util::Either::Left(tap) => tap.watch(move |end, bytes| {
                entry.bytes_out = bytes;
                entry.bytes_in = verdict.bytes_read();
                entry.duration = started.elapsed();
                entry.incomplete = matches!(end, End::Failed | End::Dropped);
                push(&snap, entry);
            }),
            http_body_util::Either::Right(full) => {
                entry.bytes_out = full.size_hint().exact().unwrap_or(0);
                entry.bytes_in = verdict.bytes_read();
                push(&snap, entry);
            }
        }
    }

    /// The entry as far as the request knows it; the answer's bytes come later.
    fn entry(
        self: Box<Self>,
        snap: &Arc<Snapshot>,
        status: u16,
        error: Option<HeaderValue>,
        started: Instant,
    ) -> Entry {
        let (split, stage) = self.route_facts(snap);
        Entry {
            names: snap.clone(),
            time: self.time,
            client: self.client,
            method: self.method,
            target: self.target,
            version: self.version,
            host: self.host,
            user_agent: self.user_agent,
            referer: self.referer,
            status,
            bytes_in: self.verdict.bytes_read(),
            bytes_out: 0,
            duration: started.elapsed(),
            route: self.route,
            upstream: self.answered_by,
            endpoint: self.trail.endpoint.filter(|_| self.answered_by.is_some()),
            split,
            stage,
            shadow: self.shadow,
            retried: self.trail.retried,
            fell_back: self.fell_back,
            request_id: self.request_id,
            trace_id: self.trace_id,
            error,
            incomplete: false,
        }
    }

    /// The split side and the migration stage of the request's route.
    fn route_facts(&self, snap: &Snapshot) -> (Option<&'static str>, Option<&'static str>) {
        let Some(id) = self.route else {
            return (None, None);
        };
        let split = match (&snap.config.routes.route(id).action, self.answered_by) {
            (Action::Split(s), Some(u)) if !self.fell_back => {
                Some(if u == s.to { "new" } else { "legacy" })
            }
            _ => None,
        };
        let stage = snap
            .config
            .features(id)
            .migration
            .as_ref()
            .map(|m| m.stage.label());
        (split, stage)
    }
}

/// A request's record until its answer begins. Dropped before that (the client left and
/// hyper dropped the request), it is written with status 499, as nginx writes it.
pub struct Unanswered<'a> {
    record: Option<Box<Record>>,
    snap: &'a Arc<Snapshot>,
    started: Instant,
}

/// nginx's status for a request whose client closed the connection first.
const CLIENT_CLOSED: u16 = 499;

impl<'a> Unanswered<'a> {
    pub fn new(record: Option<Box<Record>>, snap: &'a Arc<Snapshot>, started: Instant) -> Self {
        Unanswered {
            record,
            snap,
            started,
        }
    }

    pub fn get(&mut self) -> Option<&mut Record> {
        self.record.as_deref_mut()
    }

    /// The answer has begun: the record is its own from here.
    pub fn answered(mut self) -> Option<Box<Record>> {
        self.record.take()
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        let Some(record) = self.record.take() else {
            return;
        };
        let share = record
            .route
            .and_then(|r| self.snap.config.features(r).access_log_share);
        if !access::sampled(share, false) {
            return;
        }
        let mut entry = record.entry(self.snap, CLIENT_CLOSED, None, self.started);
        entry.incomplete = true;
        push(self.snap, entry);
    }
}

fn push(snap: &Snapshot, entry: Entry) {
    if let Some(log) = &snap.access_log {
        log.push(entry);
    }
}
