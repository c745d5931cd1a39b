//! HTML bodies parsed by an HTML5 parser (html5ever, through scraper) into markup trees:
//! elements by tag, attributes in any order, text with whitespace runs collapsed, comments
//! left out. Paths are CSS selectors (`html > body > div#cart > span.total`), so the
//! route's `ignore` takes selectors too: the elements they select, or one attribute of
//! them (`input[name=csrf]@value`), are left out before the walk.

use super::markup::{Attribute, Element};
pub use super::selector::Ignored;
use scraper::{ElementRef, Html, Node};
use std::collections::{HashMap, HashSet};

/// Deeper documents are not compared structurally (the walk recurses).
const MAX_DEPTH: usize = 256;

/// Why a body is not compared as HTML.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    #[error("not UTF-8")]
    Encoding,
    #[error("nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
}

/// The document's `html` element, without what `ignored` selects.
pub fn parse(body: &[u8], ignored: &[Ignored]) -> Result<Element, HtmlError> {
    let text = std::str::from_utf8(body).map_err(|_| HtmlError::Encoding)?;
    let document = Html::parse_document(text);
    let mut skip = HashSet::new();
    let mut skip_attributes: HashMap<_, Vec<&str>> = HashMap::new();
    for rule in ignored {
        for e in document.select(&rule.selector) {
            match &rule.attribute {
                None => {
                    skip.insert(e.id());
                }
                Some(a) => skip_attributes.entry(e.id()).or_default().push(a),
            }
        }
    }
    let build = Build {
        skip,
        skip_attributes,
    };
    build.element(document.root_element(), 1, 0)
}

struct Build<'a> {
    skip: HashSet<ego_tree::NodeId>,
    skip_attributes: HashMap<ego_tree::NodeId, Vec<&'a str>>,
}

impl Build<'_> {
    fn element(
        &self,
        e: ElementRef<'_>,
        position: usize,
        depth: usize,
    ) -> Result<Element, HtmlError> {
        if depth >= MAX_DEPTH {
            return Err(HtmlError::TooDeep);
        }
        let value = e.value();
        let tag = value.name().to_string();
        let skipped = self.skip_attributes.get(&e.id());
        let mut attributes: Vec<Attribute> = value
            .attrs()
            .filter(|(name, _)| !skipped.is_some_and(|s| s.contains(name)))
            .map(|(name, v)| Attribute {
                key: name.to_string(),
                name: name.to_string(),
                value: collapse(v),
            })
            .collect();
        attributes.sort_by(|a, b| a.key.cmp(&b.key));
        let mut text = String::new();
        let mut children = Vec::new();
        // Positions count every sibling of the tag, ignored or not, as `:nth-of-type` does.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for child in e.children() {
            match child.value() {
                Node::Text(t) => {
                    text.push(' ');
                    text.push_str(t);
                }
                Node::Element(el) => {
                    let n = seen.entry(el.name()).or_insert(0);
                    *n += 1;
                    if self.skip.contains(&child.id()) {
                        continue;
                    }
                    if let Some(child) = ElementRef::wrap(child) {
                        children.push(self.element(child, *n, depth + 1)?);
                    }
                }
                _ => {}
            }
        }
        Ok(Element {
            key: tag.clone(),
            label: label(&tag, value.id(), value.classes()),
            position,
            attributes,
            text: collapse(&text),
            children,
        })
    }
}

/// `div#cart.total`: the tag, with the id and classes that a selector can name plainly.
fn label<'a>(tag: &str, id: Option<&str>, classes: impl Iterator<Item = &'a str>) -> String {
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit() || c == '-')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let mut out = tag.to_string();
    if let Some(id) = id.filter(|i| plain(i)) {
        out.push('#');
        out.push_str(id);
    }
    let mut classes: Vec<&str> = classes.filter(|c| plain(c)).collect();
    classes.sort_unstable();
    for c in classes {
        out.push('.');
        out.push_str(c);
    }
    out
}

