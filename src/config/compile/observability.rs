//! `[access_log]`, a route's `access_log = { percent = 10 }`, and `[tracing]`.

use super::Compiler;
use crate::config::raw::{RawAccessLog, RawRouteAccessLog, RawTracing};
use crate::config::{
    AccessLogDestination, AccessLogFormat, AccessLogSettings, OtlpProtocol, TracingSettings,
};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Rotated files kept by default, as logrotate's `rotate 5`.
const DEFAULT_KEEP: usize = 5;

/// Lines queued for the writer by default: a second of a busy instance.
const DEFAULT_BUFFER: usize = 16 * 1024;

/// Spans waiting for export by default (the OpenTelemetry SDK's own default).
const DEFAULT_SPAN_QUEUE: usize = 2048;

/// How long one export to the collector may take.
const DEFAULT_EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Compiler<'_> {
    pub(super) fn access_log(&mut self, raw: &Spanned<RawAccessLog>) -> AccessLogSettings {
        let r = raw.get_ref();
        let destination = match &r.path {
            None => AccessLogDestination::Stdout,
            Some(p) if p.get_ref() == "stdout" => AccessLogDestination::Stdout,
            Some(p) => self.log_file(p),
        };
        let format = match r.format.as_ref().map(|f| (f, f.get_ref().as_str())) {
            None | Some((_, "json")) => AccessLogFormat::Json,
            Some((_, "combined")) => AccessLogFormat::Combined,
            Some((f, other)) => {
                self.error(
                    f.span(),
                    format!("access_log.format {other:?} is not one banyan writes: \"json\" or \"combined\""),
                );
                AccessLogFormat::Json
            }
        };
        if let (Some(size), AccessLogDestination::Stdout) = (&r.max_size, &destination) {
            self.error(
                size.span(),
                "access_log.max_size rotates a file: set access_log.path to one",
            );
        }
        AccessLogSettings {
            destination,
            format,
            max_size: self.bytes(r.max_size.as_ref(), "access_log.max_size"),
            keep: self.count(r.keep.as_ref(), DEFAULT_KEEP, "access_log.keep"),
            buffer: self.count(r.buffer.as_ref(), DEFAULT_BUFFER, "access_log.buffer"),
        }
    }

    /// A file in a directory that exists (the file itself is created when opened).
    fn log_file(&mut self, path: &Spanned<String>) -> AccessLogDestination {
        let file = PathBuf::from(path.get_ref());
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if file.file_name().is_none() || file.is_dir() {
            self.error(
                path.span(),
                format!("access_log.path {:?} names no file", path.get_ref()),
            );
        } else if self.reads_file(path.span()) && !dir.is_dir() {
            self.error(
                path.span(),
                format!(
                    "access_log.path {:?}: its directory {:?} does not exist",
                    path.get_ref(),
                    dir
                ),
            );
        }
        AccessLogDestination::File(file)
    }

    /// A route's share of the access log, 0 to 1.
    pub(super) fn access_log_share(
        &mut self,
        route: &str,
        raw: &Spanned<RawRouteAccessLog>,
    ) -> Option<f64> {
        let percent = &raw.get_ref().percent;
        let p = *percent.get_ref();
        if !(0.0..=100.0).contains(&p) {
            self.error(
                percent.span(),
                format!("route {route:?}: access_log.percent {p} is outside 0-100"),
            );
            return None;
        }
        Some(p / 100.0)
    }

    pub(super) fn tracing(&mut self, raw: &Spanned<RawTracing>) -> TracingSettings {
        let r = raw.get_ref();
        let protocol = match r.protocol.as_ref().map(|p| (p, p.get_ref().as_str())) {
            None | Some((_, "http/protobuf")) => OtlpProtocol::HttpProtobuf,
            Some((_, "grpc")) => OtlpProtocol::Grpc,
            Some((p, other)) => {
                self.error(
                    p.span(),
                    format!("tracing.protocol {other:?} is not one banyan exports: \"http/protobuf\" or \"grpc\""),
                );
                OtlpProtocol::HttpProtobuf
            }
        };
        let endpoint = r.endpoint.get_ref();
        match endpoint.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => {}
            _ => self.error(
                r.endpoint.span(),
                format!("tracing.endpoint {endpoint:?} is not an http:// URL of a collector, such as \"http://127.0.0.1:4318/v1/traces\""),
            ),
        }
        let ratio = match &r.percent {
            None => 1.0,
            Some(p) if (0.0..=100.0).contains(p.get_ref()) => p.get_ref() / 100.0,
            Some(p) => {
                self.error(
                    p.span(),
                    format!("tracing.percent {} is outside 0-100", p.get_ref()),
                );
                1.0
            }
        };
        TracingSettings {
            endpoint: endpoint.clone(),
            protocol,
            ratio,
            service_name: r
                .service_name
                .as_ref()
                .map_or_else(|| "banyan".to_string(), |s| s.get_ref().clone()),
            max_queue: self.count(
                r.max_queue.as_ref(),
                DEFAULT_SPAN_QUEUE,
                "tracing.max_queue",
            ),
            timeout: self.duration(r.timeout.as_ref(), DEFAULT_EXPORT_TIMEOUT),
        }
    }
}
