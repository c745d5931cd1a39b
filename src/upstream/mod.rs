//! Upstream pools: endpoints, balancing, health, and the pooled client that reaches them.

pub mod client;
pub mod failure;
pub mod health;
pub mod outlier;
pub mod pool;
pub mod request;
pub mod spec;

pub use pool::Pool;
