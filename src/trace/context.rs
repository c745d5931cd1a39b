//! The `traceparent` header (W3C Trace Context, level 1):
//! `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.

use http::HeaderMap;

pub const TRACEPARENT: &str = "traceparent";

/// A valid `traceparent`'s ids and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub sampled: bool,
}

/// The request's `traceparent`, when it has exactly one that is valid. An invalid one
/// (all-zero ids, version ff, wrong lengths or case) is ignored, as the spec says.
pub fn parent(headers: &HeaderMap) -> Option<TraceParent> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse(value.as_bytes())
}

pub fn parse(text: &[u8]) -> Option<TraceParent> {
    // version "-" trace-id "-" parent-id "-" flags; a future version may add fields
    // after a further "-".
    if text.len() < 55 || text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
        return None;
    }
    let version = hex::<1>(&text[0..2])?[0];
    if version == 0xff
        || (version == 0 && text.len() != 55)
        || (text.len() > 55 && text[55] != b'-')
    {
        return None;
    }
    let trace_id = hex::<16>(&text[3..35])?;
    let parent_id = hex::<8>(&text[36..52])?;
    let flags = hex::<1>(&text[53..55])?[0];
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        sampled: flags & 1 == 1,
    })
}

/// Lower-case hex digits only, as the spec requires.
fn hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_the_specs_example() {
        let p = parse(SPEC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(p.trace_id[..2], [0x4b, 0xf9]);
        assert_eq!(p.trace_id[15], 0x36);
        assert_eq!(
            p.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(p.sampled);
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
        }
        // A later version may carry more fields.
        assert!(parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more").is_some());
    }

    #[test]
    fn two_traceparents_are_none() {
        let mut h = HeaderMap::new();
        h.append(TRACEPARENT, SPEC_EXAMPLE.parse().unwrap());
        assert!(parent(&h).is_some());
        h.append(TRACEPARENT, SPEC_EXAMPLE.parse().unwrap());
        assert_eq!(parent(&h), None);
    }
}
