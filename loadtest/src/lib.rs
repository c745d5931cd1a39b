//! Shared pieces of the benchmark programs.

use std::net::SocketAddr;

/// A tokio runtime with `threads` workers, current-thread for 1: for the load generator
/// and the test upstream, which share the cores left to them and must not be the limit.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    proxy_runtime(threads)
}

/// The runtime banyan runs on with `--threads N` (current-thread for 1, else
/// work-stealing), so the bare hyper proxy differs from banyan in banyan's own work only.
pub fn proxy_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
}

/// Bind, then print the bound address on stdout's first line, so a harness that asked
/// for port 0 learns the port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("{}", listener.local_addr()?);
    Ok(listener)
}
