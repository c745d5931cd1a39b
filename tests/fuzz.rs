//! Property-based fuzzing (proptest) of the parts that take untrusted or hand-written
//! input: the config parser and validator, the route matcher, the comparators (JSON,
//! XML, HTML) and the strict HTTP/1 framing. `make test` runs a short pass (proptest's 256 cases); `make fuzz` sets
//! PROPTEST_CASES much higher. Failures are shrunk to a minimal input and saved under
//! proptest-regressions/ to be replayed first on the next run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use banyan::compare::rules::Rules;
use banyan::compare::{compare, Response};
use banyan::config::{Config, ConfigError, Source};
use banyan::routing::RequestView;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use serde_json::Value;

// ---- config parser and validator ----

/// Route definitions from pieces that are often, but not always, valid.
fn route_toml() -> impl Strategy<Value = String> {
    let name = prop_oneof!["[a-z][a-z0-9-]{0,8}", ".{0,6}"];
    let path = prop_oneof![
        "/[a-z{}*/]{0,12}".prop_map(|p| format!("{{ prefix = {p:?} }}")),
        "/[a-z{}/]{0,12}".prop_map(|p| format!("{{ template = {p:?} }}")),
        "/[a-z/]{0,8}".prop_map(|p| format!("{{ exact = {p:?} }}")),
        "[a-z/()\\[\\]+*.?\\\\]{0,10}".prop_map(|p| format!("{{ regex = {p:?} }}")),
    ];
    let upstream = prop_oneof![Just("legacy"), Just("items"), Just("ghost")];
    let action = prop_oneof![
        upstream.clone().prop_map(|u| format!("action = \"forward\"\nupstream = \"{u}\"")),
        (upstream.clone(), -10.0f64..120.0).prop_map(|(u, p)| format!(
            "action = \"split\"\nsplit = {{ to = \"{u}\", percent = {p}, key = {{ header = \"x-user\" }} }}"
        )),
        upstream.clone().prop_map(|u| format!("action = \"shadow\"\nshadow = {{ to = \"{u}\" }}")),
        (
            prop_oneof![Just("legacy"), Just("shadow"), Just("canary"), Just("new"), Just("retired"), Just("beta")],
            upstream,
            prop::collection::vec(-10.0f64..120.0, 0..5),
        )
            .prop_map(|(stage, u, steps)| {
                let steps: Vec<String> = steps.iter().map(|s| format!("{s:.1}")).collect();
                format!(
                    "action = \"migrate\"\nmigration = {{ stage = \"{stage}\", new = \"{u}\" }}\nramp = {{ steps = [{}] }}",
                    steps.join(", ")
                )
            }),
    ];
    let extra = prop_oneof![
        Just(String::new()),
        (-5i64..5000).prop_map(|n| format!("max_body = {n}")),
        (-1.0f64..2.0, -3i64..30).prop_map(|(r, m)| format!(
            "circuit_breaker = {{ error_rate = {r}, min_requests = {m} }}"
        )),
        Just("fallback = \"legacy\"".to_string()),
        "[a-z\"={} ]{0,12}".prop_map(|junk| format!("junk{junk}")),
    ];
    (name, path, action, extra).prop_map(|(name, path, action, extra)| {
        format!("[[routes]]\nname = {name:?}\nmatch.path = {path}\n{action}\n{extra}\n")
    })
}

fn config_toml() -> impl Strategy<Value = String> {
    let server = prop_oneof![
        Just(String::new()),
        (-10i64..100_000).prop_map(|n| format!("[server]\nmax_header_bytes = {n}\n")),
        "[0-9a-z \"]{0,10}".prop_map(|d| format!("[server]\nidle_timeout = \"{d}\"\n")),
    ];
    let outlier = prop_oneof![
        Just(String::new()),
        (-2i64..10, -1i64..150).prop_map(|(c, p)| format!(
            "outlier_detection = {{ consecutive_failures = {c}, max_ejected_percent = {p} }}\n"
        )),
        (-3i64..9).prop_map(|r| format!("retries = {r}\n")),
    ];
    (server, outlier, prop::collection::vec(route_toml(), 0..5)).prop_map(
        |(server, outlier, routes)| {
            format!(
                "default = \"legacy\"\n{server}[upstreams.legacy]\nendpoints = [\"http://127.0.0.1:8001\"]\n{outlier}\
                 [upstreams.items]\nendpoints = [\"http://127.0.0.1:8002\"]\n\n{}",
                routes.concat()
            )
        },
    )
}

