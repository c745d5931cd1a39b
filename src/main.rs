//! The banyan command line: run, check, explain, demo.

/// jemalloc, with its background threads, returns what closed connections freed to the
/// system within seconds; glibc's malloc kept all 290 MB of 10,000 idle connections after
/// they closed (loadtest/idle_connections.py).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::{bail, Context, Result};
use banyan::config::{Config, ConfigError};
use banyan::routing::explain::explain;
use banyan::routing::RequestView;
use banyan::server::handover::Takeover;
use banyan::server::listeners::Inherited;
use clap::{Parser, Subcommand, ValueEnum};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "banyan", version, about = "A strangler-fig migration proxy")]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "human", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Markdown,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic with a config file.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Serve the admin API on a non-loopback address even without a token.
        #[arg(long)]
        insecure_admin: bool,
        /// Worker threads of the data plane (default: one per CPU core; with 1,
        /// everything runs on one thread).
        #[arg(long, value_name = "N")]
        threads: Option<std::num::NonZeroUsize>,
        /// Take the listening sockets over from the banyan running with the same
        /// `server.upgrade_socket`, which then drains and exits: a new binary or config
        /// with no connection refused.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file and print a summary; exit 1 if it is invalid.
    Check {
        #[arg(short, long)]
        config: PathBuf,
        /// Also print, route by route, what the file would change in the banyan running
        /// with this admin address, such as http://127.0.0.1:9090.
        #[arg(long, value_name = "ADMIN_URL")]
        against: Option<String>,
    },
    /// Show which route a request takes, why earlier routes did not match, and where it goes.
    Explain {
        #[arg(short, long)]
        config: PathBuf,
        /// The request method, such as GET.
        method: String,
        /// The URL or path, such as http://shop.example/items/42?x=1 or /items/42.
        url: String,
        /// A request header, 'Name: value'; repeat for more.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The client's IP address (for client-IP splits).
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: IpAddr,
    },
    /// Control a route's migration ramp in a running banyan: pause, resume, promote (one
    /// step up, gates or not) or rollback (one step down, and pause).
    Migrate {
        /// The route's name.
        route: String,
        #[arg(value_parser = ["pause", "resume", "promote", "rollback"])]
        call: String,
        /// The running banyan's admin address, such as http://127.0.0.1:9090.
        #[arg(
            long,
            value_name = "ADMIN_URL",
            default_value = "http://127.0.0.1:9090"
        )]
        admin: String,
    },
    /// Print the migration readiness report of a running banyan: per route, its stage,
    /// traffic, match rate, open regressions and whether it is ready for the next stage.
    Report {
        #[arg(
            long,
            value_name = "ADMIN_URL",
            default_value = "http://127.0.0.1:9090"
        )]
        admin: String,
        #[arg(long, value_enum, default_value = "markdown")]
        format: ReportFormat,
    },
    /// Fleet mode: the instances sharing this banyan's PostgreSQL, as a running banyan
    /// sees them (`status`).
    Fleet {
        #[arg(value_parser = ["status"])]
        what: String,
        #[arg(
            long,
            value_name = "ADMIN_URL",
            default_value = "http://127.0.0.1:9090"
        )]
        admin: String,
        /// The answer as JSON, not a table.
        #[arg(long)]
        json: bool,
    },
    /// Start two demo backends and banyan in front of them.
    Demo {
        /// The demo config (the built-in config/demo.toml when absent).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let outcome = match cli.command {
        Command::Run {
            config,
            insecure_admin,
            threads,
            upgrade,
        } => run(&config, insecure_admin, threads, upgrade),
        Command::Check { config, against } => check(&config, against.as_deref()),
        Command::Explain {
            config,
            method,
            url,
            headers,
            client_ip,
        } => explain_request(&config, &method, &url, &headers, client_ip),
        Command::Migrate { route, call, admin } => migrate(&admin, &route, &call),
        Command::Report { admin, format } => report(&admin, format),
        Command::Fleet {
            what: _,
            admin,
            json,
        } => fleet_status(&admin, json),
        Command::Demo { config } => demo(config.as_deref()),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BANYAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Load a config, printing located errors the way compilers do.
fn load(path: &Path) -> Result<Config> {
    match Config::load(path) {
        Ok(c) => Ok(c),
        Err(e @ ConfigError::Read { .. }) => Err(e.into()),
        Err(ConfigError::Invalid(errors)) => {
            for d in &errors {
                eprintln!("{}", d.with_level("error"));
            }
            bail!(
                "{}: {} error(s); the config was not applied",
                path.display(),
                errors.len()
            )
        }
    }
}

fn print_warnings(config: &Config) {
    for w in &config.warnings {
        eprintln!("{}", w.with_level("warning"));
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    runtime_with(None)
}

fn runtime_with(threads: Option<std::num::NonZeroUsize>) -> Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        // One thread: tokio's current-thread scheduler, without the work-stealing
        // machinery one worker cannot use (1,250 fewer instructions per forwarded
        // request, loadtest/results/runtime.md).
        Some(n) if n.get() == 1 => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = threads {
                builder.worker_threads(n.get());
            }
            builder
        }
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(
    path: &Path,
    insecure_admin: bool,
    threads: Option<std::num::NonZeroUsize>,
    upgrade: bool,
) -> Result<ExitCode> {
    let config = load(path)?;
    print_warnings(&config);
    let env_token = banyan::admin::token_from_env();
    if let Some(warning) = banyan::admin::exposure_warning(&config.admin, env_token.as_deref()) {
        if !insecure_admin {
            bail!("{warning}; or run with --insecure-admin to accept the risk");
        }
        tracing::warn!("{warning} (--insecure-admin given)");
    }
    let mut takeover = match (&config.server.upgrade_socket, upgrade) {
        (Some(socket), true) => Some(Takeover::request(socket)?),
        (None, true) => bail!(
            "--upgrade needs server.upgrade_socket in {}: the socket where the running banyan hands its listeners over",
            path.display()
        ),
        (_, false) => None,
    };
    let inherited = match &mut takeover {
        Some(t) => t.take_sockets(),
        None => Inherited::from_systemd().context("cannot take the sockets systemd passed")?,
    };
    runtime_with(threads)?.block_on(async {
        let mut running =
            banyan::server::start_with(config, Some(path.to_path_buf()), inherited).await?;
        if let Some(t) = takeover {
            t.ready()?;
            tracing::info!("took the listeners over; the previous banyan drains and exits");
        }
        running.offer_upgrades()?;
        tokio::select! {
            _ = wait_for_shutdown() => {
                tracing::info!("shutting down: draining in-flight requests");
                running.shutdown().await;
            }
            _ = running.upgraded() => {
                tracing::info!("upgraded: draining in-flight requests");
                running.retire().await;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn check(path: &Path, against: Option<&str>) -> Result<ExitCode> {
    let config = load(path)?;
    println!("{}: valid", path.display());
    print!("{}", banyan::config::summary::summary(&config));
    print_warnings(&config);
    let env_token = banyan::admin::token_from_env();
    let exposure = banyan::admin::exposure_warning(&config.admin, env_token.as_deref());
    let raw_paths = banyan::config::summary::normalization_warning(&config);
    for w in exposure.iter().chain(raw_paths.iter()) {
        eprintln!("{}: warning: {w}", path.display());
    }
    let warnings =
        config.warnings.len() + usize::from(exposure.is_some()) + usize::from(raw_paths.is_some());
    if warnings > 0 {
        println!("{warnings} warning(s)");
    }
    if let Some(admin) = against {
        let diff = runtime()?.block_on(remote_diff(admin, &config.source.text))?;
        println!("\ndifference from the config running at {admin}:");
        print!("{diff}");
    }
    Ok(ExitCode::SUCCESS)
}

fn migrate(admin: &str, route: &str, call: &str) -> Result<ExitCode> {
    let path = format!("/api/migration/{route}/{call}");
    let (status, body) = runtime()?.block_on(admin_call(admin, http::Method::POST, &path, None))?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{admin} answered {status}: {}",
            answer["error"].as_str().unwrap_or("?")
        );
    }
    let e = &answer["event"];
    println!(
        "{route}: {} {}% -> {}%{}",
        e["kind"].as_str().unwrap_or("?"),
        e["from_percent"],
        e["to_percent"],
        if answer["paused"] == true {
            " (paused)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn report(admin: &str, format: ReportFormat) -> Result<ExitCode> {
    let path = match format {
        ReportFormat::Markdown => "/api/migration/report?format=markdown",
        ReportFormat::Json => "/api/migration/report",
    };
    let (status, body) = runtime()?.block_on(admin_call(admin, http::Method::GET, path, None))?;
    if !status.is_success() {
        bail!(
            "{admin} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    print!("{}", String::from_utf8_lossy(&body));
    Ok(ExitCode::SUCCESS)
}

/// `banyan fleet status`: every instance's heartbeat and config version, from a running
/// banyan's `GET /api/fleet`.
fn fleet_status(admin: &str, as_json: bool) -> Result<ExitCode> {
    let (status, body) =
        runtime()?.block_on(admin_call(admin, http::Method::GET, "/api/fleet", None))?;
    if !status.is_success() {
        bail!(
            "{admin} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    if as_json {
        print!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let fleet: serde_json::Value = serde_json::from_slice(&body)?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!(
        "this instance: {} ({}), fleet config version {}",
        text(&fleet["instance"]),
        if fleet["connected"] == true {
            "connected to PostgreSQL".to_string()
        } else {
            format!("PostgreSQL unreachable: {}", text(&fleet["last_error"]))
        },
        text(&fleet["config_version"])
    );
    println!(
        "{:<32} {:>7} {:>10} {:>8} {:>7}  {:<24} config error",
        "instance", "alive", "heartbeat", "version", "behind", "ramps (% new)"
    );
    for i in fleet["instances"].as_array().into_iter().flatten() {
        let ramps: Vec<String> = i["ramps"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(route, percent)| format!("{route} {percent}"))
            .collect();
        println!(
            "{:<32} {:>7} {:>9.1}s {:>8} {:>7}  {:<24} {}",
            text(&i["instance"]),
            if i["alive"] == true { "yes" } else { "no" },
            i["heartbeat_age_seconds"].as_f64().unwrap_or(0.0),
            text(&i["config_version"]),
            text(&i["versions_behind"]),
            if ramps.is_empty() {
                "-".to_string()
            } else {
                ramps.join(", ")
            },
            text(&i["config_error"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One call to a running banyan's admin API, with the token from the environment and,
/// when given, a body and its content type.
async fn admin_call(
    admin: &str,
    method: http::Method,
    path: &str,
    body: Option<(&'static str, String)>,
) -> Result<(http::StatusCode, bytes::Bytes)> {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let url = format!("{}{path}", admin.trim_end_matches('/'));
    let mut req = http::Request::builder().method(method).uri(&url);
    if let Ok(token) = std::env::var(banyan::admin::TOKEN_ENV) {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let bytes = match body {
        Some((content_type, text)) => {
            req = req.header("content-type", content_type);
            bytes::Bytes::from(text)
        }
        None => bytes::Bytes::new(),
    };
    let req = req
        .body(Full::new(bytes))
        .with_context(|| format!("{url:?} is not a URL"))?;
    let resp = client
        .request(req)
        .await
        .with_context(|| format!("cannot reach the admin API at {admin}"))?;
    let status = resp.status();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// Ask a running banyan what `text` would change (`PUT /api/config?dry_run=true`).
async fn remote_diff(admin: &str, text: &str) -> Result<banyan::config::diff::ConfigDiff> {
    let body = Some(("application/toml", text.to_string()));
    let (status, body) =
        admin_call(admin, http::Method::PUT, "/api/config?dry_run=true", body).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{admin} answered {status} with something other than JSON"))?;
    if !status.is_success() && answer.get("diff").is_none_or(|d| d.is_null()) {
        bail!("{admin} answered {status}: {}", answer["error"]);
    }
    serde_json::from_value(answer["diff"].clone()).context("the admin API sent no diff")
}

fn explain_request(
    path: &Path,
    method: &str,
    url: &str,
    header_args: &[String],
    client_ip: IpAddr,
) -> Result<ExitCode> {
    let config = load(path)?;
    let method = Method::from_bytes(method.as_bytes()).context("not an HTTP method")?;
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL or path"))?;
    let mut headers = HeaderMap::new();
    for h in header_args {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} must be 'Name: value'"))?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).context("bad header name")?,
            HeaderValue::from_str(value.trim()).context("bad header value")?,
        );
    }
    let view = RequestView::new(&method, &uri, &headers, client_ip);
    let answer = explain(&config.routes, &view);
    println!("{method} {url}");
    print!(
        "{}",
        answer.render(|id| {
            let u = &config.upstreams[id];
            let endpoints: Vec<String> = u.endpoints.iter().map(ToString::to_string).collect();
            format!("{} ({})", u.name, endpoints.join(", "))
        })
    );
    Ok(ExitCode::SUCCESS)
}

fn demo(path: Option<&Path>) -> Result<ExitCode> {
    let config = match path {
        Some(p) => load(p)?,
        None => {
            Config::parse(&banyan::demo::builtin_config()).context("the built-in demo config")?
        }
    };
    runtime()?.block_on(async {
        let backends = banyan::demo::start_backends(&config).await?;
        // A demo from a file reloads as `run` does: on changes and on SIGHUP.
        let running = banyan::server::start_with_file(config, path.map(Path::to_path_buf)).await?;
        println!(
            "{}",
            banyan::demo::banner(running.proxy_addr, running.admin_addr, &backends)
        );
        wait_for_shutdown().await;
        running.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
