//! XML bodies (`application/xml`, `text/xml`, `+xml`, SOAP) parsed by quick-xml into
//! markup trees: names by namespace URI (a prefix is how a document spells it, not what
//! it means), text trimmed, comments, processing instructions and the doctype left out.

use super::markup::{Attribute, Element};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::NsReader;
use std::collections::HashMap;

/// Deeper documents are not compared structurally (the walk recurses).
const MAX_DEPTH: usize = 256;

/// Why a body is not XML.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("{0}")]
    Syntax(#[from] quick_xml::Error),
    #[error("attribute: {0}")]
    Attribute(#[from] quick_xml::events::attributes::AttrError),
    #[error("not UTF-8: {0}")]
    Encoding(#[from] quick_xml::encoding::EncodingError),
    #[error("nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("no root element")]
    Empty,
    #[error("unclosed element <{0}>")]
    Unclosed(String),
}

/// An element being read, with its text so far and how many children of each name it
/// has seen (for their positions).
struct Open {
    element: Element,
    text: String,
    seen: HashMap<String, usize>,
}

/// The document's root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (ns, event) = reader.read_resolved_event()?;
        let ns = namespace(&ns);
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let element = start_element(&reader, &start, ns, &mut stack)?;
                stack.push(Open {
                    element,
                    text: String::new(),
                    seen: HashMap::new(),
                });
            }
            Event::Empty(start) => {
                let element = start_element(&reader, &start, ns, &mut stack)?;
                close(element, &mut stack, &mut root);
            }
            Event::End(_) => {
                let Some(mut open) = stack.pop() else {
                    return Err(XmlError::Empty);
                };
                open.element.text = open.text.trim().to_string();
                close(open.element, &mut stack, &mut root);
            }
            Event::Text(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&t.xml_content()?);
                }
            }
            Event::CData(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&t.decode()?);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(open) = stack.last_mut() {
                    let name = r.decode()?;
                    match r.resolve_char_ref()? {
                        Some(c) => open.text.push(c),
                        None => match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => open.text.push_str(s),
                            // An entity of the doctype's: compared as written.
                            None => open.text.push_str(&format!("&{name};")),
                        },
                    }
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {}
        }
    }
    if let Some(open) = stack.pop() {
        return Err(XmlError::Unclosed(open.element.label));
    }
    root.ok_or(XmlError::Empty)
}

fn namespace(ns: &ResolveResult<'_>) -> Option<String> {
    match ns {
        ResolveResult::Bound(uri) => Some(String::from_utf8_lossy(uri.as_ref()).into_owned()),
        _ => None,
    }
}

fn keyed(ns: Option<&str>, local: &str) -> String {
    match ns {
        Some(uri) => format!("{{{uri}}}{local}"),
        None => local.to_string(),
    }
}

fn start_element(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    ns: Option<String>,
    stack: &mut [Open],
) -> Result<Element, XmlError> {
    let name = start.name();
    let local = String::from_utf8_lossy(name.local_name().as_ref()).into_owned();
    let key = keyed(ns.as_deref(), &local);
    let position = match stack.last_mut() {
        Some(parent) => {
            let n = parent.seen.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        }
        None => 1,
    };
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute?;
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let (ns, local) = reader.resolve_attribute(QName(attribute.key.as_ref()));
        let name = String::from_utf8_lossy(local.as_ref()).into_owned();
        attributes.push(Attribute {
            key: keyed(namespace(&ns).as_deref(), &name),
            name,
            value: attribute.unescape_value()?.into_owned(),
        });
    }
    attributes.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Element {
        key,
        label: local,
        position,
        attributes,
        text: String::new(),
        children: Vec::new(),
    })
}

