//! The difference between two configs, route by route: what a reload would change.
//! Compared on the parsed TOML, so formatting and comments are not differences.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::{self, Write};
use toml::Value;

/// Everything that differs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDiff {
    pub routes: Vec<Change>,
    /// The routes both configs have are in another order (first match wins, so this
    /// can change where requests go).
    pub route_order_changed: bool,
    pub upstreams: Vec<Change>,
    /// `default`, `[server]`, `[admin]`.
    pub settings: Vec<FieldChange>,
}

/// A route or upstream added, removed or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    pub kind: ChangeKind,
    /// For a changed one: each key that differs.
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One key (dotted, as `split.percent`) with its value before and after, as TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub key: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && !self.route_order_changed
            && self.upstreams.is_empty()
            && self.settings.is_empty()
    }
}

/// Compare two config texts. Both must be TOML; neither needs to be a valid config.
pub fn diff(old: &str, new: &str) -> Result<ConfigDiff, toml::de::Error> {
    let old: toml::Table = toml::from_str(old)?;
    let new: toml::Table = toml::from_str(new)?;
    let (old_routes, old_order) = routes_by_name(&old);
    let (new_routes, new_order) = routes_by_name(&new);
    let common_old: Vec<&String> = old_order
        .iter()
        .filter(|n| new_routes.contains_key(*n))
        .collect();
    let common_new: Vec<&String> = new_order
        .iter()
        .filter(|n| old_routes.contains_key(*n))
        .collect();
    let mut settings = Vec::new();
    for key in ["default", "server", "admin"] {
        let mut a = BTreeMap::new();
        let mut b = BTreeMap::new();
        if let Some(v) = old.get(key) {
            flatten(key, v, &mut a);
        }
        if let Some(v) = new.get(key) {
            flatten(key, v, &mut b);
        }
        settings.extend(field_changes(&a, &b));
    }
    Ok(ConfigDiff {
        routes: changes(&old_routes, &new_routes, &new_order, &old_order),
        route_order_changed: common_old != common_new,
        upstreams: {
            let a = tables(old.get("upstreams"));
            let b = tables(new.get("upstreams"));
            let order_b: Vec<String> = b.keys().cloned().collect();
            let order_a: Vec<String> = a.keys().cloned().collect();
            changes(&a, &b, &order_b, &order_a)
        },
        settings,
    })
}

fn routes_by_name(config: &toml::Table) -> (BTreeMap<String, &Value>, Vec<String>) {
    let mut map = BTreeMap::new();
    let mut order = Vec::new();
    let routes = config.get("routes").and_then(Value::as_array);
    for (i, route) in routes.into_iter().flatten().enumerate() {
        let name = route
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{}", i + 1), str::to_string);
        order.push(name.clone());
        map.insert(name, route);
    }
    (map, order)
}

fn tables(v: Option<&Value>) -> BTreeMap<String, &Value> {
    v.and_then(Value::as_table)
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v)).collect())
        .unwrap_or_default()
}

/// Added and changed in the new order, then removed in the old order.
fn changes(
    old: &BTreeMap<String, &Value>,
    new: &BTreeMap<String, &Value>,
    new_order: &[String],
    old_order: &[String],
) -> Vec<Change> {
    let mut out = Vec::new();
    for name in new_order {
        let Some(after) = new.get(name) else { continue };
        match old.get(name) {
            None => out.push(Change {
                name: name.clone(),
                kind: ChangeKind::Added,
                fields: Vec::new(),
            }),
            Some(before) if before != after => {
                let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
                flatten("", before, &mut a);
                flatten("", after, &mut b);
                out.push(Change {
                    name: name.clone(),
                    kind: ChangeKind::Changed,
                    fields: field_changes(&a, &b),
                });
            }
            Some(_) => {}
        }
    }
    for name in old_order {
        if !new.contains_key(name) {
            out.push(Change {
                name: name.clone(),
                kind: ChangeKind::Removed,
                fields: Vec::new(),
            });
        }
    }
    out
}

