//! Data flows one way: a module imports only from its own layer or the layers below it.
//! This reads every `crate::...` and `super::...` path in src/ (test modules left out),
//! finds the file each one names, and fails on an import that runs back up a layer.
//! docs/ARCHITECTURE.md describes the layers; `make lint` runs this.
//!
//! The few upward imports that remain are listed in `KNOWN_UPWARD`, each with the change
//! that removes it. The list only shrinks: a new upward import fails, and so does a listed
//! one that is gone (delete its line).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Layers from the top down, each a set of path prefixes under src/; a file takes the
/// layer of its longest matching prefix.
const LAYERS: &[(&str, &[&str])] = &[
    ("command line", &["main.rs"]),
    ("process", &["server/", "demo/", "replay/"]),
    ("admin", &["admin/"]),
    ("fleet", &["fleet/"]),
    ("reload", &["reload/"]),
    ("ramp loop", &["migration/control.rs"]),
    ("proxy glue", &["proxy/"]),
    ("snapshot", &["snapshot.rs"]),
    (
        "data plane",
        &[
            "shadow/",
            "upstream/",
            "inbound/client_body.rs",
            "body/",
            "access/",
            "telemetry/",
            "capture/",
        ],
    ),
    ("config", &["config/"]),
    (
        "features",
        &[
            "migration/",
            "breaker.rs",
            "shadow/spec.rs",
            "shadow/stats.rs",
            "upstream/spec.rs",
            "upstream/outlier.rs",
            "tls/",
            "store/",
            "compare/",
            "capture/spec.rs",
            "capture/record.rs",
            "capture/har.rs",
            "capture/read.rs",
            "live/",
            "metrics.rs",
        ],
    ),
    ("routing", &["routing/"]),
    (
        "leaves",
        &[
            "inbound/",
            "grpc/",
            "trace/",
            "clock.rs",
            "ids.rs",
            "fswatch.rs",
            "lib.rs",
        ],
    ),
];

