//! Small response builders for the admin API.

use crate::body::{self, ResponseBody};
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<ResponseBody> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub fn json(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
    let body =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text(status, "application/json", body)
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response<ResponseBody> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

pub fn unauthorized() -> Response<ResponseBody> {
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "this call changes banyan: send Authorization: Bearer <token>",
    );
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}