/// Tables become dotted keys; anything else is one value, written as TOML.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn field_changes(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<FieldChange> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| FieldChange {
            key: k.clone(),
            from: a.get(k).cloned(),
            to: b.get(k).cloned(),
        })
        .collect()
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        write!(
            f,
            "{}: {} -> {}",
            self.key,
            show(&self.from),
            show(&self.to)
        )
    }
}

impl fmt::Display for ConfigDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no differences");
        }
        let mut out = String::new();
        for (title, changes) in [("routes", &self.routes), ("upstreams", &self.upstreams)] {
            if changes.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{title}:");
            for c in changes {
                let _ = match c.kind {
                    ChangeKind::Added => writeln!(out, "  + {} (added)", c.name),
                    ChangeKind::Removed => writeln!(out, "  - {} (removed)", c.name),
                    ChangeKind::Changed => writeln!(out, "  ~ {}", c.name),
                };
                for field in &c.fields {
                    let _ = writeln!(out, "      {field}");
                }
            }
        }
        if self.route_order_changed {
            let _ = writeln!(out, "route order changed (the first match wins)");
        }
        if !self.settings.is_empty() {
            let _ = writeln!(out, "settings:");
            for s in &self.settings {
                let _ = writeln!(out, "  ~ {s}");
            }
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"
default = "legacy"
[upstreams.legacy]
endpoints = ["http://a:1"]
[upstreams.new]
endpoints = ["http://b:1"]
[[routes]]
name = "items"
action = "split"
split = { to = "new", percent = 10, key = "client_ip" }
[[routes]]
name = "users"
action = "forward"
upstream = "new"
[[routes]]
name = "gone"
action = "forward"
upstream = "legacy"
"#;

    #[test]
    fn reports_route_upstream_and_setting_changes() {
        let new = OLD
            .replace("percent = 10", "percent = 20")
            .replace("http://b:1\"]", "http://b:1\", \"http://c:1\"]")
            .replace("name = \"gone\"", "name = \"fresh\"")
            .replace(
                "default = \"legacy\"",
                "default = \"legacy\"\n[server]\nlisten = \"0.0.0.0:80\"",
            );
        let d = diff(OLD, &new).expect("toml");
        assert_eq!(
            d.routes,
            vec![
                Change {
                    name: "items".into(),
                    kind: ChangeKind::Changed,
                    fields: vec![FieldChange {
                        key: "split.percent".into(),
                        from: Some("10".into()),
                        to: Some("20".into()),
                    }],
                },
                Change {
                    name: "fresh".into(),
                    kind: ChangeKind::Added,
                    fields: vec![],
                },
                Change {
                    name: "gone".into(),
                    kind: ChangeKind::Removed,
                    fields: vec![],
                },
            ]
        );
        assert!(!d.route_order_changed);
        assert_eq!(d.upstreams.len(), 1);
        assert_eq!(d.upstreams[0].fields[0].key, "endpoints");
        assert_eq!(d.settings[0].key, "server.listen");
        let text = d.to_string();
        assert!(
            text.contains("~ items\n      split.percent: 10 -> 20"),
            "{text}"
        );
        assert!(text.contains("+ fresh (added)"), "{text}");
    }

    #[test]
    fn formatting_is_not_a_difference_but_order_is() {
        let reformatted = OLD
            .replace("percent = 10", "percent   =   10")
            .replace("upstream = \"new\"", "upstream = \"new\" # moved");
        assert!(diff(OLD, &reformatted).expect("toml").is_empty());
        let swapped = OLD
            .replace("name = \"items\"", "name = \"TMP\"")
            .replace("name = \"users\"", "name = \"items\"")
            .replace("name = \"TMP\"", "name = \"users\"");
        let d = diff(OLD, &swapped).expect("toml");
        assert!(d.route_order_changed);
    }
}
