//! How a request to an upstream failed, as the pooled client reports it: the one
//! classification that the proxy's answers, retries, outlier detection and the shadow's
//! outcomes all use.

/// Why an upstream did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The endpoint refused or dropped the connection attempt.
    Connect,
    /// Connecting or waiting for the answer took longer than its timeout.
    Timeout,
    /// The connection failed after it was made (reset, protocol error).
    Error,
}

impl UpstreamFailure {
    /// Classify a client error: a timeout anywhere in the chain, else connect or other.
    pub fn of(err: &hyper_util::client::legacy::Error) -> Self {
        if has_timeout(err) {
            UpstreamFailure::Timeout
        } else if err.is_connect() {
            UpstreamFailure::Connect
        } else {
            UpstreamFailure::Error
        }
    }
}

impl UpstreamFailure {
    /// Classify an error of banyan's own HTTP/1.1 client the same way.
    pub fn of_h1(err: &super::h1::SendError) -> Self {
        if err.is_timeout() {
            UpstreamFailure::Timeout
        } else if err.is_connect() {
            UpstreamFailure::Connect
        } else {
            UpstreamFailure::Error
        }
    }
}

/// An error with every cause under it, `outer: inner: innermost`: hyper's own text
/// ("client error (SendRequest)") names none, the stream reset or refused connection
/// that the log must show is further down.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

fn has_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if e.downcast_ref::<tokio::time::error::Elapsed>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}
