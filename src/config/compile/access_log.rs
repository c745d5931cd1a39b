//! `[access_log]` and a route's `access_log = { percent = 10 }`.

use super::Compiler;
use crate::config::raw::{RawAccessLog, RawRouteAccessLog};
use crate::config::{AccessLogDestination, AccessLogFormat, AccessLogSettings};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Rotated files kept by default, as logrotate's `rotate 5`.
const DEFAULT_KEEP: usize = 5;

/// Lines queued for the writer by default: a second of a busy instance.
const DEFAULT_BUFFER: usize = 16 * 1024;

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
}
