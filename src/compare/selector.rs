//! `compare.ignore` entries that are CSS selectors, for HTML: the elements they select are
//! left out of the comparison, or one attribute of them (`input[name=csrf]@value`).

use scraper::Selector;

/// An `ignore` entry that is a CSS selector, with the attribute it names, if any.
#[derive(Debug, Clone)]
pub struct Ignored {
    pub selector: Selector,
    /// `Some("value")` for `input[name=csrf]@value`: only that attribute is ignored.
    pub attribute: Option<String>,
}

/// Why an ignore entry is not a selector.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a CSS selector: {1}")]
pub struct SelectorError(pub String, pub String);

impl Ignored {
    /// `div.ad`, `meta[name="csrf-token"]@content`.
    pub fn parse(text: &str) -> Result<Ignored, SelectorError> {
        // An `@` inside quotes belongs to an attribute selector's value.
        let at = last_unquoted_at(text);
        let (selector, attribute) = match at {
            Some(i)
                if text[i + 1..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_:".contains(c))
                    && i + 1 < text.len() =>
            {
                (&text[..i], Some(text[i + 1..].to_ascii_lowercase()))
            }
            _ => (text, None),
        };
        let selector = Selector::parse(selector)
            .map_err(|e| SelectorError(text.to_string(), e.to_string()))?;
        Ok(Ignored {
            selector,
            attribute,
        })
    }
}

fn last_unquoted_at(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut found = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '@') => found = Some(i),
            _ => {}
        }
    }
    found
}
