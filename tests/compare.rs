//! The comparison, table-driven: every difference kind and every rule, on JSON, headers,
//! text and encoded bodies.

#![allow(clippy::unwrap_used)]

use banyan::compare::rules::{Rules, Tolerance};
use banyan::compare::{compare, Kind, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use std::io::Write;

fn json(body: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    Response {
        status: 200,
        headers,
        body: Bytes::from(body.to_string()),
        call: None,
    }
}

fn rules(f: impl FnOnce(Rules) -> Rules) -> Rules {
    f(Rules::default())
}

fn ignore(globs: &[&str]) -> Rules {
    Rules::default()
        .with_ignores(&globs.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
}

type Case = (
    &'static str,
    &'static str,
    &'static str,
    Rules,
    Vec<(&'static str, Kind)>,
);

fn cases() -> Vec<Case> {
    use Kind::*;
    let none = Rules::default;
    vec![
        (
            "equal objects",
            r#"{"a":1,"b":"x"}"#,
            r#"{"b":"x","a":1}"#,
            none(),
            vec![],
        ),
        (
            "number value",
            r#"{"a":1}"#,
            r#"{"a":2}"#,
            none(),
            vec![("$.a", Value)],
        ),
        (
            "string value",
            r#"{"a":"x"}"#,
            r#"{"a":"y"}"#,
            none(),
            vec![("$.a", Value)],
        ),
        (
            "bool value",
            r#"{"a":true}"#,
            r#"{"a":false}"#,
            none(),
            vec![("$.a", Value)],
        ),
        (
            "number vs string",
            r#"{"a":1}"#,
            r#"{"a":"1"}"#,
            none(),
            vec![("$.a", Type)],
        ),
        (
            "object vs array",
            r#"{"a":{}}"#,
            r#"{"a":[]}"#,
            none(),
            vec![("$.a", Type)],
        ),
        (
            "null vs value",
            r#"{"a":null}"#,
            r#"{"a":3}"#,
            none(),
            vec![("$.a", Type)],
        ),
        (
            "missing field",
            r#"{"a":1,"b":2}"#,
            r#"{"a":1}"#,
            none(),
            vec![("$.b", Missing)],
        ),
        (
            "extra field",
            r#"{"a":1}"#,
            r#"{"a":1,"c":3}"#,
            none(),
            vec![("$.c", Extra)],
        ),
        (
            "renamed field",
            r#"{"name":"Lamp"}"#,
            r#"{"title":"Lamp"}"#,
            none(),
            vec![("$.name", Missing), ("$.title", Extra)],
        ),
        (
            "nested value",
            r#"{"a":{"b":{"c":1}}}"#,
            r#"{"a":{"b":{"c":2}}}"#,
            none(),
            vec![("$.a.b.c", Value)],
        ),
        (
            "array element",
            r#"{"a":[1,2,3]}"#,
            r#"{"a":[1,5,3]}"#,
            none(),
            vec![("$.a[1]", Value)],
        ),
        (
            "array longer",
            r#"{"a":[1,2]}"#,
            r#"{"a":[1,2,3]}"#,
            none(),
            vec![("$.a", Length)],
        ),
        (
            "array shorter",
            r#"{"a":[1,2,3]}"#,
            r#"{"a":[1,2]}"#,
            none(),
            vec![("$.a", Length)],
        ),
        (
            "array reordered",
            r#"{"a":[1,2,3]}"#,
            r#"{"a":[3,1,2]}"#,
            none(),
            vec![("$.a", Order)],
        ),
        (
            "objects reordered",
            r#"[{"id":1},{"id":2}]"#,
            r#"[{"id":2},{"id":1}]"#,
            none(),
            vec![("$", Order)],
        ),
        (
            "two swapped among equal elements",
            r#"{"a":[1,2,3,4,5]}"#,
            r#"{"a":[1,4,3,2,5]}"#,
            none(),
            vec![("$.a", Order)],
        ),
        (
            "two changed is not a reordering",
            r#"{"a":[1,2,3,4]}"#,
            r#"{"a":[1,7,3,8]}"#,
            none(),
            vec![("$.a[1]", Value), ("$.a[3]", Value)],
        ),
        (
            "swap plus a change is not a reordering",
            r#"{"a":[1,2,3]}"#,
            r#"{"a":[2,1,4]}"#,
            none(),
            vec![("$.a[0]", Value), ("$.a[1]", Value), ("$.a[2]", Value)],
        ),
        (
            "duplicates reordered",
            r#"{"a":["x","x","y"]}"#,
            r#"{"a":["y","x","x"]}"#,
            none(),
            vec![("$.a", Order)],
        ),
        (
            "same elements, other multiplicity",
            r#"{"a":["x","x","y"]}"#,
            r#"{"a":["y","y","x"]}"#,
            none(),
            vec![("$.a[0]", Value), ("$.a[1]", Value), ("$.a[2]", Value)],
        ),
        (
            "array of objects field",
            r#"{"items":[{"p":1},{"p":2}]}"#,
            r#"{"items":[{"p":1},{"p":3}]}"#,
            none(),
            vec![("$.items[1].p", Value)],
        ),
        ("root scalar", "1", "2", none(), vec![("$", Value)]),
        ("root type", "[]", "{}", none(), vec![("$", Type)]),
        (
            "key with space",
            r#"{"a b":1}"#,
            r#"{"a b":2}"#,
            none(),
            vec![("$[\"a b\"]", Value)],
        ),
        (
            "ignore a field",
            r#"{"a":1,"t":"x"}"#,
            r#"{"a":1,"t":"y"}"#,
            ignore(&["$.t"]),
            vec![],
        ),
        (
            "ignore a missing field",
            r#"{"a":1,"t":"x"}"#,
            r#"{"a":1}"#,
            ignore(&["$.t"]),
            vec![],
        ),
        (
            "ignore an extra field",
            r#"{"a":1}"#,
            r#"{"a":1,"generated_at":"now"}"#,
            ignore(&["$.generated_at"]),
            vec![],
        ),
        (
            "ignore under arrays",
            r#"{"i":[{"u":1,"p":1}]}"#,
            r#"{"i":[{"u":2,"p":1}]}"#,
            ignore(&["$.i[*].u"]),
            vec![],
        ),
        (
            "ignore any depth",
            r#"{"x":{"y":{"ts":1}},"ts":1}"#,
            r#"{"x":{"y":{"ts":2}},"ts":2}"#,
            ignore(&["$..ts"]),
            vec![],
        ),
        (
            "ignore a subtree",
            r#"{"meta":{"a":1,"b":{"c":1}},"k":1}"#,
            r#"{"meta":{"a":2,"b":{"c":2}},"k":1}"#,
            ignore(&["$.meta"]),
            vec![],
        ),
        (
            "ignore one, keep another",
            r#"{"a":1,"b":1}"#,
            r#"{"a":2,"b":2}"#,
            ignore(&["$.a"]),
            vec![("$.b", Value)],
        ),
        (
            "unordered multiset equal",
            r#"{"tags":["a","b","c"]}"#,
            r#"{"tags":["c","a","b"]}"#,
            rules(|mut r| {
                r.unordered.insert("$.tags".into());
                r
            }),
            vec![],
        ),
        (
            "unordered multiset missing",
            r#"{"tags":["a","b","b"]}"#,
            r#"{"tags":["b","a"]}"#,
            rules(|mut r| {
                r.unordered.insert("$.tags".into());
                r
            }),
            vec![("$.tags[2]", Missing)],
        ),
        (
            "unordered multiset extra",
            r#"{"tags":["a"]}"#,
            r#"{"tags":["z","a"]}"#,
            rules(|mut r| {
                r.unordered.insert("$.tags".into());
                r
            }),
            vec![("$.tags[0]", Extra)],
        ),
        (
            "keyed arrays match by id",
            r#"{"items":[{"id":1,"p":5},{"id":2,"p":6}]}"#,
            r#"{"items":[{"id":2,"p":6},{"id":1,"p":5}]}"#,
            rules(|mut r| {
                r.unordered_by.insert("$.items".into(), "id".into());
                r
            }),
            vec![],
        ),
        (
            "keyed arrays compare matched",
            r#"{"items":[{"id":1,"p":5},{"id":2,"p":6}]}"#,
            r#"{"items":[{"id":2,"p":7},{"id":1,"p":5}]}"#,
            rules(|mut r| {
                r.unordered_by.insert("$.items".into(), "id".into());
                r
            }),
            vec![("$.items[1].p", Value)],
        ),
        (
            "keyed arrays missing and extra",
            r#"{"items":[{"id":1},{"id":2}]}"#,
            r#"{"items":[{"id":1},{"id":3}]}"#,
            rules(|mut r| {
                r.unordered_by.insert("$.items".into(), "id".into());
                r
            }),
            vec![("$.items[1]", Missing), ("$.items[1]", Extra)],
        ),
        (
            "keyed arrays with a repeated key match the first",
            r#"{"items":[{"id":1,"p":5}]}"#,
            r#"{"items":[{"id":1,"p":5},{"id":1,"p":9}]}"#,
            rules(|mut r| {
                r.unordered_by.insert("$.items".into(), "id".into());
                r
            }),
            vec![],
        ),
        (
            "keyed arrays: elements without the key are matched among themselves",
            r#"{"items":[{"p":1},{"id":1},{"p":3}]}"#,
            r#"{"items":[{"p":3},{"id":1},{"p":2}]}"#,
            rules(|mut r| {
                r.unordered_by.insert("$.items".into(), "id".into());
                r
            }),
            vec![("$.items[0]", Missing), ("$.items[2]", Extra)],
        ),
        (
            "unordered duplicates matched one for one",
            r#"{"tags":["a","a","b"]}"#,
            r#"{"tags":["a","b","b"]}"#,
            rules(|mut r| {
                r.unordered.insert("$.tags".into());
                r
            }),
            vec![("$.tags[1]", Missing), ("$.tags[2]", Extra)],
        ),
        (
            "absolute tolerance",
            r#"{"price":19.99}"#,
            r#"{"price":19.990000000000002}"#,
            rules(|mut r| {
                r.tolerance = Tolerance {
                    absolute: 0.001,
                    relative: 0.0,
                };
                r
            }),
            vec![],
        ),
        (
            "outside absolute tolerance",
            r#"{"price":19.99}"#,
            r#"{"price":20.5}"#,
            rules(|mut r| {
                r.tolerance = Tolerance {
                    absolute: 0.001,
                    relative: 0.0,
                };
                r
            }),
            vec![("$.price", Value)],
        ),
        (
            "relative tolerance",
            r#"{"n":1000}"#,
            r#"{"n":1004}"#,
            rules(|mut r| {
                r.tolerance = Tolerance {
                    absolute: 0.0,
                    relative: 0.005,
                };
                r
            }),
            vec![],
        ),
        (
            "outside relative tolerance",
            r#"{"n":1000}"#,
            r#"{"n":1010}"#,
            rules(|mut r| {
                r.tolerance = Tolerance {
                    absolute: 0.0,
                    relative: 0.005,
                };
                r
            }),
            vec![("$.n", Value)],
        ),
        (
            "no tolerance by default",
            r#"{"price":19.99}"#,
            r#"{"price":19.990000000000002}"#,
            none(),
            vec![("$.price", Value)],
        ),
        (
            "integer and float equal",
            r#"{"n":2}"#,
            r#"{"n":2.0}"#,
            none(),
            vec![],
        ),
        (
            "null equals missing",
            r#"{"a":1,"b":null}"#,
            r#"{"a":1}"#,
            rules(|mut r| {
                r.null_equals_missing = true;
                r
            }),
            vec![],
        ),
        (
            "missing equals null",
            r#"{"a":1}"#,
            r#"{"a":1,"b":null}"#,
            rules(|mut r| {
                r.null_equals_missing = true;
                r
            }),
            vec![],
        ),
        (
            "null vs missing by default",
            r#"{"a":1,"b":null}"#,
            r#"{"a":1}"#,
            none(),
            vec![("$.b", Missing)],
        ),
        (
            "null vs value even with null rule",
            r#"{"b":null}"#,
            r#"{"b":0}"#,
            rules(|mut r| {
                r.null_equals_missing = true;
                r
            }),
            vec![("$.b", Type)],
        ),
    ]
}

#[test]
fn json_cases() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for (name, a, b, rules, want) in cases {
        let got: Vec<(String, Kind)> = compare(&json(a), &json(b), &rules)
            .into_iter()
            .map(|d| (d.path, d.kind))
            .collect();
        let want: Vec<(String, Kind)> = want.into_iter().map(|(p, k)| (p.to_string(), k)).collect();
        assert_eq!(got, want, "case {name:?}: {a} vs {b}");
    }
}

#[test]
fn folded_fields_and_values_are_recorded() {
    let d = compare(
        &json(r#"{"items":[{"p":1},{"p":2}]}"#),
        &json(r#"{"items":[{"p":1},{"p":3}]}"#),
        &Rules::default(),
    );
    assert_eq!(d[0].path, "$.items[1].p");
    assert_eq!(d[0].field, "$.items[*].p");
    assert_eq!(
        (d[0].primary.as_deref(), d[0].shadow.as_deref()),
        (Some("2"), Some("3"))
    );
}

fn encoded(body: &str, encoding: &str) -> Response {
    let bytes = match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body.as_bytes()).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body.as_bytes()).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(body.as_bytes()).unwrap();
            }
            out
        }
        _ => body.as_bytes().to_vec(),
    };
    let mut r = json("");
    r.body = Bytes::from(bytes);
    if encoding != "identity" {
        r.headers
            .insert("content-encoding", HeaderValue::from_str(encoding).unwrap());
    }
    r
}

