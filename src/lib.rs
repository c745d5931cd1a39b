//! banyan: a strangler-fig migration proxy. It sits in front of a legacy monolith and,
//! endpoint by endpoint, forwards, splits or shadows traffic to new services.

pub mod access;
pub mod admin;
pub mod body;
pub mod breaker;
pub mod capture;
pub mod clock;
pub mod compare;
pub mod config;
pub mod demo;
pub mod fleet;
pub mod fswatch;
pub mod grpc;
pub mod ids;
pub mod inbound;
pub mod live;
pub mod metrics;
pub mod migration;
pub mod proxy;
pub mod reload;
pub mod replay;
pub mod routing;
pub mod server;
pub mod shadow;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod upstream;
