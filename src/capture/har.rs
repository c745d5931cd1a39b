//! HAR 1.2 (what browsers' developer tools, mitmproxy and Charles export): read as
//! captures, so a team can start from traffic it already has, and written from captures
//! (`banyan capture export --har`). Only the fields a replay needs are read; the rest of
//! a HAR file is ignored, as the spec allows.

use super::record::{parse_rfc3339, rfc3339, Answer, Body, Record, Request, VERSION};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Har {
    pub log: Log,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Log {
    #[serde(default = "version")]
    pub version: String,
    #[serde(default)]
    pub creator: Creator,
    #[serde(default)]
    pub entries: Vec<Entry>,
}

fn version() -> String {
    "1.2".into()
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Creator {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub started_date_time: String,
    /// Milliseconds, the whole exchange.
    #[serde(default)]
    pub time: f64,
    pub request: HarRequest,
    pub response: HarResponse,
    /// banyan's own field (HAR allows `_`-prefixed ones): the route of the capture.
    #[serde(default, rename = "_route", skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HarRequest {
    pub method: String,
    pub url: String,
    #[serde(default = "http11")]
    pub http_version: String,
    #[serde(default)]
    pub headers: Vec<NameValue>,
    #[serde(default)]
    pub post_data: Option<PostData>,
}

fn http11() -> String {
    "HTTP/1.1".into()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HarResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<NameValue>,
    #[serde(default)]
    pub content: Content,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData {
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `"base64"` when `text` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// HTTP/2 pseudo-headers and what a browser adds that a replay must not send as is.
fn kept(name: &str) -> bool {
    !name.starts_with(':') && !name.eq_ignore_ascii_case("content-length")
}

/// A HAR file's entries as capture records: the URL's path and query, the headers
/// (pseudo-headers left out), the post data and the response's content.
pub fn records(har: &Har) -> Vec<Record> {
    har.log
        .entries
        .iter()
        .filter_map(|e| {
            let uri: http::Uri = e.request.url.parse().ok()?;
            let pairs = |h: &[NameValue]| -> Vec<(String, String)> {
                h.iter()
                    .filter(|nv| kept(&nv.name))
                    .map(|nv| (nv.name.to_ascii_lowercase(), nv.value.clone()))
                    .collect()
            };
            let content = &e.response.content;
            let body = match (&content.text, content.encoding.as_deref()) {
                (Some(t), Some("base64")) => Body {
                    body: String::new(),
                    body_base64: Some(t.clone()),
                },
                (Some(t), _) => Body {
                    body: t.clone(),
                    body_base64: None,
                },
                (None, _) => Body::default(),
            };
            Some(Record {
                v: VERSION,
                time: parse_rfc3339(&e.started_date_time)
                    .map_or_else(|| e.started_date_time.clone(), rfc3339),
                route: e.route.clone(),
                request: Request {
                    method: e.request.method.to_ascii_uppercase(),
                    path: uri.path().to_string(),
                    query: uri.query().map(str::to_string),
                    headers: pairs(&e.request.headers),
                    body: Body {
                        body: e
                            .request
                            .post_data
                            .as_ref()
                            .map(|p| p.text.clone())
                            .unwrap_or_default(),
                        body_base64: None,
                    },
                },
                response: Answer {
                    status: e.response.status,
                    headers: pairs(&e.response.headers),
                    body,
                    latency_ms: e.time,
                },
            })
        })
        .collect()
}

/// Records as a HAR file; `origin` (`http://shop.example.com`) makes the URLs whole.
pub fn from_records(records: &[Record], origin: &str) -> Har {
    let entries = records
        .iter()
        .map(|r| {
            let pairs = |h: &[(String, String)]| -> Vec<NameValue> {
                h.iter()
                    .map(|(name, value)| NameValue {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect()
            };
            let header = |h: &[(String, String)], name: &str| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let request_body = r.request.body.bytes();
            let response_body = r.response.body.bytes();
            let content = match &r.response.body.body_base64 {
                Some(b) => Content {
                    size: response_body.len() as i64,
                    mime_type: header(&r.response.headers, "content-type"),
                    text: Some(b.clone()),
                    encoding: Some("base64".into()),
                },
                None => Content {
                    size: response_body.len() as i64,
                    mime_type: header(&r.response.headers, "content-type"),
                    text: Some(r.response.body.body.clone()),
                    encoding: None,
                },
            };
            Entry {
                started_date_time: r.time.clone(),
                time: r.response.latency_ms,
                request: HarRequest {
                    method: r.request.method.clone(),
                    url: format!("{}{}", origin.trim_end_matches('/'), r.request.target()),
                    http_version: http11(),
                    headers: pairs(&r.request.headers),
                    post_data: (!request_body.is_empty()).then(|| PostData {
                        mime_type: header(&r.request.headers, "content-type"),
                        text: String::from_utf8_lossy(&request_body).into_owned(),
                    }),
                },
                response: HarResponse {
                    status: r.response.status,
                    headers: pairs(&r.response.headers),
                    content,
                },
                route: r.route.clone(),
            }
        })
        .collect();
    Har {
        log: Log {
            version: version(),
            creator: Creator {
                name: "banyan".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            entries,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from what Chromium's developer tools save.
    const BROWSER_HAR: &str = r#"{"log":{"version":"1.2","creator":{"name":"WebInspector","version":"537.36"},
      "pages":[{"startedDateTime":"2026-11-20T10:00:00.000Z","id":"page_1","title":"shop","pageTimings":{}}],
      "entries":[{"_initiator":{"type":"script"},"pageref":"page_1","startedDateTime":"2026-11-20T10:00:01.250Z","time":42.5,
        "request":{"method":"GET","url":"https://shop.example.com/api/items/7?expand=price","httpVersion":"http/2.0",
          "headers":[{"name":":authority","value":"shop.example.com"},{"name":"accept","value":"application/json"}],
          "queryString":[{"name":"expand","value":"price"}],"cookies":[],"headersSize":-1,"bodySize":0},
        "response":{"status":200,"statusText":"","httpVersion":"http/2.0","headers":[{"name":"content-type","value":"application/json"}],
          "cookies":[],"content":{"size":20,"mimeType":"application/json","text":"{\"id\":7,\"price\":10}"},
          "redirectURL":"","headersSize":-1,"bodySize":-1},"cache":{},"timings":{"send":0.1,"wait":40,"receive":2.4}},
       {"startedDateTime":"2026-11-20T10:00:02.000Z","time":10,
        "request":{"method":"POST","url":"https://shop.example.com/api/cart","httpVersion":"http/2.0","headers":[],
          "postData":{"mimeType":"application/json","text":"{\"id\":7}"}},
        "response":{"status":201,"headers":[],"content":{"size":2,"mimeType":"image/png","text":"AAE=","encoding":"base64"}}}]}}"#;

    #[test]
    fn a_browser_har_reads_as_records() {
        let har: Har = serde_json::from_str(BROWSER_HAR).unwrap();
        let r = records(&har);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].request.method, "GET");
        assert_eq!(r[0].request.target(), "/api/items/7?expand=price");
        assert_eq!(
            r[0].request.headers,
            vec![("accept".to_string(), "application/json".to_string())],
            "pseudo-headers left out"
        );
        assert_eq!(r[0].response.body.body, "{\"id\":7,\"price\":10}");
        assert_eq!(r[0].time, "2026-11-20T10:00:01.250Z");
        assert_eq!(r[1].request.body.body, "{\"id\":7}");
        assert_eq!(r[1].response.body.bytes().as_ref(), &[0, 1]);
    }

    #[test]
    fn records_round_trip_through_har() {
        let har: Har = serde_json::from_str(BROWSER_HAR).unwrap();
        let r = records(&har);
        let written = serde_json::to_string(&from_records(&r, "http://shop.example.com")).unwrap();
        let back = records(&serde_json::from_str(&written).unwrap());
        assert_eq!(back, r);
    }
}