/// Whitespace runs as one space, trimmed: how a browser shows text.
fn collapse(text: &str) -> String {
    text.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::markup::{diff, Syntax};
    use crate::compare::{Kind, Rules};

    fn found(a: &str, b: &str, rules: &Rules) -> Vec<(String, Kind)> {
        let ignored = &rules.html_ignore;
        let (x, y) = (
            parse(a.as_bytes(), ignored).unwrap(),
            parse(b.as_bytes(), ignored).unwrap(),
        );
        let mut out = Vec::new();
        diff(&x, &y, Syntax::Html, rules, &mut out);
        out.into_iter().map(|d| (d.path, d.kind)).collect()
    }

    const PAGE: &str = r#"<!doctype html>
<html><head><title>Cart</title></head>
<body>
  <form><input type="hidden" name="csrf" value="abc123"><input name="q" value=""></form>
  <div id="cart" class="box wide">
    <ul><li>Dune <span class="price">10.00</span></li><li>Emma <span class="price">7.50</span></li></ul>
    <span class="total">17.50</span>
  </div>
  <!-- rendered in 12 ms -->
</body></html>"#;

    #[test]
    fn a_changed_total_is_named_by_a_css_path() {
        let changed = PAGE.replace("17.50", "17.95");
        assert_eq!(
            found(PAGE, &changed, &Rules::default()),
            vec![(
                "html > body > div#cart.box.wide > span.total".to_string(),
                Kind::Value
            )]
        );
        let second = PAGE.replace(">7.50</span>", ">7.95</span>");
        assert_eq!(
            found(PAGE, &second, &Rules::default()),
            vec![(
                "html > body > div#cart.box.wide > ul > li:nth-of-type(2) > span.price".to_string(),
                Kind::Value
            )]
        );
    }

    #[test]
    fn attribute_order_whitespace_and_comments_are_not_differences() {
        let other = PAGE
            .replace(r#"class="box wide""#, "class=\"box   wide\"")
            .replace(
                r#"type="hidden" name="csrf""#,
                r#"name="csrf"  type="hidden""#,
            )
            .replace("Dune <span", "Dune\n\n      <span")
            .replace("<!-- rendered in 12 ms -->", "<!-- rendered in 40 ms -->");
        assert_eq!(found(PAGE, &other, &Rules::default()), vec![]);
    }

    #[test]
    fn ignore_takes_selectors_for_elements_or_one_attribute() {
        let token = PAGE.replace("abc123", "zzz999");
        assert_eq!(
            found(PAGE, &token, &Rules::default()),
            vec![(
                "html > body > form > input:nth-of-type(1)@value".to_string(),
                Kind::Value
            )]
        );
        let mut rules = Rules::default();
        rules.html_ignore = vec![Ignored::parse("input[name=\"csrf\"]@value").unwrap()];
        assert_eq!(found(PAGE, &token, &rules), vec![]);
        // Only the value: a changed type is still found.
        let typed = token.replace("type=\"hidden\"", "type=\"text\"");
        assert_eq!(found(PAGE, &typed, &rules).len(), 1);
        // A whole element, and everything in it.
        rules.html_ignore = vec![Ignored::parse("#cart").unwrap()];
        assert_eq!(found(PAGE, &PAGE.replace("17.50", "1"), &rules), vec![]);
        // The path of a difference is itself a selector that ignores it.
        let changed = PAGE.replace(">7.50</span>", ">7.95</span>");
        let path = found(PAGE, &changed, &Rules::default())[0].0.clone();
        rules.html_ignore = vec![Ignored::parse(&path).unwrap()];
        assert_eq!(found(PAGE, &changed, &rules), vec![]);
    }

    #[test]
    fn missing_and_extra_elements() {
        let removed = PAGE.replace(r#"<span class="total">17.50</span>"#, "");
        assert_eq!(
            found(PAGE, &removed, &Rules::default()),
            vec![(
                "html > body > div#cart.box.wide > span.total".to_string(),
                Kind::Missing
            )]
        );
        let added = PAGE.replace("</ul>", "</ul><p>Free shipping</p>");
        assert_eq!(
            found(PAGE, &added, &Rules::default()),
            vec![(
                "html > body > div#cart.box.wide > p".to_string(),
                Kind::Extra
            )]
        );
    }

    #[test]
    fn selectors_parse_or_are_refused() {
        assert!(Ignored::parse("meta[name=\"csrf-token\"]@content").is_ok());
        assert_eq!(
            Ignored::parse("a[href=\"mailto:x@y\"]").unwrap().attribute,
            None,
            "an @ inside quotes is the selector's"
        );
        assert!(Ignored::parse("div >").is_err());
        assert!(Ignored::parse("[[").is_err());
    }
}
