//! Path normalization before routing (`server.path_normalization = "standard"`), as
//! Envoy's `normalize_path` and `merge_slashes`: `/api/%61dmin`, `//api/admin` and
//! `/x/../api/admin` all become `/api/admin`, so they meet the route for `/api/admin`
//! instead of slipping past it to the default upstream. Pure.

use std::borrow::Cow;

/// How paths are prepared for matching and forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathNormalization {
    /// Matched and forwarded as the client sent them (the default).
    #[default]
    None,
    /// Unreserved characters decoded, percent-encodings in upper case, slashes merged,
    /// dot segments resolved.
    Standard { encoded_slash: EncodedSlash },
}

/// What an encoded slash (`%2F`) in a path does under standard normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodedSlash {
    /// Left encoded: not a segment separator, forwarded as `%2F`.
    #[default]
    Keep,
    /// The request is refused (400): a backend may decode it into a separator.
    Refuse,
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

impl PathNormalization {
    /// The path to match and forward: borrowed when it is already normal.
    pub fn apply<'a>(&self, path: &'a str) -> Result<Cow<'a, str>, Refused> {
        let PathNormalization::Standard { encoded_slash } = *self else {
            return Ok(Cow::Borrowed(path));
        };
        // `*` (OPTIONS) and CONNECT's authority form have no path to normalize.
        if !path.starts_with('/') {
            return Ok(Cow::Borrowed(path));
        }
        if encoded_slash == EncodedSlash::Refuse && has_encoded_slash(path) {
            return Err(Refused("the path holds an encoded slash (%2F)"));
        }
        let decoded = decode_unreserved(path);
        let merged = merge_slashes(&decoded);
        let resolved = remove_dot_segments(&merged);
        Ok(if resolved == path {
            Cow::Borrowed(path)
        } else {
            Cow::Owned(resolved)
        })
    }
}

fn has_encoded_slash(path: &str) -> bool {
    path.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'2' && (w[2] == b'f' || w[2] == b'F'))
}

/// RFC 3986 6.2.2.2: percent-encoded unreserved characters decoded; the other
/// encodings kept, with their hex digits in upper case (6.2.2.1).
fn decode_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c as char);
                } else {
                    out.push('%');
                    out.push(bytes[i + 1].to_ascii_uppercase() as char);
                    out.push(bytes[i + 2].to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        // The path is ASCII (http's Uri admits nothing else), so bytes are chars.
        out.push(bytes[i] as char);
        i += 1;
    }
    Cow::Owned(out)
}

fn merge_slashes(path: &str) -> Cow<'_, str> {
    if !path.contains("//") {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// RFC 3986 5.2.4, on a path that starts with `/`: `.` segments dropped, `..` segments
/// take the one before them away (never above the root).
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, segment) in parts.iter().enumerate() {
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                segments.pop();
                trailing_slash = i == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard(slash: EncodedSlash) -> PathNormalization {
        PathNormalization::Standard {
            encoded_slash: slash,
        }
    }

    #[test]
    fn the_corpus() {
        let n = standard(EncodedSlash::Keep);
        for (given, expected) in [
            ("/api/admin", "/api/admin"),
            ("/api/%61dmin", "/api/admin"),
            ("/api/%61%64%6D%69%6e", "/api/admin"),
            ("//api/admin", "/api/admin"),
            ("/api//admin", "/api/admin"),
            ("/x/../api/admin", "/api/admin"),
            ("/./api/./admin", "/api/admin"),
            ("/api/admin/..", "/api/"),
            ("/api/admin/.", "/api/admin/"),
            ("/../../api/admin", "/api/admin"),
            ("/x/%2e%2e/api/admin", "/api/admin"),
            ("/x/.%2E/api/admin", "/api/admin"),
            ("/a/%2fb", "/a/%2Fb"),
            ("/a%20b", "/a%20b"),
            ("/a%zzb", "/a%zzb"),
            ("/a%4", "/a%4"),
            ("/", "/"),
            ("/..", "/"),
            ("/api/", "/api/"),
        ] {
            assert_eq!(n.apply(given).expect(given), expected, "{given}");
        }
        assert!(matches!(n.apply("/api/admin"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn encoded_slashes_by_setting() {
        let refuse = standard(EncodedSlash::Refuse);
        assert!(refuse.apply("/a%2Fb").is_err());
        assert!(refuse.apply("/a%2fb").is_err());
        assert!(refuse.apply("/a/b").is_ok());
        assert_eq!(
            PathNormalization::None.apply("//x/../%61").expect("raw"),
            "//x/../%61"
        );
    }
}