#[test]
fn encodings_are_decoded_and_may_differ_between_sides() {
    let body = r#"{"items":[{"id":1,"price":19.99}]}"#;
    let changed = r#"{"items":[{"id":1,"price":18.5}]}"#;
    for a in ["identity", "gzip", "deflate", "br"] {
        for b in ["identity", "gzip", "deflate", "br"] {
            let same = compare(&encoded(body, a), &encoded(body, b), &Rules::default());
            assert!(same.is_empty(), "{a} vs {b}: {same:?}");
            let diff = compare(&encoded(body, a), &encoded(changed, b), &Rules::default());
            let paths: Vec<&str> = diff.iter().map(|d| d.path.as_str()).collect();
            assert_eq!(paths, vec!["$.items[0].price"], "{a} vs {b}");
        }
    }
}

#[test]
fn status_headers_text_and_binary() {
    let mut a = json("{}");
    let mut b = json("{}");
    b.status = 500;
    for (k, v) in [
        ("date", "x"),
        ("server", "a"),
        ("x-request-id", "1"),
        ("etag", "\"1\""),
        ("cache-control", "max-age=60"),
        ("set-cookie", "s=1"),
    ] {
        a.headers.insert(k, HeaderValue::from_static(v));
    }
    for (k, v) in [
        ("date", "y"),
        ("server", "b"),
        ("x-request-id", "2"),
        ("etag", "\"2\""),
        ("cache-control", "no-store"),
        ("x-new", "1"),
    ] {
        b.headers.insert(k, HeaderValue::from_static(v));
    }
    let d = compare(&a, &b, &Rules::default());
    let got: Vec<(&str, Kind)> = d.iter().map(|d| (d.path.as_str(), d.kind)).collect();
    assert_eq!(
        got,
        vec![
            ("status", Kind::Value),
            ("header.cache-control", Kind::Value),
            ("header.set-cookie", Kind::Missing),
            ("header.x-new", Kind::Extra)
        ]
    );
    assert_eq!(
        d[2].primary.as_deref(),
        Some("(set)"),
        "cookie values are never recorded"
    );
    let mut etag = Rules::default();
    etag.compare_headers.insert("etag".into());
    assert!(
        compare(&a, &b, &etag)
            .iter()
            .any(|d| d.path == "header.etag"),
        "etag when asked"
    );
    let ignored = Rules::default()
        .with_ignores(&["header.x-*".into(), "status".into()])
        .unwrap();
    assert!(!compare(&a, &b, &ignored)
        .iter()
        .any(|d| d.path == "header.x-new" || d.path == "status"));

    let text = |s: &str| {
        let mut r = json(s);
        r.headers
            .insert("content-type", HeaderValue::from_static("text/html"));
        r
    };
    let page_a = text("<p>Hello at 10:00:01, id 8812</p>");
    let page_b = text("<p>Hello at 10:00:07, id 1272</p>");
    // HTML is compared by its structure: the paragraph's text differs.
    assert_eq!(
        compare(&page_a, &page_b, &Rules::default())[0].path,
        "html > body > p"
    );
    let norm = Rules::default()
        .with_normalizers(&[
            (r"\d\d:\d\d:\d\d".into(), "TIME".into()),
            (r"id \d+".into(), "id N".into()),
        ])
        .unwrap();
    assert!(compare(&page_a, &page_b, &norm).is_empty());

    let bin = |b: &'static [u8]| {
        let mut r = json("");
        r.headers
            .insert("content-type", HeaderValue::from_static("image/png"));
        r.body = Bytes::from_static(b);
        r
    };
    assert!(compare(&bin(b"\x89PNG1"), &bin(b"\x89PNG1"), &Rules::default()).is_empty());
    let d = compare(&bin(b"\x89PNG1"), &bin(b"\x89PNG22"), &Rules::default());
    assert!(
        d[0].primary
            .as_deref()
            .unwrap()
            .starts_with("5 bytes, xxh3 "),
        "{d:?}"
    );
}

