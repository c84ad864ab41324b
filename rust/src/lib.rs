//! PillSnap's native data engine, imported from Python as `pillsnap._native`.
//!
//! The core modules are plain Rust (no pyo3), so `cargo test` runs without Python;
//! `python/`, compiled only with the `python` feature, is the one binding layer.

pub mod augment;
pub mod error;
mod hresize;
pub mod jpeg;
pub mod order;
pub mod pack;
pub mod pack_source;
pub mod photo;
pub mod prefetch;
pub mod prepare;
pub mod probe;
pub mod resize;
pub mod rng;
pub mod sample;
#[cfg(test)]
mod testutil;
mod threads;
mod tj;

#[cfg(feature = "python")]
mod python;

pub use error::Error;