/// Every error points into the file: a line and column that exist.
fn errors_are_located(text: &str, result: Result<Config, ConfigError>) {
    let Err(ConfigError::Invalid(errors)) = result else {
        return;
    };
    assert!(!errors.is_empty());
    let lines = text.lines().count().max(1);
    for e in errors {
        let rendered = e.with_level("error");
        let place = rendered
            .strip_prefix("fuzz.toml:")
            .unwrap_or_else(|| panic!("no file name: {rendered}"));
        let mut parts = place.splitn(3, ':');
        let line: usize = parts
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{rendered}"));
        let column: usize = parts
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{rendered}"));
        assert!(
            line >= 1 && line <= lines + 1,
            "line {line} of {lines}: {rendered}"
        );
        assert!(column >= 1, "{rendered}");
    }
}

proptest! {
    #[test]
    fn arbitrary_text_is_refused_with_a_place_never_a_panic(text in "\\PC{0,200}") {
        let result = Config::parse(&Source::new("fuzz.toml", text.clone()));
        errors_are_located(&text, result);
    }

    #[test]
    fn generated_configs_compile_or_are_refused_with_a_place(text in config_toml()) {
        let result = Config::parse(&Source::new("fuzz.toml", text.clone()));
        errors_are_located(&text, result);
    }
}

// ---- route matcher ----

fn path_condition() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("a"),
        Just("b"),
        Just("items"),
        Just("{id}"),
        Just("x.json")
    ];
    (0usize..4, prop::collection::vec(seg, 0..4), any::<bool>()).prop_map(|(kind, segs, slash)| {
        let mut p = format!("/{}", segs.join("/"));
        if slash && !p.ends_with('/') {
            p.push('/');
        }
        match kind {
            0 => format!("{{ prefix = {:?} }}", p.replace("{id}", "c")),
            1 => format!("{{ exact = {:?} }}", p.replace("{id}", "c")),
            2 => format!("{{ template = {p:?} }}"),
            _ => format!(
                "{{ regex = {:?} }}",
                format!("{}.*", p.replace("{id}", "[a-z]+"))
            ),
        }
    })
}

fn request_path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("a"),
        Just("b"),
        Just("c"),
        Just("items"),
        Just("x.json"),
        Just("")
    ];
    prop::collection::vec(seg, 0..5).prop_map(|segs| format!("/{}", segs.join("/")))
}

proptest! {
    /// The path index is an optimisation: it must pick exactly the route a plain scan
    /// in config order picks.
    #[test]
    fn the_indexed_matcher_agrees_with_a_linear_scan(
        conditions in prop::collection::vec((path_condition(), prop::option::of(Just("GET"))), 1..12),
        paths in prop::collection::vec(request_path(), 1..20),
        method in prop_oneof![Just(Method::GET), Just(Method::POST)],
    ) {
        let mut text = String::from(
            "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://127.0.0.1:8001\"]\n",
        );
        for (i, (path, methods)) in conditions.iter().enumerate() {
            text.push_str(&format!(
                "[[routes]]\nname = \"r{i}\"\nmatch.path = {path}\n{}action = \"forward\"\nupstream = \"legacy\"\n",
                methods.map(|m| format!("match.methods = [\"{m}\"]\n")).unwrap_or_default()
            ));
        }
        let config = match Config::parse(&Source::new("m.toml", text)) {
            Ok(c) => c,
            // A condition the validator refuses (such as a template it cannot parse).
            Err(_) => return Ok(()),
        };
        let headers = HeaderMap::new();
        for path in &paths {
            let uri: http::Uri = path.parse().unwrap();
            let view = RequestView::new(&method, &uri, &headers, [127, 0, 0, 1].into());
            let indexed = config.routes.find(&view).map(|id| id.index());
            let scanned = config
                .routes
                .routes()
                .iter()
                .position(|r| r.matches.check(&view).is_ok());
            prop_assert_eq!(indexed, scanned, "path {}", path);
        }
    }
}

// ---- JSON comparator ----

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn response(v: &Value) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    Response {
        status: 200,
        headers,
        body: Bytes::from(serde_json::to_vec(v).unwrap()),
        call: None,
    }
}

