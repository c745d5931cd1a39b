//! What any body may fail with. Its own file, so the bodies that produce it (the client's,
//! a tap) and the body type that joins them import it without importing each other.

/// Errors from any kind of body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
