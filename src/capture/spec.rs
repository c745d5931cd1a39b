//! A route's `capture` table, compiled: which of its requests are recorded.

use http::Method;

/// A route's `capture` table, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSpec {
    /// The share of the route's requests recorded, 0 to 1.
    pub share: f64,
    pub methods: Vec<Method>,
    /// A request whose request or response body is larger is not recorded.
    pub max_body: usize,
}

impl CaptureSpec {
    /// Is this request recorded (by method, then by chance)?
    pub fn samples(&self, method: &Method) -> bool {
        self.methods.contains(method)
            && (self.share >= 1.0 || (self.share > 0.0 && rand::random::<f64>() < self.share))
    }
}
