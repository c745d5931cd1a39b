//! The config endpoints: read the running config and its history, reload, apply a new
//! one (or only compare it, with `dry_run`), roll back.

use super::respond::{error, json, text};
use crate::body::ResponseBody;
use crate::config::diff::diff;
use crate::config::{Config, Source};
use crate::reload::history::Origin;
use crate::reload::{Applied, Rejection, Reloader};
use http::{Response, StatusCode};
use serde_json::json;
use std::sync::Arc;

/// `GET /api/config`: the running config's text.
pub fn current(reloader: &Reloader) -> Response<ResponseBody> {
    let snap = reloader.snapshot().load();
    text(
        StatusCode::OK,
        "application/toml",
        snap.config.source.text.clone(),
    )
}

/// `GET /api/config/status`.
pub fn status(reloader: &Reloader, fleet: Option<&crate::fleet::Fleet>) -> Response<ResponseBody> {
    let (version, last_error, counts) = reloader.status();
    let in_sync = reloader.file_matches_running();
    let note = match (in_sync, version.as_ref().map(|v| v.source)) {
        (Some(false), Some(source)) => Some(format!(
            "the running version came from {}, and the config file holds another: the file applies again when its content changes, on SIGHUP or on POST /api/config/reload",
            source.label()
        )),
        _ => None,
    };
    json(
        StatusCode::OK,
        &json!({
            "version": version,
            "source": version.as_ref().map(|v| v.source),
            "file": reloader.path().map(|p| p.display().to_string()),
            "file_matches_running": in_sync,
            "note": note,
            "store": reloader.snapshot().load().store_health(),
            // In a fleet: the fleet's version this instance runs, and how file and fleet
            // relate (the fleet's newest wins; a file change here is published).
            "fleet": fleet.map(|f| {
                let state = f.state();
                json!({
                    "instance": f.instance,
                    "connected": state.connected,
                    "version": state.config_version,
                    "error": state.config_error,
                    "file_policy": "the fleet's newest version wins at start; a file change or SIGHUP on any instance is published as a new version",
                })
            }),
            "last_error": last_error,
            "reloads": counts,
        }),
    )
}

/// `GET /api/config/history`: the last 50 versions, newest first.
pub fn history(reloader: &Reloader) -> Response<ResponseBody> {
    json(StatusCode::OK, &json!({ "versions": reloader.history() }))
}

/// `GET /api/config/versions/{n}`: that version's text.
pub fn version(reloader: &Reloader, n: &str) -> Response<ResponseBody> {
    match n.parse().ok().and_then(|n| reloader.version(n)) {
        Some(v) => text(StatusCode::OK, "application/toml", v.text.to_string()),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no version {n} in the history (the last 50 are kept)"),
        ),
    }
}

/// `POST /api/config/reload`: re-read the file.
pub async fn reload(reloader: Arc<Reloader>) -> Response<ResponseBody> {
    let result = blocking(move || reloader.reload_file(Origin::Api)).await;
    outcome(result, None)
}

/// What a `PUT /api/config` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Apply,
    /// Validate and say what would change.
    DryRun,
    /// A dry run that reads no file the config names.
    DryRunWithoutFiles,
}

/// `PUT /api/config`: apply the TOML in the body; with `dry_run`, only validate it and
/// say what it would change.
pub async fn put(reloader: Arc<Reloader>, body: String, mode: Put) -> Response<ResponseBody> {
    let running = reloader.snapshot().load().config.source.clone();
    let changes = diff(&running.text, &body).ok();
    if mode != Put::Apply {
        let running = reloader.snapshot().load_full();
        let result = blocking(move || {
            let source = Source::new("PUT /api/config", body);
            if mode == Put::DryRun {
                Config::parse(&source)
            } else {
                Config::parse_without_files(&source)
            }
        })
        .await;
        return match result {
            Ok(config) => json(
                StatusCode::OK,
                &json!({
                    "valid": true,
                    "diff": changes,
                    "warnings": crate::reload::warnings(&config, &running.config),
                }),
            ),
            Err(e) => {
                let first = e.diagnostics().first();
                json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({
                        "valid": false,
                        "error": first.map_or_else(|| e.to_string(), |d| d.with_level("error")),
                        "line": first.map(|d| d.line),
                        "column": first.map(|d| d.column),
                        "errors": e.diagnostics(),
                        "diff": changes,
                    }),
                )
            }
        };
    }
    let result = blocking(move || reloader.apply(&body, "PUT /api/config", Origin::Api)).await;
    outcome(result, changes)
}

/// `POST /api/config/rollback/{n}`: apply version n again, as a new version.
pub async fn rollback(reloader: Arc<Reloader>, n: &str) -> Response<ResponseBody> {
    let Ok(number) = n.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{n:?} is not a version number"),
        );
    };
    let running = reloader.snapshot().load().config.source.clone();
    let target = reloader.version(number);
    let changes = target
        .as_ref()
        .and_then(|v| diff(&running.text, &v.text).ok());
    match blocking(move || reloader.rollback(number)).await {
        None => error(
            StatusCode::NOT_FOUND,
            format!("no version {number} in the history (the last 50 are kept)"),
        ),
        Some(result) => outcome(result, changes),
    }
}

fn outcome(
    result: Result<Applied, Rejection>,
    changes: Option<crate::config::diff::ConfigDiff>,
) -> Response<ResponseBody> {
    match result {
        Ok(applied) => json(
            StatusCode::OK,
            &json!({ "applied": applied, "diff": changes }),
        ),
        Err(rejection) => json(StatusCode::UNPROCESSABLE_ENTITY, &rejection),
    }
}

/// Compiling a large config takes milliseconds: keep it off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
