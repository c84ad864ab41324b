//! PillSnap's native data engine, imported from Python as `pillsnap._native`.
//!
//! The core modules are plain Rust (no pyo3), so `cargo test` runs without Python;
//! `python.rs`, compiled only with the `python` feature, is the one binding layer.

pub mod error;
pub mod pack;
pub mod prefetch;
pub mod probe;
mod threads;

#[cfg(feature = "python")]
mod python;

pub use error::Error;
