//! `[capture]` and a route's `capture = { percent = 1, methods = ["GET"], max_body = "256KiB" }`.

use super::Compiler;
use crate::capture::spec::CaptureSpec;
use crate::config::raw::{ByteSize, RawCapture, RawRouteCapture};
use crate::config::CaptureSettings;
use http::Method;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

const DEFAULT_DIR: &str = "./data/captures";
const DEFAULT_FILE_SIZE: u64 = 64 * 1024 * 1024;
const DEFAULT_FILE_AGE: Duration = Duration::from_secs(3600);
const DEFAULT_TOTAL: u64 = 1024 * 1024 * 1024;
const DEFAULT_QUEUE: usize = 1024;
const DEFAULT_MAX_BODY: usize = 256 * 1024;

impl Compiler<'_> {
    pub(super) fn capture_settings(
        &mut self,
        raw: Option<&Spanned<RawCapture>>,
    ) -> CaptureSettings {
        let empty = RawCapture::default();
        let r = raw.map_or(&empty, |r| r.get_ref());
        CaptureSettings {
            dir: r.dir.as_ref().map_or_else(
                || PathBuf::from(DEFAULT_DIR),
                |d| PathBuf::from(d.get_ref()),
            ),
            max_file_size: self
                .size(r.max_file_size.as_ref(), "capture.max_file_size")
                .unwrap_or(DEFAULT_FILE_SIZE),
            max_file_age: self.duration(r.max_file_age.as_ref(), DEFAULT_FILE_AGE),
            max_total: self
                .size(r.max_total.as_ref(), "capture.max_total")
                .unwrap_or(DEFAULT_TOTAL),
            queue: self.count(r.queue.as_ref(), DEFAULT_QUEUE, "capture.queue"),
        }
    }

    pub(super) fn route_capture(
        &mut self,
        route: &str,
        raw: &Spanned<RawRouteCapture>,
    ) -> Option<CaptureSpec> {
        let r = raw.get_ref();
        let p = *r.percent.get_ref();
        if !(0.0..=100.0).contains(&p) {
            self.error(
                r.percent.span(),
                format!("route {route:?}: capture.percent {p} is outside 0-100"),
            );
            return None;
        }
        let methods = match &r.methods {
            None => vec![Method::GET, Method::HEAD],
            Some(list) => list
                .iter()
                .filter_map(|m| match Method::from_bytes(m.get_ref().as_bytes()) {
                    Ok(method) if m.get_ref().chars().all(|c| c.is_ascii_uppercase()) => Some(method),
                    _ => {
                        self.error(
                            m.span(),
                            format!("route {route:?}: capture method {:?} is not an HTTP method in upper case", m.get_ref()),
                        );
                        None
                    }
                })
                .collect(),
        };
        let max_body = self
            .size(
                r.max_body.as_ref(),
                &format!("route {route:?}: capture.max_body"),
            )
            .map_or(DEFAULT_MAX_BODY, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
        Some(CaptureSpec {
            share: p / 100.0,
            methods,
            max_body,
        })
    }

    /// A size in bytes: a number, or text with a unit (`"256KiB"`).
    fn size(&mut self, raw: Option<&Spanned<ByteSize>>, what: &str) -> Option<u64> {
        let raw = raw?;
        let parsed = match raw.get_ref() {
            ByteSize::Bytes(n) => u64::try_from(*n).ok().filter(|n| *n > 0),
            ByteSize::Text(t) => parse_size(t),
        };
        if parsed.is_none() {
            self.error(
                raw.span(),
                format!("{what} must be a size above 0: a number of bytes, or \"256KiB\", \"64MiB\", \"1GiB\""),
            );
        }
        parsed
    }
}

/// `"256KiB"`, `"64 MiB"`, `"1GB"`, `"512"`: bytes; None for anything else or zero.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor).filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256KiB"), Some(256 * 1024));
        assert_eq!(parse_size("64 MiB"), Some(64 << 20));
        assert_eq!(parse_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("KiB"), None);
    }
}
