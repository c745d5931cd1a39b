//! The reference cannot drift from the code: every config key the parser accepts is in a
//! key table of docs/ (and every key a table names is one the parser accepts), every CLI
//! command and flag is on the CLI page, every metric family on the metrics page, every
//! path of the OpenAPI document on the API page; every example config in docs/ and the
//! README passes the check, and every link between the pages resolves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Markdown pages: docs/*.md and the README.
fn pages() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            let name = format!("docs/{}", p.file_name().unwrap().to_string_lossy());
            let text = std::fs::read_to_string(&p).unwrap();
            (name, text)
        })
        .collect();
    out.push(("README.md".into(), read("README.md")));
    out.sort();
    out
}

/// The keys each struct and enum of src/config/raw.rs accepts, by type name: its fields
/// (with serde's renames) or its variants (with `rename_all`).
fn accepted_keys() -> BTreeMap<String, BTreeSet<String>> {
    let text = read("src/config/raw.rs");
    let item = Regex::new(r"pub (struct|enum) (Raw\w+) \{").unwrap();
    let field = Regex::new(r"^\s*pub (\w+):").unwrap();
    let variant = Regex::new(r"^\s*([A-Z]\w*)\s*[,({]").unwrap();
    let rename = Regex::new(r#"rename = "([^"]+)""#).unwrap();
    let mut out = BTreeMap::new();
    for m in item.captures_iter(&text) {
        let start = m.get(0).unwrap().end();
        let end = start + text[start..].find("\n}").unwrap();
        let before = &text[..m.get(0).unwrap().start()];
        let attrs = before.rsplit("\n\n").next().unwrap_or("");
        let snake = attrs.contains("rename_all = \"snake_case\"");
        let mut keys = BTreeSet::new();
        let mut pending_rename = None;
        for line in text[start..end].lines() {
            if line.trim_start().starts_with("#[serde") {
                pending_rename = rename.captures(line).map(|c| c[1].to_string());
                continue;
            }
            if line.trim_start().starts_with("//") || line.trim_start().starts_with("#[") {
                continue;
            }
            let name = if &m[1] == "struct" {
                field.captures(line).map(|c| c[1].to_string())
            } else {
                variant.captures(line).map(|c| {
                    let v = &c[1];
                    if snake {
                        let mut s = String::new();
                        for (i, ch) in v.chars().enumerate() {
                            if ch.is_uppercase() && i > 0 {
                                s.push('_');
                            }
                            s.push(ch.to_ascii_lowercase());
                        }
                        s
                    } else {
                        v.to_lowercase()
                    }
                })
            };
            if let Some(name) = name {
                keys.insert(pending_rename.take().unwrap_or(name));
            }
        }
        out.insert(m[2].to_string(), keys);
    }
    out
}

/// The blocks of docs marked `<!-- keys: RawA RawB -->`: the names, and the text of the
/// block that follows (a table, a paragraph or a fenced example).
fn key_blocks() -> Vec<(String, Vec<String>, String)> {
    let marker = Regex::new(r"<!-- keys: ([\w ]+) -->").unwrap();
    let mut out = Vec::new();
    for (page, text) in pages() {
        for m in marker.captures_iter(&text) {
            let rest = &text[m.get(0).unwrap().end()..];
            let rest = rest.trim_start_matches('\n');
            let end = if let Some(fenced) = rest.strip_prefix("```") {
                fenced.find("```").map_or(rest.len(), |i| i + 6)
            } else {
                rest.find("\n\n").unwrap_or(rest.len())
            };
            let names = m[1].split_whitespace().map(String::from).collect();
            out.push((page.clone(), names, rest[..end].to_string()));
        }
    }
    out
}

/// The key a table row documents: its first cell's code spans, each reduced to its last
/// part (`server.listen` -> `listen`, `[upstreams.NAME]` -> `upstreams`).
fn row_keys(block: &str) -> Vec<String> {
    let code = Regex::new(r"`([^`]+)`").unwrap();
    block
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("| ---"))
        .skip(1) // the header
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| {
            code.captures_iter(cell)
                .map(|c| {
                    let key = c[1].trim_matches(|ch| ch == '[' || ch == ']');
                    key.split('.')
                        .rfind(|part| !part.chars().all(|ch| ch.is_ascii_uppercase()))
                        .unwrap_or(key)
                        .to_string()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let accepted = accepted_keys();
    assert!(accepted.len() > 20, "read {} types", accepted.len());
    let blocks = key_blocks();
    let mut missing = Vec::new();
    for (name, keys) in &accepted {
        let texts: Vec<&String> = blocks
            .iter()
            .filter(|(_, names, _)| names.contains(name))
            .map(|(_, _, t)| t)
            .collect();
        if texts.is_empty() {
            missing.push(format!(
                "{name}: no block of docs/ is marked <!-- keys: {name} -->"
            ));
            continue;
        }
        for key in keys {
            let word = Regex::new(&format!(r"\b{}\b", regex::escape(key))).unwrap();
            if !texts.iter().any(|t| word.is_match(t)) {
                missing.push(format!("{name}.{key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "config keys the parser accepts that the docs' key tables do not name:\n{}",
        missing.join("\n")
    );
    let mut unknown = Vec::new();
    for (page, names, text) in &blocks {
        for name in names {
            assert!(
                accepted.contains_key(name),
                "{page}: no type {name} in raw.rs"
            );
        }
        for key in row_keys(text) {
            if !names.iter().any(|n| accepted[n].contains(&key)) {
                unknown.push(format!("{page}: `{key}` (marked {})", names.join(" ")));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "documented keys the parser does not accept:\n{}",
        unknown.join("\n")
    );
}

/// The fields the compiler reads as durations: those it hands to `self.duration(...)`.
fn duration_fields() -> BTreeSet<String> {
    let call = Regex::new(r"duration\(\s*&?(?:\w+\.)+(\w+)\.as_ref\(\)").unwrap();
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("src/config/compile")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        out.extend(call.captures_iter(&text).map(|c| c[1].to_string()));
    }
    out
}

/// The type a key's value takes, in the words of the tables' `type` column, from its
/// field's Rust type (`Option<Spanned<i64>>` -> `integer`).
fn type_word(key: &str, rust: &str, durations: &BTreeSet<String>) -> String {
    let mut t = rust.trim();
    loop {
        let stripped = ["Option<", "Spanned<"]
            .iter()
            .find_map(|w| t.strip_prefix(w).and_then(|r| r.strip_suffix('>')));
        match stripped {
            Some(inner) => t = inner.trim(),
            None => break,
        }
    }
    match t {
        "String" if durations.contains(key) => "duration".into(),
        "String" | "RawAction" => "string".into(),
        "i64" => "integer".into(),
        "f64" => "number".into(),
        "bool" => "boolean".into(),
        "RawSplitKey" => "table or string".into(),
        "ByteSize" => "integer or string".into(),
        _ if t.starts_with("Vec<") => match type_word("", &t[4..t.len() - 1], durations).as_str() {
            "number" => "array of numbers".into(),
            "string" => "array of strings".into(),
            _ => "array of tables".into(),
        },
        _ if t.starts_with("BTreeMap<String, ") => {
            if type_word("", &t[17..t.len() - 1], durations) == "string" {
                "table of strings".into()
            } else {
                "tables".into()
            }
        }
        _ => "table".into(),
    }
}

/// The type word of each field, by struct.
fn field_types() -> BTreeMap<String, BTreeMap<String, String>> {
    let text = read("src/config/raw.rs");
    let item = Regex::new(r"(?s)pub struct (Raw\w+) \{(.*?)\n\}").unwrap();
    let field = Regex::new(r"^\s*pub (\w+): (.*),\s*$").unwrap();
    let rename = Regex::new(r#"rename = "([^"]+)""#).unwrap();
    let durations = duration_fields();
    let mut out = BTreeMap::new();
    for m in item.captures_iter(&text) {
        let mut fields = BTreeMap::new();
        let mut pending = None;
        for line in m[2].lines() {
            if line.trim_start().starts_with("#[serde") {
                pending = rename.captures(line).map(|c| c[1].to_string());
            } else if let Some(f) = field.captures(line) {
                let key = pending.take().unwrap_or_else(|| f[1].to_string());
                let word = type_word(&key, &f[2], &durations);
                fields.insert(key, word);
            }
        }
        out.insert(m[1].to_string(), fields);
    }
    out
}

#[test]
fn every_key_table_gives_each_key_its_type() {
    let types = field_types();
    let mut wrong = Vec::new();
    for (page, names, text) in key_blocks() {
        let mut rows = text.lines().filter(|l| l.starts_with('|'));
        let Some(header) = rows.next() else { continue };
        assert_eq!(
            header.split('|').nth(2).map(str::trim),
            Some("type"),
            "{page}: the key table marked {names:?} has no type column"
        );
        for row in rows.skip(1) {
            let cells: Vec<&str> = row.split('|').collect();
            let keys = row_keys(&format!("|h|\n| --- |\n{row}"));
            if keys.is_empty() {
                continue;
            }
            let mut want: Vec<String> = Vec::new();
            for key in &keys {
                let word = names
                    .iter()
                    .find_map(|n| types.get(n).and_then(|f| f.get(key)))
                    .cloned()
                    .unwrap_or_default();
                if !want.contains(&word) {
                    want.push(word);
                }
            }
            let want = want.join(", ");
            if !cells[2].trim().starts_with(&want) {
                wrong.push(format!(
                    "{page}: {} is `{want}`, not `{}`",
                    cells[1].trim(),
                    cells[2].trim()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "types that do not match raw.rs:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_key_reader_reads_renames_and_variants() {
    let keys = accepted_keys();
    assert!(keys["RawRoute"].contains("match"), "serde rename");
    assert!(!keys["RawRoute"].contains("matches"));
    assert!(
        keys["RawSplitKey"].contains("client_ip"),
        "snake_case variant"
    );
    assert!(keys["RawPath"].contains("template"), "lowercase variant");
    assert!(keys["RawRamp"].contains("failure_limit"));
    assert_eq!(
        row_keys("| key | d |\n| --- | --- |\n| `server.listen` | x |\n| `[upstreams.NAME]` | y |\n| `a`, `b` | z |"),
        ["listen", "upstreams", "a", "b"]
    );
}

/// The text of `banyan ARGS --help`.
fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(common::banyan_bin())
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_command_and_flag_is_on_the_cli_page() {
    let page = read("docs/cli.md");
    let top = help(&[]);
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect();
    assert!(commands.len() >= 6, "{commands:?}");
    let flag = Regex::new(r"(?m)^\s+(?:-\w, )?(--[a-z][a-z-]*)").unwrap();
    let mut missing = Vec::new();
    let mut known = BTreeSet::new();
    // A command with subcommands of its own (`capture export`): each of those too.
    let mut commands: Vec<Vec<String>> = commands.into_iter().map(|c| vec![c]).collect();
    let nested: Vec<Vec<String>> = commands
        .iter()
        .flat_map(|c| {
            let text = help(&[c[0].as_str()]);
            let subs: Vec<String> = text
                .split("Commands:")
                .nth(1)
                .map(|rest| {
                    rest.split("Options:")
                        .next()
                        .unwrap_or("")
                        .lines()
                        .filter_map(|l| l.split_whitespace().next())
                        .filter(|s| *s != "help")
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            subs.into_iter()
                .map(|s| vec![c[0].clone(), s])
                .collect::<Vec<_>>()
        })
        .collect();
    commands.extend(nested);
    for command in &commands {
        let command_line = command.join(" ");
        if !page.contains(&format!("banyan {command_line}")) {
            missing.push(format!("banyan {command_line}"));
        }
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        for f in flag.captures_iter(&help(&args)) {
            let f = f[1].to_string();
            if f != "--help" && !page.contains(&f) {
                missing.push(format!("banyan {command_line} {f}"));
            }
            known.insert(f);
        }
    }
    for f in flag.captures_iter(&top) {
        known.insert(f[1].to_string());
        if &f[1] != "--help" && &f[1] != "--version" && !page.contains(&f[1]) {
            missing.push(f[1].to_string());
        }
    }
    assert!(missing.is_empty(), "not on docs/cli.md: {missing:?}");
    let documented = Regex::new(r"(--[a-z][a-z-]*)").unwrap();
    let unknown: Vec<String> = documented
        .captures_iter(&page)
        .map(|c| c[1].to_string())
        .filter(|f| !known.contains(f))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/cli.md names flags no command has: {unknown:?}"
    );
}

#[test]
fn every_metric_family_is_on_the_metrics_page() {
    let page = read("docs/metrics.md");
    let name = Regex::new(r#""(banyan_[a-z_]+)""#).unwrap();
    let mut families = BTreeSet::new();
    for file in ["src/metrics.rs", "src/live/export.rs"] {
        for c in name.captures_iter(&read(file)) {
            families.insert(c[1].to_string());
        }
    }
    assert!(families.len() >= 20, "{families:?}");
    let missing: Vec<&String> = families
        .iter()
        .filter(|f| !page.contains(&format!("`{f}`")))
        .collect();
    assert!(missing.is_empty(), "not on docs/metrics.md: {missing:?}");
    let documented = Regex::new(r"(?m)^\| `(banyan_[a-z_]+)`").unwrap();
    let unknown: Vec<String> = documented
        .captures_iter(&page)
        .map(|c| c[1].to_string())
        .filter(|f| !families.contains(f))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/metrics.md lists families banyan does not export: {unknown:?}"
    );
}

#[test]
fn every_api_path_is_on_the_api_page() {
    let page = read("docs/admin-api.md");
    let openapi: serde_json::Value = serde_json::from_str(&read("src/admin/openapi.json")).unwrap();
    let paths = openapi["paths"].as_object().unwrap();
    assert!(paths.len() >= 15);
    let param = Regex::new(r"\\\{[^}]+\\\}").unwrap();
    let missing: Vec<&String> = paths
        .keys()
        .filter(|path| {
            let escaped = regex::escape(path);
            let pattern = param.replace_all(&escaped, r"[^\s`|/]+");
            !Regex::new(&format!(r"{pattern}[\s`?\[\\|]"))
                .unwrap()
                .is_match(&page)
        })
        .collect();
    assert!(missing.is_empty(), "not on docs/admin-api.md: {missing:?}");
}

/// What a fragment of a config (a route, a table) is checked inside.
const PREAMBLE: &str = "default = \"legacy\"\n\
    [upstreams.legacy]\nendpoints = [\"http://127.0.0.1:8000\"]\n\
    [upstreams.items-svc]\nendpoints = [\"http://127.0.0.1:8001\"]\n\
    [upstreams.users-svc]\nendpoints = [\"http://127.0.0.1:8002\"]\n\
    [upstreams.catalog]\nendpoints = [\"http://127.0.0.1:8003\"]\n";

#[test]
fn every_example_config_passes_the_check() {
    let block = Regex::new(r"(?s)```toml\n(.*?)```").unwrap();
    let mut checked = 0;
    let mut failed = Vec::new();
    for (page, text) in pages() {
        for c in block.captures_iter(&text) {
            let example = &c[1];
            // A whole config as written; a fragment inside a minimal one.
            let whole = if example.contains("\ndefault =") || example.starts_with("default =") {
                example.to_string()
            } else {
                format!("{PREAMBLE}{example}")
            };
            let source = banyan::config::Source::new(page.clone(), whole);
            // The examples name certificate files of the reader's machine: not read here.
            if let Err(e) = banyan::config::Config::parse_without_files(&source) {
                failed.push(format!("{page}:\n{example}\n{e}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked} examples");
    assert!(
        failed.is_empty(),
        "examples that do not pass:\n{}",
        failed.join("\n\n")
    );
    // And the example files themselves, files and all.
    for file in ["config/banyan.toml", "config/demo.toml"] {
        let source = banyan::config::Source::new(file, read(file));
        assert!(
            banyan::config::Config::parse_without_files(&source).is_ok(),
            "{file}"
        );
    }
}

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_link_between_the_pages_resolves() {
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut broken = Vec::new();
    for (page, text) in pages() {
        let dir = Path::new(&page).parent().unwrap().to_path_buf();
        let prose: String = {
            // Links inside code blocks are not links.
            let mut in_code = false;
            text.lines()
                .filter(|l| {
                    if l.starts_with("```") {
                        in_code = !in_code;
                    }
                    !in_code
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        for c in link.captures_iter(&prose) {
            let target = &c[1];
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if path.is_empty() {
                PathBuf::from(&page)
            } else {
                dir.join(path)
            };
            let full = root().join(&file);
            if !full.exists() {
                broken.push(format!("{page}: {target} (no {})", file.display()));
                continue;
            }
            if !anchor.is_empty() && full.extension().is_some_and(|e| e == "md") {
                let headings = anchors(&std::fs::read_to_string(&full).unwrap());
                if !headings.contains(anchor) {
                    broken.push(format!("{page}: {target} (no heading #{anchor})"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_summary_lists_every_page() {
    let summary = read("docs/SUMMARY.md");
    for (page, _) in pages() {
        let Some(name) = page.strip_prefix("docs/") else {
            continue;
        };
        if name != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({name})")),
                "{name} is not in docs/SUMMARY.md"
            );
        }
    }
}
