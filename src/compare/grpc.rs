//! gRPC answers compared: the length-prefixed messages of a unary call's body, decoded
//! with the route's descriptor set (`compare.protobuf`) into JSON under proto3's rules,
//! then compared by the JSON walk, so that a difference names its field
//! (`$.items[*].price`) and every compare rule applies. Without a descriptor set, or for a
//! method it does not know, the messages are compared byte for byte.

use super::protobuf::to_json;
use super::rules::Rules;
use super::{json, short, Difference, Kind, Response};
use std::io::Read;

/// The largest decompressed message compared.
const MAX_MESSAGE: u64 = 16 * 1024 * 1024;

/// The messages of a gRPC body: each a compressed flag, a 4-byte length and its bytes,
/// decompressed with the `grpc-encoding` named. None when the body is not such a
/// sequence (or a compressed message cannot be read).
pub fn messages(body: &[u8], encoding: Option<&str>) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let head = rest.get(..5)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let message = rest.get(5..5 + len)?;
        rest = &rest[5 + len..];
        out.push(match head[0] {
            0 => message.to_vec(),
            1 => decompress(message, encoding?)?,
            _ => return None,
        });
    }
    Some(out)
}

fn decompress(message: &[u8], encoding: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let read = match encoding {
        "gzip" => flate2::read::GzDecoder::new(message)
            .take(MAX_MESSAGE)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(message)
            .take(MAX_MESSAGE)
            .read_to_end(&mut out),
        _ => return None,
    };
    read.ok().map(|_| out)
}

fn messages_of(r: &Response) -> Option<Vec<Vec<u8>>> {
    messages(&r.body, encoding(&r.headers))
}

fn encoding(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(crate::grpc::ENCODING)
        .and_then(|v| v.to_str().ok())
}

/// The answer's messages as JSON, when the route's descriptor set describes its call:
/// one message (a unary answer) as itself, several as an array. For samples too.
pub fn decoded(r: &Response, rules: &Rules) -> Option<Result<serde_json::Value, String>> {
    let desc = rules
        .protobuf
        .as_ref()?
        .method(r.call.as_deref()?)?
        .output();
    Some(as_json(&desc, messages_of(r)))
}

/// A call's request messages as JSON (by the method's input type), for samples.
pub fn decoded_request(
    body: &[u8],
    headers: &http::HeaderMap,
    call: &str,
    rules: &Rules,
) -> Option<Result<serde_json::Value, String>> {
    let desc = rules.protobuf.as_ref()?.method(call)?.input();
    Some(as_json(&desc, messages(body, encoding(headers))))
}

/// Messages as JSON: one as itself, several as an array.
fn as_json(
    desc: &prost_reflect::MessageDescriptor,
    messages: Option<Vec<Vec<u8>>>,
) -> Result<serde_json::Value, String> {
    let messages = messages.ok_or("the body is not a sequence of gRPC messages")?;
    let mut values = messages
        .iter()
        .map(|m| to_json(desc, m))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(if values.len() == 1 {
        values.remove(0)
    } else {
        serde_json::Value::Array(values)
    })
}