#[test]
fn identical_bodies_never_differ_whatever_their_type() {
    let with_type = |body: &'static str, content_type: &'static str| {
        let mut r = json(body);
        r.headers
            .insert("content-type", HeaderValue::from_static(content_type));
        r
    };
    // Invalid JSON labelled JSON, JSON labelled text, binary: the same bytes on both
    // sides are no body difference (a content-type difference is the header's to report).
    for (a, b) in [
        (
            with_type("{not json", "application/json"),
            with_type("{not json", "application/json"),
        ),
        (
            with_type(r#"{"a":1}"#, "application/json"),
            with_type(r#"{"a":1}"#, "text/plain"),
        ),
        (
            with_type("\u{1}\u{2}", "application/octet-stream"),
            with_type("\u{1}\u{2}", "application/octet-stream"),
        ),
    ] {
        let paths: Vec<String> = compare(&a, &b, &Rules::default())
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert!(paths.iter().all(|p| p != "body"), "{paths:?}");
    }
    // The same raw bytes under different encodings are not the same content.
    let plain = encoded(r#"{"a":1}"#, "identity");
    let mut labelled_gzip = plain.clone();
    labelled_gzip
        .headers
        .insert("content-encoding", HeaderValue::from_static("gzip"));
    let gzipped = encoded(r#"{"a":2}"#, "gzip");
    let mut unlabelled = gzipped.clone();
    unlabelled.headers.remove("content-encoding");
    assert_eq!(
        compare(&gzipped, &unlabelled, &Rules::default())
            .iter()
            .filter(|d| d.path == "body" || d.path.starts_with('$'))
            .count(),
        1
    );
    assert!(
        compare(&plain, &labelled_gzip, &Rules::default())
            .iter()
            .all(|d| d.path != "body" && !d.path.starts_with('$')),
        "undecodable data compares as it is"
    );
}
