//! Form bodies compared field by field: `application/x-www-form-urlencoded` and
//! `multipart/form-data` read into a JSON object of field -> value (a repeated field an
//! array, a file part its name, type, size and hash), so the JSON rules and paths apply:
//! `$.csrf_token`, `$.tags[*]`.

use serde_json::{Map, Value};

/// Parts past this many are not read (a form is a handful of fields).
const MAX_PARTS: usize = 1000;

/// The fields of an urlencoded form.
pub fn urlencoded(body: &[u8]) -> Value {
    let mut fields = Map::new();
    for (name, value) in form_urlencoded::parse(body) {
        insert(
            &mut fields,
            name.into_owned(),
            Value::String(value.into_owned()),
        );
    }
    Value::Object(fields)
}

/// Why a multipart body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    #[error("the content type names no boundary")]
    NoBoundary,
    #[error("no part starts with the boundary")]
    NoParts,
    #[error("a part's headers are malformed")]
    Headers,
    #[error("a part is not closed by the boundary")]
    Unclosed,
}

/// The fields of a `multipart/form-data` body, read with the boundary of its own
/// content type (two services never pick the same one).
pub fn multipart(body: &[u8], content_type: &str) -> Result<Value, MultipartError> {
    let boundary = boundary(content_type).ok_or(MultipartError::NoBoundary)?;
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let mut at = finder.find(body).ok_or(MultipartError::NoParts)? + delimiter.len();
    let mut fields = Map::new();
    for _ in 0..MAX_PARTS {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            break;
        }
        let rest = rest.strip_prefix(b"\r\n").ok_or(MultipartError::Headers)?;
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let (head_len, headers) = match httparse::parse_headers(rest, &mut headers) {
            Ok(httparse::Status::Complete((n, h))) => (n, h),
            _ => return Err(MultipartError::Headers),
        };
        let content = &rest[head_len..];
        let end = finder
            .find(content)
            .filter(|&e| e >= 2 && &content[e - 2..e] == b"\r\n")
            .ok_or(MultipartError::Unclosed)?;
        let data = &content[..end - 2];
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let disposition = header("content-disposition").unwrap_or_default();
        let name = parameter(&disposition, "name").unwrap_or_default();
        let filename = parameter(&disposition, "filename");
        let value = match (filename, std::str::from_utf8(data)) {
            (None, Ok(text)) => Value::String(text.to_string()),
            (filename, _) => serde_json::json!({
                "filename": filename,
                "content_type": header("content-type"),
                "size": data.len(),
                "xxh3": format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data)),
            }),
        };
        insert(&mut fields, name, value);
        at += 2 + head_len + end + delimiter.len();
    }
    Ok(Value::Object(fields))
}

/// A repeated field becomes an array of its values, in order.
fn insert(fields: &mut Map<String, Value>, name: String, value: Value) {
    match fields.get_mut(&name) {
        None => {
            fields.insert(name, value);
        }
        Some(Value::Array(values)) => values.push(value),
        Some(first) => {
            let first = first.take();
            fields.insert(name, Value::Array(vec![first, value]));
        }
    }
}

fn boundary(content_type: &str) -> Option<String> {
    parameter(content_type, "boundary").filter(|b| !b.is_empty() && b.len() <= 200)
}

/// A `name=value` or `name="value"` parameter of a header value.
fn parameter(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urlencoded_fields_and_repeats() {
        assert_eq!(
            urlencoded(b"a=1&b=x+y&tag=red&tag=blue&tag=%C3%A9"),
            json!({"a": "1", "b": "x y", "tag": ["red", "blue", "é"]})
        );
    }

    fn multipart_body(boundary: &str) -> Vec<u8> {
        format!(
            "preamble\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nDune\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"cover\"; filename=\"c.png\"\r\nContent-Type: image/png\r\n\r\n\x01\x02\x03\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\na\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nb\r\n--{boundary}--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn multipart_fields_files_and_repeats() {
        let v = multipart(&multipart_body("XyZ"), "multipart/form-data; boundary=XyZ").unwrap();
        assert_eq!(v["title"], "Dune");
        assert_eq!(v["tag"], json!(["a", "b"]));
        assert_eq!(v["cover"]["filename"], "c.png");
        assert_eq!(v["cover"]["size"], 3);
        // Another boundary, the same form.
        let w = multipart(
            &multipart_body("other-1"),
            "multipart/form-data; boundary=\"other-1\"",
        )
        .unwrap();
        assert_eq!(v, w);
    }

    #[test]
    fn malformed_multipart_is_refused() {
        assert_eq!(
            multipart(b"x", "multipart/form-data"),
            Err(MultipartError::NoBoundary)
        );
        assert_eq!(
            multipart(b"x", "multipart/form-data; boundary=b"),
            Err(MultipartError::NoParts)
        );
        let unclosed = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue";
        assert_eq!(
            multipart(unclosed, "multipart/form-data; boundary=b"),
            Err(MultipartError::Unclosed)
        );
    }
}