/// Compare two gRPC answers' bodies.
pub fn compare(primary: &Response, shadow: &Response, rules: &Rules, out: &mut Vec<Difference>) {
    match (decoded(primary, rules), decoded(shadow, rules)) {
        (Some(Ok(a)), Some(Ok(b))) => return json::diff(&a, &b, rules, out),
        (Some(a), Some(b)) if a.is_ok() != b.is_ok() => {
            let describe = |d: Result<serde_json::Value, String>| match d {
                Ok(v) => short(&v.to_string()),
                Err(e) => format!("not a message: {e}"),
            };
            return out.push(Difference {
                path: "body".into(),
                field: "body".into(),
                kind: Kind::Type,
                primary: Some(describe(a)),
                shadow: Some(describe(b)),
            });
        }
        _ => {}
    }
    // No descriptor for this call: the messages byte for byte (each side decompressed).
    let (a, b) = match (messages_of(primary), messages_of(shadow)) {
        (Some(a), Some(b)) => (a.concat(), b.concat()),
        _ => (primary.body.to_vec(), shadow.body.to_vec()),
    };
    if a != b {
        out.push(super::bytes_differ(&a, &b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::protobuf::Protobuf;
    use prost_reflect::prost::Message;
    use prost_reflect::prost_types::{
        field_descriptor_proto::{Label, Type},
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
        MethodDescriptorProto, ServiceDescriptorProto,
    };

    fn field(name: &str, number: i32, ty: Type, label: Label) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            r#type: Some(ty.into()),
            label: Some(label.into()),
            ..Default::default()
        }
    }

    /// `shop.Items/Get` answering `Item { int64 id = 1; string name = 2; repeated
    /// int64 prices = 3; }`, built as protoc would describe it.
    fn descriptor_set() -> Vec<u8> {
        let item = DescriptorProto {
            name: Some("Item".into()),
            field: vec![
                field("id", 1, Type::Int64, Label::Optional),
                field("name", 2, Type::String, Label::Optional),
                field("prices", 3, Type::Int64, Label::Repeated),
            ],
            ..Default::default()
        };
        let file = FileDescriptorProto {
            name: Some("shop.proto".into()),
            package: Some("shop".into()),
            syntax: Some("proto3".into()),
            message_type: vec![item],
            service: vec![ServiceDescriptorProto {
                name: Some("Items".into()),
                method: vec![MethodDescriptorProto {
                    name: Some("Get".into()),
                    input_type: Some(".shop.Item".into()),
                    output_type: Some(".shop.Item".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        FileDescriptorSet { file: vec![file] }.encode_to_vec()
    }

    /// A gRPC body of one message: fields as (number, wire bytes after the tag).
    fn body(fields: &[u8]) -> bytes::Bytes {
        let mut out = vec![0];
        out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
        out.extend_from_slice(fields);
        out.into()
    }

    fn answer(fields: &[u8]) -> Response {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        Response {
            status: 200,
            headers,
            body: body(fields),
            call: Some("/shop.Items/Get".into()),
        }
    }

    fn rules() -> Rules {
        let mut rules = Rules::default();
        rules.protobuf = Some(Protobuf::decode(&descriptor_set()).unwrap());
        rules
    }

    #[test]
    fn differences_name_the_field() {
        // id = 7, name = "a", prices = [5, 6] (packed) against prices = [5, 9].
        let a = answer(&[0x08, 7, 0x12, 1, b'a', 0x1a, 2, 5, 6]);
        let b = answer(&[0x08, 7, 0x12, 1, b'a', 0x1a, 2, 5, 9]);
        let mut out = Vec::new();
        compare(&a, &b, &rules(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].path, "$.prices[1]");
        assert_eq!(out[0].field, "$.prices[*]");
        assert_eq!(
            (out[0].primary.as_deref(), out[0].shadow.as_deref()),
            (Some("6"), Some("9"))
        );
    }

    #[test]
    fn a_default_value_equals_an_absent_field() {
        // id = 0 written out on one side, left out on the other.
        let a = answer(&[0x08, 0, 0x12, 1, b'a']);
        let b = answer(&[0x12, 1, b'a']);
        let mut out = Vec::new();
        compare(&a, &b, &rules(), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn unknown_fields_are_differences_of_their_own() {
        // Field 9 (varint 1) is in no descriptor.
        let a = answer(&[0x08, 7]);
        let b = answer(&[0x08, 7, 0x48, 1]);
        let mut out = Vec::new();
        compare(&a, &b, &rules(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].path.as_str(), out[0].kind),
            ("$[\"#9\"]", Kind::Extra)
        );
    }

    #[test]
    fn without_a_descriptor_messages_compare_as_bytes() {
        let a = answer(&[0x08, 7]);
        let b = answer(&[0x08, 8]);
        let mut out = Vec::new();
        compare(&a, &b, &Rules::default(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, "body");
        let mut out = Vec::new();
        compare(&a, &a.clone(), &Rules::default(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn compressed_messages_are_read() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[0x08, 7]).unwrap();
        let packed = gz.finish().unwrap();
        let mut framed = vec![1];
        framed.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        framed.extend_from_slice(&packed);
        assert_eq!(messages(&framed, Some("gzip")), Some(vec![vec![0x08, 7]]));
        assert_eq!(
            messages(&framed, None),
            None,
            "compressed, but no grpc-encoding"
        );
        assert_eq!(messages(&[0, 0, 0, 0, 9, 1], None), None, "truncated");
    }
}