/// Upward imports still to remove: (importing file, imported file, what removes it).
const KNOWN_UPWARD: &[(&str, &str, &str)] = &[];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn layer_of(file: &str) -> usize {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, prefixes))| prefixes.iter().map(move |p| (i, *p)))
        .filter(|(_, p)| file.starts_with(p))
        .max_by_key(|(_, p)| p.len())
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("src/{file} is in no layer: add it to LAYERS"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/proxy/mod.rs` is `["proxy"]`, `src/proxy/error.rs`
/// `["proxy", "error"]`.
fn module_of(file: &str) -> Vec<String> {
    let trimmed = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(String::from).collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The file a module path names: the longest prefix of it that is a file under src/.
fn file_of(path: &[String]) -> Option<String> {
    (1..=path.len()).rev().find_map(|n| {
        let joined = path[..n].join("/");
        [format!("{joined}.rs"), format!("{joined}/mod.rs")]
            .into_iter()
            .find(|candidate| src().join(candidate).is_file())
    })
}

/// The module paths a file refers to: `crate::a::b`, `super::x`, and the members of
/// `crate::a::{b, c::d}` groups.
fn references(file: &str, text: &str) -> BTreeSet<Vec<String>> {
    // `super` of `a/b.rs` (module a::b) and of `a/mod.rs` (module a) alike is one up.
    let own = module_of(file);
    let parent: Vec<String> = own[..own.len().saturating_sub(1)].to_vec();
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    for (start, root) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut from = 0;
        while let Some(found) = text[from..].find(start) {
            let at = from + found;
            from = at + start.len();
            // `some_crate::` is not `crate::`.
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            for path in paths_at(&text[from..]) {
                let mut full = root.clone();
                full.extend(path);
                out.insert(full);
            }
        }
    }
    out
}

/// The paths that start at the beginning of `rest`: `a::b::c`, or each member of a
/// `{...}` group (nested groups flattened to their prefixes).
fn paths_at(rest: &str) -> Vec<Vec<String>> {
    let ident: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let segments: Vec<String> = ident
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let after = &rest[ident.len()..];
    if ident.ends_with("::") && after.starts_with('{') || ident.is_empty() && rest.starts_with('{')
    {
        let group_start = rest.find('{').unwrap_or(0) + 1;
        let mut depth = 1;
        let mut end = group_start;
        for (i, c) in rest[group_start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = group_start + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        let mut member_depth = 0;
        let mut member_start = group_start;
        let inner = &rest[..end];
        for (i, c) in inner[group_start..].char_indices() {
            let at = group_start + i;
            match c {
                '{' => member_depth += 1,
                '}' => member_depth -= 1,
                ',' if member_depth == 0 => {
                    out.extend(member(&segments, &inner[member_start..at]));
                    member_start = at + 1;
                }
                _ => {}
            }
        }
        out.extend(member(&segments, &inner[member_start..]));
        return out;
    }
    vec![segments]
}

fn member(prefix: &[String], text: &str) -> Vec<Vec<String>> {
    let text = text.trim();
    if text.is_empty() || text == "self" {
        return vec![prefix.to_vec()];
    }
    paths_at(text)
        .into_iter()
        .map(|p| {
            let mut full = prefix.to_vec();
            full.extend(p.into_iter().filter(|s| s != "self"));
            full
        })
        .collect()
}

/// Every import between two files of src/: (importing file, imported file).
fn imports() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut found = BTreeSet::new();
    for path in files {
        let file = path
            .strip_prefix(src())
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).expect("read");
        // Test modules sit at the end of a file and may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for reference in references(&file, code) {
            let Some(target) = file_of(&reference) else {
                continue;
            };
            if target != file {
                found.insert((file.clone(), target));
            }
        }
    }
    found
}

/// Every upward import: (importing file, imported file).
fn upward_imports() -> BTreeSet<(String, String)> {
    imports()
        .into_iter()
        .filter(|(file, target)| layer_of(target) < layer_of(file))
        .collect()
}

/// The files that import each other, directly or in a loop: each loop as its files.
fn loops(edges: &BTreeSet<(String, String)>) -> Vec<BTreeSet<String>> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(at) = todo.pop() {
            for (_, to) in edges.iter().filter(|(f, _)| *f == at) {
                if seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let files: BTreeSet<&String> = edges.iter().map(|(f, _)| f).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for file in files {
        let forward = reach(file);
        if !forward.contains(file.as_str()) || out.iter().any(|l| l.contains(file.as_str())) {
            continue;
        }
        // The loop of `file`: what it reaches that reaches it back.
        let members = forward
            .into_iter()
            .filter(|other| reach(other).contains(file.as_str()))
            .collect();
        out.push(members);
    }
    out
}

#[test]
fn no_files_import_each_other() {
    let found = loops(&imports());
    assert!(
        found.is_empty(),
        "files that import each other (move what both need into a file of its own):\n{}",
        found
            .iter()
            .map(|l| l
                .iter()
                .map(|f| format!("src/{f}"))
                .collect::<Vec<_>>()
                .join(" <-> "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_loop_finder_finds_a_loop() {
    let edges: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .iter()
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect();
    let found = loops(&edges);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0],
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    );
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let found = upward_imports();
    let known: BTreeSet<(String, String)> = KNOWN_UPWARD
        .iter()
        .map(|(a, b, _)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<String> = found
        .difference(&known)
        .map(|(a, b)| {
            format!(
                "src/{a} ({}) imports src/{b} ({})",
                LAYERS[layer_of(a)].0,
                LAYERS[layer_of(b)].0
            )
        })
        .collect();
    let gone: Vec<String> = known
        .difference(&found)
        .map(|(a, b)| format!("src/{a} -> src/{b}"))
        .collect();
    assert!(
        new.is_empty(),
        "imports that run up a layer (move the type down, or the code up; see docs/ARCHITECTURE.md):\n{}",
        new.join("\n")
    );
    assert!(
        gone.is_empty(),
        "listed in KNOWN_UPWARD but gone: delete these lines\n{}",
        gone.join("\n")
    );
}

#[test]
fn the_reader_finds_imports_as_written() {
    let refs = references(
        "shadow/task.rs",
        "use crate::proxy::{self, error::ProxyError, forward::{Outgoing, x}};\nuse super::spec::ShadowSpec;\nlet t = crate::clock::now_ms();\nuse hyper_util::crate::x;",
    );
    let has = |p: &[&str]| refs.contains(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert!(has(&["proxy"]));
    assert!(has(&["proxy", "error", "ProxyError"]));
    assert!(has(&["proxy", "forward", "Outgoing"]));
    assert!(has(&["shadow", "spec", "ShadowSpec"]));
    assert!(has(&["clock", "now_ms"]));
    assert_eq!(
        file_of(&["proxy".into(), "error".into(), "ProxyError".into()]).as_deref(),
        Some("proxy/error.rs")
    );
    assert_eq!(LAYERS[layer_of("migration/control.rs")].0, "ramp loop");
    assert!(layer_of("shadow/spec.rs") > layer_of("shadow/task.rs"));
}
