//! Upstream pools: endpoints, balancing, health, and the pooled client that reaches them.

pub mod body;
pub mod client;
pub mod failure;
pub mod h1;
pub mod health;
pub mod outlier;
pub mod pool;
pub mod request;
pub mod spec;

pub use body::UpstreamBody;
pub use pool::Pool;
