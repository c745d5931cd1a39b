//! W3C Trace Context: reading the `traceparent` a request carries. Pure; a leaf.

pub mod context;
