//! Protocol upgrades (websockets): once both sides agreed to switch, copy bytes both
//! ways until either side closes.

use crate::body::{self, ResponseBody};
use crate::upstream::UpstreamBody;
use http::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Answer the client with the upstream's 101 and join the two connections.
pub fn start(client: OnUpgrade, mut upstream: Response<UpstreamBody>) -> Response<ResponseBody> {
    let upstream_side = hyper::upgrade::on(&mut upstream);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream_side) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
        }
    });
    upstream.map(|_| body::full(bytes::Bytes::new()))
}