/// Change one leaf somewhere in `v` (the `pick`-th, wrapping); false if it has none.
fn mutate(v: &mut Value, pick: &mut usize) -> bool {
    match v {
        Value::Array(items) => items.iter_mut().any(|i| mutate(i, pick)),
        Value::Object(map) => map.values_mut().any(|i| mutate(i, pick)),
        leaf => {
            if *pick > 0 {
                *pick -= 1;
                return false;
            }
            *leaf = match leaf {
                Value::String(s) => Value::String(format!("{s}!")),
                _ => Value::String("changed".into()),
            };
            true
        }
    }
}

proptest! {
    #[test]
    fn a_document_never_differs_from_itself(v in json_value()) {
        let plain = Rules::default();
        prop_assert_eq!(compare(&response(&v), &response(&v), &plain), vec![]);
        // Re-serialised with its keys in another order: still the same document.
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let mut r = response(&v);
        r.body = Bytes::from(pretty);
        prop_assert_eq!(compare(&response(&v), &r, &plain), vec![]);
    }

    #[test]
    fn any_changed_leaf_is_reported_and_comparison_never_panics(
        a in json_value(),
        b in json_value(),
        pick in 0usize..64,
    ) {
        let plain = Rules::default();
        let _ = compare(&response(&a), &response(&b), &plain);
        let mut changed = a.clone();
        let mut left = pick;
        if mutate(&mut changed, &mut left) {
            let diffs = compare(&response(&a), &response(&changed), &plain);
            prop_assert!(!diffs.is_empty(), "{} vs {}", a, changed);
        }
        // Arrays compared as multisets and by key: no panic, and no difference with itself.
        let mut loose = Rules::default();
        loose.unordered = ["$".to_string(), "$[*]".to_string(), "$.a".to_string()].into();
        loose.unordered_by = [("$.b".to_string(), "a".to_string())].into();
        let _ = compare(&response(&a), &response(&b), &loose);
        prop_assert_eq!(compare(&response(&a), &response(&a), &loose), vec![]);
    }
}

// ---- XML and HTML comparators ----

/// A markup element: a name, attributes, and either text (a leaf) or children.
#[derive(Debug, Clone)]
struct Tree {
    name: &'static str,
    attributes: Vec<(&'static str, String)>,
    text: String,
    children: Vec<Tree>,
}

fn tree(names: &'static [&'static str]) -> impl Strategy<Value = Tree> {
    let attributes = prop::collection::btree_map(
        prop::sample::select(&["id", "kind", "lang"][..]),
        "[a-z0-9]{1,5}",
        0..3,
    )
    .prop_map(|m| m.into_iter().collect::<Vec<_>>());
    let leaf = (
        prop::sample::select(names),
        attributes.clone(),
        "[a-z0-9]{1,8}",
    )
        .prop_map(|(name, attributes, text)| Tree {
            name,
            attributes,
            text,
            children: Vec::new(),
        });
    leaf.prop_recursive(4, 40, 5, move |inner| {
        (
            prop::sample::select(names),
            attributes.clone(),
            prop::collection::vec(inner, 1..5),
        )
            .prop_map(|(name, attributes, children)| Tree {
                name,
                attributes,
                text: String::new(),
                children,
            })
    })
}

/// The tree as markup: compact, or spread over lines with comments and the attributes
/// in reverse order (no difference to the comparison).
fn markup(t: &Tree, spread: bool, out: &mut String) {
    out.push('<');
    out.push_str(t.name);
    let mut attributes = t.attributes.clone();
    if spread {
        attributes.reverse();
    }
    for (k, v) in &attributes {
        out.push_str(&format!(" {k}=\"{v}\""));
    }
    out.push('>');
    if spread {
        out.push_str("\n  <!-- c -->  ");
    }
    out.push_str(&t.text);
    for c in &t.children {
        markup(c, spread, out);
        if spread {
            out.push_str("\n ");
        }
    }
    out.push_str(&format!("</{}>", t.name));
}