fn close(element: Element, stack: &mut [Open], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.element.children.push(element),
        None => {
            // A second root is not well-formed; the first one is the document.
            if root.is_none() {
                *root = Some(element);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::markup::{diff, Syntax};
    use crate::compare::{Kind, Rules};

    fn found(a: &str, b: &str, rules: &Rules) -> Vec<(String, Kind)> {
        let (x, y) = (parse(a.as_bytes()).unwrap(), parse(b.as_bytes()).unwrap());
        let mut out = Vec::new();
        diff(&x, &y, Syntax::Xml, rules, &mut out);
        out.into_iter().map(|d| (d.path, d.kind)).collect()
    }

    const CATALOG: &str = r#"<?xml version="1.0"?>
<!-- generated -->
<catalog>
  <book id="b1"><title>Dune</title><price>10.00</price></book>
  <book id="b2"><title>Emma</title><price>7.50</price></book>
</catalog>"#;

    #[test]
    fn a_changed_price_is_named_by_its_path() {
        let changed = CATALOG.replace("7.50", "7.95");
        assert_eq!(
            found(CATALOG, &changed, &Rules::default()),
            vec![("/catalog/book[2]/price".to_string(), Kind::Value)]
        );
        let attr = CATALOG.replace("\"b2\"", "\"B2\"");
        assert_eq!(
            found(CATALOG, &attr, &Rules::default()),
            vec![("/catalog/book[2]/@id".to_string(), Kind::Value)]
        );
    }

    #[test]
    fn prefixes_whitespace_comments_and_attribute_order_are_not_differences() {
        let a = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><r a="1" b="2">x</r></s:Body></s:Envelope>"#;
        let b = r#"<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <!-- another comment -->
  <soap:Body>
    <?pi here?>
    <r b="2"   a="1"> x </r>
  </soap:Body>
</soap:Envelope>"#;
        assert_eq!(found(a, b, &Rules::default()), vec![]);
        // Another namespace URI is another element.
        let other = b.replace("soap/envelope/", "soap/other/");
        let d = found(a, &other, &Rules::default());
        assert!(d.contains(&("/Envelope".to_string(), Kind::Value)), "{d:?}");
    }

    #[test]
    fn missing_extra_and_length() {
        let a = "<a><b>1</b><c>2</c></a>";
        assert_eq!(
            found(a, "<a><b>1</b></a>", &Rules::default()),
            vec![("/a/c".to_string(), Kind::Missing)]
        );
        assert_eq!(
            found(a, "<a><b>1</b><c>2</c><d/></a>", &Rules::default()),
            vec![("/a/d".to_string(), Kind::Extra)]
        );
        assert_eq!(
            found(a, "<a><b>1</b><b>1</b><c>2</c></a>", &Rules::default()),
            vec![("/a/b".to_string(), Kind::Length)]
        );
    }

    #[test]
    fn rules_apply_with_xml_paths() {
        let reordered = r#"<catalog>
  <book id="b2"><title>Emma</title><price>7.50</price></book>
  <book id="b1"><title>Dune</title><price>10.00</price></book>
</catalog>"#;
        assert_eq!(
            found(CATALOG, reordered, &Rules::default()),
            vec![("/catalog/book".to_string(), Kind::Order)]
        );
        let mut unordered = Rules::default();
        unordered.unordered.insert("/catalog/book".into());
        assert_eq!(found(CATALOG, reordered, &unordered), vec![]);

        let keyed_change = reordered.replace("7.50", "7.95");
        let mut keyed = Rules::default();
        keyed
            .unordered_by
            .insert("/catalog/book".into(), "@id".into());
        assert_eq!(
            found(CATALOG, &keyed_change, &keyed),
            vec![("/catalog/book[2]/price".to_string(), Kind::Value)]
        );
        keyed
            .unordered_by
            .insert("/catalog/book".into(), "title".into());
        assert_eq!(
            found(CATALOG, &keyed_change, &keyed),
            vec![("/catalog/book[2]/price".to_string(), Kind::Value)]
        );

        let ignore = Rules::default()
            .with_ignores(&["/catalog/book/price".to_string()])
            .unwrap();
        assert_eq!(
            found(CATALOG, &CATALOG.replace("7.50", "7.95"), &ignore),
            vec![]
        );
        let any_depth = Rules::default()
            .with_ignores(&["//@id".to_string()])
            .unwrap();
        assert_eq!(
            found(CATALOG, &CATALOG.replace("b2", "x"), &any_depth),
            vec![]
        );

        let mut tolerance = Rules::default();
        tolerance.tolerance.absolute = 0.01;
        assert_eq!(
            found(CATALOG, &CATALOG.replace("7.50", "7.505"), &tolerance),
            vec![]
        );
        assert_eq!(
            found(CATALOG, &CATALOG.replace("7.50", "7.6"), &tolerance).len(),
            1
        );

        let normalize = Rules::default()
            .with_normalizers(&[("\\d{4}-\\d{2}-\\d{2}".into(), "DATE".into())])
            .unwrap();
        let (x, y) = (
            "<a at=\"2024-01-01\">on 2024-01-01</a>",
            "<a at=\"2025-02-02\">on 2025-02-02</a>",
        );
        assert_eq!(found(x, y, &normalize), vec![]);
        assert_eq!(found(x, y, &Rules::default()).len(), 2);
    }

    #[test]
    fn names_match_whatever_their_case_where_the_rule_says() {
        let (a, b) = (
            "<r><Item Id=\"1\">x</Item></r>",
            "<r><item id=\"1\">x</item></r>",
        );
        assert_eq!(found(a, b, &Rules::default()).len(), 2);
        let rules = Rules::default()
            .with_case_insensitive_keys(&["/r".to_string(), "/r/*".to_string()])
            .unwrap();
        assert_eq!(found(a, b, &rules), vec![]);
    }

    #[test]
    fn entities_cdata_and_refusals() {
        assert_eq!(
            found(
                "<a>x &amp; y</a>",
                "<a><![CDATA[x & y]]></a>",
                &Rules::default()
            ),
            vec![]
        );
        assert_eq!(found("<a>&#65;</a>", "<a>A</a>", &Rules::default()), vec![]);
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"not xml").is_err());
        assert!(parse(b"<a>").is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(parse(deep.as_bytes()), Err(XmlError::TooDeep)));
    }
}
