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
    /// Capture files (written by routes with `capture`): export them as HAR.
    Capture {
        #[command(subcommand)]
        what: CaptureCommand,
    },
    /// Send captured requests (capture files, directories of them, or HAR files) to a
    /// target and compare each answer with the recorded one; exit 1 when a route has a
    /// regression (or a match rate under --min-match-rate), so it can gate a CI pipeline.
    Replay(Box<ReplayArgs>),
    /// Start two demo backends and banyan in front of them.
    Demo {
        /// The demo config (the built-in config/demo.toml when absent).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CaptureCommand {
    /// Write capture files as one HAR 1.2 file (to stdout, or --output).
    Export {
        /// HAR is the one export format.
        #[arg(long, required = true)]
        har: bool,
        /// Capture files or directories of them.
        #[arg(required = true)]
        captures: Vec<PathBuf>,
        /// The scheme and host the HAR's URLs get.
        #[arg(long, default_value = "http://localhost")]
        origin: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Capture files (`.jsonl.gz`), directories of them, or HAR files (`.har`).
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    /// Where the requests go: the new service, a staging host (http:// or https://).
    #[arg(long)]
    target: String,
    /// The config whose routes' compare rules apply (each record by its route).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// A file of compare rules (a route's `compare` keys at the top level) for every
    /// record, instead of --config's.
    #[arg(long, conflicts_with = "config")]
    rules: Option<PathBuf>,
    /// Requests per second.
    #[arg(long, conflicts_with = "speed")]
    rate: Option<f64>,
    /// A multiple of the recorded pace (2 replays an hour in half an hour).
    #[arg(long)]
    speed: Option<f64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Replay the first N requests only.
    #[arg(long)]
    limit: Option<usize>,
    /// Only these routes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    routes: Vec<String>,
    /// Only these methods (comma-separated).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// The legacy side: each request goes there too, so fields that change by
    /// themselves are told from regressions.
    #[arg(long, value_name = "URL")]
    noise: Option<String>,
    /// A header for every request, 'Name: value'; $VAR and ${VAR} are read from the
    /// environment (recorded credentials are redacted: supply test ones). Repeat for more.
    #[arg(long = "set-header", value_name = "HEADER")]
    set_headers: Vec<String>,
    /// Replace a path prefix, 'FROM=TO' (such as /api/v1/=/v2/). Repeat for more.
    #[arg(long, value_name = "FROM=TO")]
    rewrite: Vec<String>,
    /// Send writes (POST, PUT, PATCH, DELETE) too, not only safe methods.
    #[arg(long)]
    allow_writes: bool,
    /// Fail when a route's match rate is under this (0.99, or 99%).
    #[arg(long)]
    min_match_rate: Option<String>,
    /// Write the report as Markdown here (default: stdout).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    report_json: Option<PathBuf>,
    /// The diff store mismatches are written to, for the dashboard (default: --config's
    /// shadow.store; none without --config).
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    /// How long one request may take.
    #[arg(long, default_value = "10s")]
    timeout: humantime::Duration,
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
        Command::Capture {
            what:
                CaptureCommand::Export {
                    har: _,
                    captures,
                    origin,
                    output,
                },
        } => export_har(&captures, &origin, output.as_deref()),
        Command::Replay(args) => match replay(&args) {
            Ok(code) => return code,
            Err(e) => {
                // 2: the replay could not run (1 is the gate's verdict).
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
        },
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

/// Every capture file named: files as they are, directories by their capture files (in
/// time order).
fn capture_paths(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = banyan::capture::writer::capture_files(p)
                .into_iter()
                .map(|(path, _)| path)
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn read_captures(paths: &[PathBuf]) -> Result<Vec<banyan::capture::record::Record>> {
    let mut records = Vec::new();
    for path in capture_paths(paths) {
        records.extend(banyan::capture::read::read(&path)?);
    }
    Ok(records)
}

fn export_har(captures: &[PathBuf], origin: &str, output: Option<&Path>) -> Result<ExitCode> {
    let records = read_captures(captures)?;
    let har = banyan::capture::har::from_records(&records, origin);
    let text = serde_json::to_string_pretty(&har)?;
    match output {
        Some(path) => std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => println!("{text}"),
    }
    eprintln!("{} request(s) exported", har.log.entries.len());
    Ok(ExitCode::SUCCESS)
}

/// `$VAR` and `${VAR}` from the environment; unknown ones are an error (a test
/// credential that is not there should not go out as the text "$TOKEN").
fn expand_env(text: &str) -> Result<String> {
    let re = regex::Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
        .expect("variable regex");
    let mut missing = None;
    let out = re.replace_all(text, |c: &regex::Captures<'_>| {
        let name = c.get(1).or(c.get(2)).map_or("", |m| m.as_str());
        std::env::var(name).unwrap_or_else(|_| {
            missing = Some(name.to_string());
            String::new()
        })
    });
    if let Some(name) = missing {
        bail!("${name} is not set in the environment");
    }
    Ok(out.into_owned())
}

fn replay_options(args: &ReplayArgs) -> Result<banyan::replay::Options> {
    use banyan::replay::pace::Pace;
    let target: http::Uri = args
        .target
        .parse()
        .with_context(|| format!("--target {:?} is not a URL", args.target))?;
    if target.authority().is_none() {
        bail!(
            "--target {:?} needs a scheme and host, such as http://127.0.0.1:8081",
            args.target
        );
    }
    let noise = match &args.noise {
        Some(n) => Some(
            n.parse::<http::Uri>()
                .ok()
                .filter(|u| u.authority().is_some())
                .with_context(|| format!("--noise {n:?} is not a URL with a host"))?,
        ),
        None => None,
    };
    let pace = match (args.rate, args.speed) {
        (Some(r), _) if r > 0.0 && r.is_finite() => Pace::Rate(r),
        (_, Some(x)) if x > 0.0 && x.is_finite() => Pace::Speed(x),
        (None, None) => Pace::Unpaced,
        _ => bail!("--rate and --speed take a number above 0"),
    };
    let mut set_headers = Vec::new();
    for h in &args.set_headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("--set-header {h:?} is not 'Name: value'"))?;
        let value = expand_env(value.trim())?;
        set_headers.push((
            HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("--set-header {h:?}: not a header name"))?,
            HeaderValue::from_str(&value)
                .with_context(|| format!("--set-header {h:?}: not a header value"))?,
        ));
    }
    let rewrites = args
        .rewrite
        .iter()
        .map(|r| {
            r.split_once('=')
                .filter(|(from, _)| from.starts_with('/'))
                .map(|(from, to)| (from.to_string(), to.to_string()))
                .with_context(|| {
                    format!("--rewrite {r:?} is not 'FROM=TO' with paths, such as /api/v1/=/v2/")
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let methods = args
        .methods
        .iter()
        .map(|m| {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .with_context(|| format!("--methods: {m:?} is not a method"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(banyan::replay::Options {
        target,
        noise,
        pace,
        concurrency: args.concurrency.max(1),
        limit: args.limit,
        routes: args.routes.clone(),
        methods,
        allow_writes: args.allow_writes,
        set_headers,
        rewrites,
        timeout: *args.timeout,
    })
}

/// `0.99` or `99%`.
fn fraction(text: &str) -> Result<f64> {
    let (number, scale) = match text.trim().strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (text.trim(), 1.0),
    };
    let value = number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|v| v / scale)
        .filter(|v| (0.0..=1.0).contains(v))
        .with_context(|| format!("--min-match-rate {text:?} is not a rate such as 0.99 or 99%"))?;
    Ok(value)
}

fn replay(args: &ReplayArgs) -> Result<ExitCode> {
    use banyan::replay::{self, RuleBook};
    use std::io::IsTerminal;
    let options = replay_options(args)?;
    let min_match_rate = args.min_match_rate.as_deref().map(fraction).transpose()?;
    let (rules, thresholds, store, redact) = match (&args.config, &args.rules) {
        (Some(path), _) => {
            let config = load(path)?;
            let by_route = config
                .routes
                .routes()
                .iter()
                .zip(&config.features)
                .filter_map(|(r, f)| Some((r.name.clone(), f.compare.clone()?)))
                .collect();
            let store = args.store.clone().or(Some(config.shadow.store.clone()));
            (
                RuleBook {
                    by_route,
                    default: Default::default(),
                },
                config.shadow.thresholds,
                store,
                config.shadow.redact.clone(),
            )
        }
        (None, Some(path)) => {
            let source = banyan::config::Source::new(
                path.display().to_string(),
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            );
            let rules = match Config::compare_rules(&source) {
                Ok(r) => r,
                Err(ConfigError::Invalid(errors)) => {
                    for d in &errors {
                        eprintln!("{}", d.with_level("error"));
                    }
                    bail!("{}: {} error(s)", path.display(), errors.len());
                }
                Err(e) => return Err(e.into()),
            };
            (
                RuleBook {
                    by_route: Default::default(),
                    default: std::sync::Arc::new(rules),
                },
                Default::default(),
                args.store.clone(),
                Default::default(),
            )
        }
        (None, None) => (
            RuleBook::default(),
            Default::default(),
            args.store.clone(),
            Default::default(),
        ),
    };
    // A replay's corpus is small beside live traffic: every comparison counts.
    let thresholds = banyan::compare::noise::Thresholds {
        min_samples: 1,
        ..thresholds
    };
    let records = replay::select(read_captures(&args.captures)?, &options);
    if records.is_empty() {
        bail!("no request to replay: the captures hold none that --routes, --methods and --allow-writes let through");
    }
    let total = records.len();
    let terminal = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new(total as u64);
    if terminal {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {per_sec} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = std::time::Instant::now();
    let last_line = std::sync::Mutex::new(std::time::Instant::now());
    let shown = bar.clone();
    let progress = move |p: replay::Progress| {
        shown.set_position(p.done as u64);
        shown.set_message(format!("{} mismatching, {} failed", p.mismatches, p.failed));
        if !terminal {
            // Plain lines, one every 5 s and one at the end, for CI logs.
            let mut last = last_line.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= std::time::Duration::from_secs(5) || p.done == p.total {
                *last = std::time::Instant::now();
                let rate = p.done as f64 / started.elapsed().as_secs_f64().max(0.001);
                eprintln!(
                    "replayed {}/{} ({rate:.1}/s), {} mismatching, {} failed",
                    p.done, p.total, p.mismatches, p.failed
                );
            }
        }
    };
    let (tally, differing) = runtime()?.block_on(replay::run(records, &rules, &options, progress));
    bar.finish_and_clear();
    let report = tally.report(
        &args.target,
        args.noise.as_deref(),
        &thresholds,
        min_match_rate,
    );
    let markdown = replay::report::markdown(&report);
    match &args.report {
        Some(path) => std::fs::write(path, &markdown)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{markdown}"),
    }
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(store) = &store {
        let redactor = banyan::store::redact::Redactor::new(&redact);
        let samples = replay::samples::samples(
            &differing,
            &args.target,
            &redactor,
            banyan::clock::now_unix(),
        );
        if !samples.is_empty() {
            banyan::store::Store::write_now(store, &samples)
                .map_err(anyhow::Error::msg)
                .with_context(|| {
                    format!(
                        "cannot write the replay's samples to the diff store {}",
                        store.display()
                    )
                })?;
            eprintln!(
                "{} mismatching request(s) stored in {}",
                samples.len(),
                store.display()
            );
        }
    }
    eprintln!(
        "{total} request(s) replayed in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        if report.failed() { "FAIL" } else { "PASS" }
    );
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