/// Append `!` to the `pick`-th leaf's text (wrapping); the path of that leaf, as the
/// comparison names it (`html_style`: CSS paths under `html > body`).
fn mutate_leaf(t: &mut Tree, pick: &mut usize, path: String, html_style: bool) -> Option<String> {
    if t.children.is_empty() {
        if *pick > 0 {
            *pick -= 1;
            return None;
        }
        t.text.push('!');
        return Some(path);
    }
    let names: Vec<&str> = t.children.iter().map(|c| c.name).collect();
    for (i, child) in t.children.iter_mut().enumerate() {
        let same = names.iter().filter(|n| **n == child.name).count();
        let position = names[..=i].iter().filter(|n| **n == child.name).count();
        let label = html_label(child);
        let step = match (html_style, same > 1) {
            (false, true) => format!("/{}[{position}]", child.name),
            (false, false) => format!("/{}", child.name),
            (true, true) => format!(" > {label}:nth-of-type({position})"),
            (true, false) => format!(" > {label}"),
        };
        if let Some(found) = mutate_leaf(child, pick, format!("{path}{step}"), html_style) {
            return Some(found);
        }
    }
    None
}

/// An HTML path names an element by its tag and its id (when a selector can name it
/// plainly: one that starts with a letter).
fn html_label(t: &Tree) -> String {
    match t.attributes.iter().find(|(k, _)| *k == "id") {
        Some((_, id)) if id.starts_with(|c: char| c.is_ascii_alphabetic()) => {
            format!("{}#{id}", t.name)
        }
        _ => t.name.to_string(),
    }
}

fn typed(body: String, content_type: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    Response {
        status: 200,
        headers,
        body: Bytes::from(body),
        call: None,
    }
}

const XML_NAMES: &[&str] = &["a", "b", "item", "price"];
// Tags html5ever nests as written (no implied closing), so the tree parses as built.
const HTML_NAMES: &[&str] = &["div", "span", "section", "em"];

proptest! {
    #[test]
    fn an_xml_document_never_differs_from_itself_and_every_changed_leaf_is_found(
        t in tree(XML_NAMES),
        pick in 0usize..40,
    ) {
        let plain = Rules::default();
        let (mut compact, mut spread) = (String::new(), String::new());
        markup(&t, false, &mut compact);
        markup(&t, true, &mut spread);
        let xml = |s: &str| typed(s.to_string(), "application/xml");
        prop_assert_eq!(compare(&xml(&compact), &xml(&compact), &plain), vec![]);
        prop_assert_eq!(compare(&xml(&compact), &xml(&spread), &plain), vec![], "{}", spread);
        let mut changed = t.clone();
        let mut left = pick % 40;
        let root = format!("/{}", t.name);
        if let Some(path) = mutate_leaf(&mut changed, &mut left, root, false) {
            let mut other = String::new();
            markup(&changed, false, &mut other);
            let found = compare(&xml(&compact), &xml(&other), &plain);
            prop_assert_eq!(found.len(), 1, "{} vs {}: {:?}", compact, other, found);
            prop_assert_eq!(&found[0].path, &path);
        }
    }

    #[test]
    fn an_html_page_never_differs_from_itself_and_every_changed_leaf_is_found(
        t in tree(HTML_NAMES),
        pick in 0usize..40,
    ) {
        let plain = Rules::default();
        let page = |t: &Tree, spread: bool| {
            let mut out = String::from("<!doctype html><html><head></head><body>");
            markup(t, spread, &mut out);
            out.push_str("</body></html>");
            typed(out, "text/html")
        };
        prop_assert_eq!(compare(&page(&t, false), &page(&t, false), &plain), vec![]);
        prop_assert_eq!(compare(&page(&t, false), &page(&t, true), &plain), vec![]);
        let mut changed = t.clone();
        let mut left = pick % 40;
        let root = format!("html > body > {}", html_label(&t));
        if let Some(path) = mutate_leaf(&mut changed, &mut left, root, true) {
            let found = compare(&page(&t, false), &page(&changed, false), &plain);
            prop_assert_eq!(found.len(), 1, "{:?}", found);
            prop_assert_eq!(&found[0].path, &path);
        }
    }

    #[test]
    fn any_bytes_as_xml_html_text_or_form_never_panic(
        a in "\\PC{0,200}",
        b in "[<>/a-z =\"&;!\\-\\[\\]]{0,200}",
    ) {
        for content_type in ["application/xml", "text/html", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=a"] {
            let _ = compare(&typed(a.clone(), content_type), &typed(b.clone(), content_type), &Rules::default());
        }
    }
}

// ---- strict HTTP/1 framing ----

