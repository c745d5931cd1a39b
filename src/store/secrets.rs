//! What counts as a secret, with no configuration: names that mark credentials (of JSON
//! keys, form fields, query parameters, headers) and values that look like credentials
//! wherever they appear (Bearer tokens, JWTs, card numbers that pass the Luhn check).
//! Pure: the redactor decides what to do with them.

use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

/// Names of fields and parameters that carry credentials, compared case-insensitively
/// with `-`, `_` and camelCase alike. A name also counts when one of them is among its
/// words (`user_password`, `x-api-key`, `accessToken`, `x-session-id`).
pub const SECRET_NAMES: &[&str] = &[
    "authorization",
    "cookie",
    "set_cookie",
    "password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "client_secret",
    "private_key",
    "session",
];

/// Any header whose name contains one of these carries a credential.
const SECRET_HEADER_PARTS: &[&str] = &["token", "secret", "key", "auth", "cookie", "session"];

/// A name in lower case, its words joined by `_` (`accessToken`, `access-token`).
fn normalized(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.trim().chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(match c {
            '-' | '.' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        });
    }
    out
}

/// Whether a JSON key, form field or query parameter named `name` holds a secret;
/// `extra` holds further names from the config, already normalized.
pub fn is_secret_name(name: &str, extra: &[String]) -> bool {
    let name = normalized(name);
    let words: Vec<&str> = name.split('_').filter(|w| !w.is_empty()).collect();
    let marks = |secret: &str| {
        let secret: Vec<&str> = secret.split('_').collect();
        words.windows(secret.len()).any(|w| w == secret.as_slice())
    };
    SECRET_NAMES.iter().any(|s| marks(s)) || extra.iter().any(|s| marks(s))
}

/// Whether a header named `name` holds a secret.
pub fn is_secret_header(name: &str, extra: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_HEADER_PARTS.iter().any(|p| lower.contains(p)) || is_secret_name(name, extra)
}

/// A config's extra name, normalized as names are compared.
pub fn normalize_name(name: &str) -> String {
    normalized(name)
}

static BEARER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*").expect("bearer regex")
});
static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*").expect("jwt regex")
});
static CARD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("card regex"));
/// `name=value`, as in a query string, a form or a cookie, written out in text.
static PAIR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"([A-Za-z0-9_.\-]+)=([^&\s"';,<>]+)"#).expect("pair regex"));

/// A multipart form part: its name, and the first line of its content.
static PART: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)name="([^"]+)"[^\r\n]*(?:\r\n[^\r\n]+)*\r\n\r\n([^\r\n]*)"#)
        .expect("part regex")
});

/// `text` with every credential-looking value replaced by `mask(value)`: Bearer and Basic
/// credentials, JWTs, card numbers, and the values of `name=value` pairs and multipart
/// form parts whose name marks a secret (`extra`: further names, normalized).
pub fn scrub<'a>(text: &'a str, extra: &[String], mask: impl Fn(&str) -> String) -> Cow<'a, str> {
    let secret_pair = |c: &regex::Captures<'_>| is_secret_name(&c[1], extra);
    // Most text holds none: a few scans, no copy.
    let any = BEARER.is_match(text)
        || JWT.is_match(text)
        || CARD.find_iter(text).any(|m| luhn(m.as_str()))
        || (text.contains('=') && PAIR.captures_iter(text).any(|c| secret_pair(&c)))
        || (text.contains("name=\"") && PART.captures_iter(text).any(|c| secret_pair(&c)));
    if !any {
        return Cow::Borrowed(text);
    }
    let text = PART.replace_all(text, |c: &regex::Captures<'_>| {
        if secret_pair(c) {
            let value = c.get(2).map_or(0..0, |m| m.range());
            let whole = c.get(0).map_or(0..0, |m| m.range());
            let head = &c[0][..value.start - whole.start];
            format!("{head}{}", mask(&c[2]))
        } else {
            c[0].to_string()
        }
    });
    let text = PAIR.replace_all(&text, |c: &regex::Captures<'_>| {
        if secret_pair(c) {
            format!("{}={}", &c[1], mask(&c[2]))
        } else {
            c[0].to_string()
        }
    });
    let text = BEARER.replace_all(&text, |c: &regex::Captures<'_>| {
        format!("{} {}", &c[1], mask(&c[0]))
    });
    let text = JWT.replace_all(&text, |c: &regex::Captures<'_>| mask(&c[0]));
    let text = CARD.replace_all(&text, |c: &regex::Captures<'_>| {
        if luhn(&c[0]) {
            mask(&c[0])
        } else {
            c[0].to_string()
        }
    });
    Cow::Owned(text.into_owned())
}

/// The Luhn check of a card number (spaces and dashes ignored), 13 to 19 digits.
fn luhn(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 {
                    d - 9
                } else {
                    d
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for secret in [
            "password",
            "Password",
            "user_password",
            "API-Key",
            "apikey",
            "x-api-key",
            "access_token",
            "refresh-token",
            "client_secret",
            "session",
            "Set-Cookie",
            "github_token",
        ] {
            assert!(is_secret_name(secret, &[]), "{secret}");
        }
        for camel in ["accessToken", "clientSecret", "x_session_id", "apiKey"] {
            assert!(is_secret_name(camel, &[]), "{camel}");
        }
        for plain in [
            "name",
            "price",
            "tokens_left",
            "sessions",
            "passwordless",
            "monkey",
        ] {
            assert!(!is_secret_name(plain, &[]), "{plain}");
        }
        assert!(is_secret_name("SSN", &[normalize_name("ssn")]));
        for header in [
            "authorization",
            "x-auth-token",
            "x-session-id",
            "x-api-key",
            "cookie",
        ] {
            assert!(is_secret_header(header, &[]), "{header}");
        }
        assert!(!is_secret_header("content-type", &[]));
    }

    #[test]
    fn credential_looking_values() {
        let mask = |v: &str| format!("<{}>", v.len());
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let text = format!("auth Bearer abcDEF123456789xyz and {jwt}; card 4111 1111 1111 1111, order 1234567890123");
        let out = scrub(&text, &[], mask);
        assert!(!out.contains("abcDEF123456789xyz"), "{out}");
        assert!(!out.contains("eyJzdWIi"), "{out}");
        assert!(!out.contains("4111 1111"), "{out}");
        assert!(out.contains("Bearer <"), "{out}");
        // A number that fails the Luhn check is an order number, not a card.
        assert!(out.contains("1234567890123"), "{out}");
        assert!(matches!(scrub("nothing here", &[], mask), Cow::Borrowed(_)));
        let echoed = scrub(
            "/login?user=ann&token=t-1&page=2 sid=x password=hunter2",
            &[],
            mask,
        );
        assert!(
            !echoed.contains("t-1") && !echoed.contains("hunter2"),
            "{echoed}"
        );
        assert!(
            echoed.contains("user=ann") && echoed.contains("page=2"),
            "{echoed}"
        );
    }

    #[test]
    fn luhn_numbers() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("4111111111111112"));
        assert!(!luhn("411111111111"));
    }
}
