//! Test harness: real HTTP backends on ephemeral loopback ports that record what reaches
//! them, banyan started in-process (or as a process) against them, and a real client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod certs;

use banyan::config::{Config, Source};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as a backend saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body_len: usize,
    /// The first 64 KiB of the body.
    pub body: Bytes,
    /// xxh3 of the whole body.
    pub body_hash: u64,
}

/// What a backend answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Reply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16) -> Self {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            ..Reply::ok("")
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A backend on 127.0.0.1:0. Every request is recorded. It answers with its handler,
/// by default 200 with its name as body and `x-backend: <name>`. Two paths are built in:
/// `GET /download?bytes=N` streams N bytes, and an `Upgrade` request is accepted and
/// echoed byte for byte.
pub struct Backend {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    record: Arc<Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        Self::with_handler(name, move |_| Reply::ok(name)).await
    }

    /// A backend that keeps no record of requests, for tests that measure memory.
    pub async fn unrecorded(name: &'static str) -> Backend {
        let b = Self::start(name).await;
        b.seen.lock().unwrap().shrink_to(0);
        *b.record.lock().unwrap() = false;
        b
    }

    pub async fn with_handler(
        name: &'static str,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::new(Mutex::new(true));
        let handler: Handler = Arc::new(handler);
        let log = seen.clone();
        let recording = record.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (log, handler, recording) = (log.clone(), handler.clone(), recording.clone());
                let service = service_fn(move |req| {
                    let (log, handler, recording) =
                        (log.clone(), handler.clone(), recording.clone());
                    async move {
                        let resp = answer(name, req, &log, &handler).await;
                        if !*recording.lock().unwrap() {
                            log.lock().unwrap().clear();
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend {
            name,
            addr,
            seen,
            record,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

type BoxedBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
    log: &Mutex<Vec<Seen>>,
    handler: &Handler,
) -> Response<BoxedBody> {
    let upgrade = req.headers().contains_key(http::header::UPGRADE);
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, mut body) = req.into_parts();
    let mut body_len = 0;
    let mut kept = Vec::new();
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            body_len += data.len();
            hasher.update(data);
            if kept.len() < 65536 {
                kept.extend_from_slice(&data[..data.len().min(65536 - kept.len())]);
            }
        }
    }
    let seen = Seen {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        version: parts.version,
        headers: parts.headers.clone(),
        body_len,
        body: Bytes::from(kept),
        body_hash: hasher.digest(),
    };
    log.lock().unwrap().push(seen.clone());
    if let Some(on_upgrade) = on_upgrade {
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        // Switches to whatever was asked, as a backend that checks nothing would.
        let asked = parts.headers[http::header::UPGRADE].clone();
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", asked)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
    }
    if parts.uri.path() == "/download" {
        let total: usize = parts
            .uri
            .query()
            .and_then(|q| q.strip_prefix("bytes="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return Response::new(BodyExt::boxed(StreamBody::new(download_stream(total))));
    }
    let reply = handler(&seen);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = Response::new(Full::new(reply.body).boxed());
    *resp.status_mut() = reply.status;
    resp.headers_mut()
        .insert("x-backend", http::HeaderValue::from_static(name));
    for (k, v) in reply.headers {
        resp.headers_mut().append(k, v.parse().unwrap());
    }
    resp
}

fn download_stream(
    total: usize,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let chunks = total.div_ceil(CHUNK);
    futures_util::stream::iter((0..chunks).map(move |i| {
        let len = CHUNK.min(total - i * CHUNK);
        Ok(Frame::data(chunk.slice(..len)))
    }))
}

/// A loopback address nothing listens on (bound, then released).
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Parse a config, panicking with the located errors if it is invalid.
pub fn config(text: &str) -> Config {
    match Config::parse(&Source::new("test.toml", text)) {
        Ok(c) => c,
        Err(e) => panic!("test config invalid:\n{e}\n---\n{text}"),
    }
}

/// The config header every test uses: listeners on ephemeral loopback ports.
pub fn listeners() -> &'static str {
    "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
}

/// `GET /api/migration` of the banyan whose admin listener is `admin`.
pub async fn migration(admin: SocketAddr) -> serde_json::Value {
    serde_json::from_str(&get(admin, "/api/migration", &[]).await.text()).unwrap()
}

/// The first migrated route's share on its new service, in percent.
pub async fn percent(admin: SocketAddr) -> f64 {
    migration(admin).await["routes"][0]["percent_new"]
        .as_f64()
        .unwrap()
}

/// banyan, in-process, on ephemeral ports.
pub async fn banyan(text: &str) -> banyan::server::Running {
    banyan::server::start(config(&format!("{text}\n{}", listeners())))
        .await
        .expect("banyan starts")
}

/// A real HTTP/1.1 client with pooled keep-alive connections.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn backend(&self) -> Option<&str> {
        self.header("x-backend")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send a request through banyan and read the whole response.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Got {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e:?}"));
    let (parts, body) = resp.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// GET through banyan.
pub async fn get(proxy: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    send(
        &client(),
        "GET",
        &format!("http://{proxy}{path}"),
        headers,
        Bytes::new(),
    )
    .await
}

/// The value of one sample in banyan's /metrics, 0 if absent.
pub async fn metric(admin: SocketAddr, name_and_labels: &str) -> f64 {
    let text = get(admin, "/metrics", &[]).await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Send a request with a body to the admin API (or anywhere), read the whole answer.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    send(
        &client(),
        method,
        &format!("http://{addr}{path}"),
        headers,
        body.to_string(),
    )
    .await
}

/// Poll until `condition` holds, for at most `limit`; true if it did.
pub async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The path of the banyan binary cargo built for these tests.
pub fn banyan_bin() -> &'static str {
    env!("CARGO_BIN_EXE_banyan")
}

/// Every line `stream` gives (a child's stderr), collected as it comes, on a thread.
pub fn collect_lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    use std::io::BufRead;
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    log
}

/// banyan as a separate process (`banyan run`), for what only a process shows: its
/// memory, its exit code, its signals. Killed on drop.
pub struct Process {
    pub child: std::process::Child,
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The config file, alone in its own directory.
    pub config_path: std::path::PathBuf,
    /// Every line it wrote to stderr so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Process {
    pub fn start(text: &str) -> Process {
        Self::start_with_env(text, &[])
    }

    pub fn start_with_env(text: &str, env: &[(&str, &str)]) -> Process {
        Self::start_in(text, env, None)
    }

    /// As `start_with_env`, in working directory `cwd` (where relative paths resolve).
    pub fn start_in(text: &str, env: &[(&str, &str)], cwd: Option<&std::path::Path>) -> Process {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("banyan.toml");
        std::fs::write(&config_path, format!("{text}\n{}", listeners())).unwrap();
        let mut p = Self::launch_in(&config_path, &[], env, cwd);
        p._dir = Some(dir);
        p
    }

    /// `banyan run -c <config_path> <args>`, once it reports its listeners. The file
    /// is the caller's.
    pub fn launch(config_path: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        Self::launch_in(config_path, args, env, None)
    }

    fn launch_in(
        config_path: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
        cwd: Option<&std::path::Path>,
    ) -> Process {
        use std::io::BufRead;
        let mut command = std::process::Command::new(banyan_bin());
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let mut child = command
            .args(["run", "-c"])
            .arg(config_path)
            .args(args)
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("banyan runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(line.clone());
                for (what, marker) in [
                    ("proxy", "proxy listening addr="),
                    ("admin", "admin listening addr="),
                ] {
                    if let Some(rest) = line.split(marker).nth(1) {
                        let addr: SocketAddr = rest.trim().parse().unwrap();
                        let _ = tx.send((what, addr));
                    }
                }
            }
        });
        let mut proxy = None;
        let mut admin = None;
        while proxy.is_none() || admin.is_none() {
            let (what, addr) = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("banyan reports its listeners");
            if what == "proxy" {
                proxy = Some(addr);
            } else {
                admin = Some(addr);
            }
        }
        Process {
            child,
            proxy_addr: proxy.unwrap(),
            admin_addr: admin.unwrap(),
            config_path: config_path.to_path_buf(),
            stderr: lines,
            _dir: None,
        }
    }

    /// Send a signal by name (TERM, HUP) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait up to `limit` for the process to exit; its status if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Peak resident memory of the process so far, in bytes (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib * 1024
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