/// A pipeline of well-formed requests: no body, a Content-Length body, a chunked body.
fn pipeline() -> impl Strategy<Value = Vec<u8>> {
    let body = prop::collection::vec(any::<u8>(), 0..300);
    let request = (0usize..3, body, prop::collection::vec(1usize..50, 1..6)).prop_map(
        |(kind, body, chunk_sizes)| {
            let mut out = Vec::new();
            match kind {
                0 => out.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"),
                1 => {
                    out.extend_from_slice(
                        format!(
                            "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(&body);
                }
                _ => {
                    out.extend_from_slice(
                        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                    );
                    let mut rest = &body[..];
                    for size in chunk_sizes.iter().cycle() {
                        if rest.is_empty() {
                            break;
                        }
                        let n = (*size).min(rest.len());
                        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                        out.extend_from_slice(&rest[..n]);
                        out.extend_from_slice(b"\r\n");
                        rest = &rest[n..];
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                }
            }
            out
        },
    );
    prop::collection::vec(request, 1..6).prop_map(|rs| rs.concat())
}

proptest! {
    /// However the bytes arrive, well-formed framing passes; a bare LF in the next
    /// request's head is caught.
    #[test]
    fn framing_is_read_the_same_whatever_the_reads(
        stream in pipeline(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        use banyan::inbound::framing::Framing;
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let mut framing = Framing::new(64 * 1024, 100);
        for w in points.windows(2) {
            prop_assert!(framing.feed(&stream[w[0]..w[1]]).is_ok());
        }
        prop_assert!(framing.feed(b"GET / HTTP/1.1\nHost: a\r\n\r\n").is_err());
    }
}

// ---- banyan's own HTTP/1 head parse ----

/// A well-formed head with a few bytes inserted or removed: line ends broken or doubled,
/// spaces and colons where they should not be.
fn mangled_head() -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            prop::sample::select(b"\r\n :a\t\x00".to_vec()),
            any::<bool>(),
        ),
        0..4,
    );
    edits.prop_map(|edits| {
        let mut head =
            b"\r\nPOST /a?b=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-A: y z\r\n\r\nabcGET"
                .to_vec();
        for (at, byte, insert) in edits {
            let i = at.index(head.len());
            if insert {
                head.insert(i, byte);
            } else {
                head.remove(i);
            }
        }
        head
    })
}

/// Scan as the server does: over a buffer that grows by `cuts`, resuming where the last
/// scan stopped. The head's end (after any empty lines dropped), or the refusal.
fn scan_in_reads(bytes: &[u8], cuts: &[usize]) -> Result<Option<(usize, usize)>, &'static str> {
    use banyan::inbound::parse::{scan, Scan};
    let (mut skipped, mut from) = (0, 0);
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        loop {
            let buf = &bytes[skipped..end.max(skipped)];
            if buf.is_empty() {
                break;
            }
            match scan(buf, from, 64 * 1024, false).map_err(|v| v.0)? {
                Scan::Skip(n) => skipped += n,
                Scan::Partial(at) => {
                    from = at;
                    break;
                }
                Scan::Complete(len) => return Ok(Some((skipped, len))),
                Scan::H2Preface => unreachable!("not a first request"),
            }
        }
    }
    Ok(None)
}

proptest! {
    /// The own path's head scan gives one verdict however the bytes arrive, and is never
    /// laxer about line ends than the framing reader in front of hyper was: a head it
    /// accepts, the framing reader accepts too. Any bytes at all parse or are refused
    /// without a panic.
    #[test]
    fn the_own_head_parse_is_as_strict_as_the_framing_reader_whatever_the_reads(
        head in mangled_head(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        noise in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        use banyan::inbound::framing::Framing;
        use banyan::inbound::parse::{parse, Parsed};
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(head.len() + 1)).collect();
        points.sort_unstable();
        let whole = scan_in_reads(&head, &[]);
        prop_assert_eq!(&scan_in_reads(&head, &points), &whole);
        if let Ok(Some((skipped, len))) = whole {
            let bytes = bytes::Bytes::copy_from_slice(&head[skipped..skipped + len]);
            if let Ok(Parsed::Request(_)) = parse(&bytes, 100) {
                let mut framing = Framing::new(64 * 1024, 100);
                prop_assert!(
                    framing.feed(&head[..skipped + len]).is_ok(),
                    "accepted here, refused by the framing reader: {:?}",
                    String::from_utf8_lossy(&head)
                );
            }
        }
        if let Ok(Some((skipped, len))) = scan_in_reads(&noise, &[]) {
            let _ = parse(&bytes::Bytes::copy_from_slice(&noise[skipped..skipped + len]), 100);
        }
    }
}
