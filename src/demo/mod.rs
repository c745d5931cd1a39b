//! Built-in demo backends.
