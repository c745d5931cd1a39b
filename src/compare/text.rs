//! Text bodies: compared after the route's normalisers; where they differ, a line diff
//! (similar's) says where, and the sample keeps its hunks for the dashboard.

use super::{short, Difference, Kind};
use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};
use std::time::Duration;

/// Lines of context around each change.
const CONTEXT: usize = 3;
/// Lines a stored diff holds at most; the rest is cut (the sample has both bodies).
const MAX_LINES: usize = 400;
/// A diff of two large, very different texts gives up finding the shortest edit.
const DEADLINE: Duration = Duration::from_millis(50);

/// One difference for two texts that differ: the first changed line of each side.
pub fn compare(a: &str, b: &str, out: &mut Vec<Difference>) {
    if a == b {
        return;
    }
    let diff = TextDiff::configure().timeout(DEADLINE).diff_lines(a, b);
    let (mut removed, mut added) = (None, None);
    for change in diff.iter_all_changes() {
        let line = |i: Option<usize>| {
            format!(
                "line {}: {}",
                i.map_or(0, |i| i + 1),
                change.value().trim_end()
            )
        };
        match change.tag() {
            ChangeTag::Delete if removed.is_none() => removed = Some(line(change.old_index())),
            ChangeTag::Insert if added.is_none() => added = Some(line(change.new_index())),
            _ => {}
        }
        if removed.is_some() && added.is_some() {
            break;
        }
    }
    out.push(Difference {
        path: "body".into(),
        field: "body".into(),
        kind: Kind::Value,
        primary: Some(short(
            &removed.unwrap_or_else(|| "(lines only added)".into()),
        )),
        shadow: Some(short(
            &added.unwrap_or_else(|| "(lines only removed)".into()),
        )),
    });
}

/// A run of changed lines with their context, numbered from 1 on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hunk {
    pub primary_start: usize,
    pub shadow_start: usize,
    /// `" "` context, `"-"` only the primary's, `"+"` only the shadow's; the line
    /// without its end.
    pub lines: Vec<(String, String)>,
}

/// The hunks of a line diff, at most `MAX_LINES` lines in all.
pub fn line_diff(a: &str, b: &str) -> Vec<Hunk> {
    let diff = TextDiff::configure().timeout(DEADLINE).diff_lines(a, b);
    let mut hunks = Vec::new();
    let mut budget = MAX_LINES;
    for group in diff.grouped_ops(CONTEXT) {
        let Some(first) = group.first() else { continue };
        let mut hunk = Hunk {
            primary_start: first.old_range().start + 1,
            shadow_start: first.new_range().start + 1,
            lines: Vec::new(),
        };
        for op in &group {
            for change in diff.iter_changes(op) {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                let tag = match change.tag() {
                    ChangeTag::Equal => " ",
                    ChangeTag::Delete => "-",
                    ChangeTag::Insert => "+",
                };
                let text = change.value().trim_end_matches(['\r', '\n']).to_string();
                hunk.lines.push((tag.to_string(), text));
            }
        }
        hunks.push(hunk);
        if budget == 0 {
            break;
        }
    }
    hunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_changed_lines_are_named() {
        let a = "one\ntwo\nthree\nfour\n";
        let b = "one\ntwo\nTHREE\nfour\n";
        let mut out = Vec::new();
        compare(a, b, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].primary.as_deref(), Some("line 3: three"));
        assert_eq!(out[0].shadow.as_deref(), Some("line 3: THREE"));
        let mut none = Vec::new();
        compare(a, a, &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn hunks_hold_the_changes_with_context() {
        let a: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let b = a
            .replace("line 10\n", "line ten\n")
            .replace("line 20\n", "");
        let hunks = line_diff(&a, &b);
        assert_eq!(hunks.len(), 2, "{hunks:?}");
        assert_eq!(hunks[0].primary_start, 7);
        let tags: Vec<&str> = hunks[0].lines.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tags, [" ", " ", " ", "-", "+", " ", " ", " "]);
        assert_eq!(hunks[0].lines[3].1, "line 10");
        assert_eq!(hunks[0].lines[4].1, "line ten");
        assert_eq!(hunks[1].lines.last().map(|l| l.0.as_str()), Some("-"));
    }

    #[test]
    fn a_huge_diff_is_cut() {
        let a: String = (0..5000).map(|i| format!("{i}\n")).collect();
        let b: String = (0..5000).map(|i| format!("x{i}\n")).collect();
        let lines: usize = line_diff(&a, &b).iter().map(|h| h.lines.len()).sum();
        assert_eq!(lines, MAX_LINES);
    }
}
