//! The Python binding layer, `pillsnap._native`: compiled only with the `python` feature, so
//! the core modules stay plain Rust that `cargo test` runs without Python.
//!
//! This file holds the `#[pymodule]` and the small functions (version, probing); the rest is
//! split by what Python sees (`_native.pyi` has the same sections):
//! - `errors.rs`: the one conversion from [`crate::Error`] into Python exceptions;
//! - `buffer.rs`: writing into a caller's numpy array or bytearray under the stable ABI;
//! - `decode.rs`: JPEG decode and encode, crop parameters;
//! - `pack.rs`: `prepare_records` and `PackWriter`; `reader.rs`: `PackReader`;
//! - `photo.rs`: `Photo`, serving's decode + letterbox + crops;
//! - `loader.rs`: the prefetching `PackLoader`.

mod buffer;
mod decode;
mod errors;
mod loader;
mod pack;
mod photo;
mod reader;

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::probe::{self, ImageInfo, Prober};
use errors::exception_instance;

/// Paths probed per GIL release in `probe_images`; Ctrl-C is checked between chunks.
const PROBE_CHUNK: usize = 4096;

/// `(format, width, height, file_size)`, the stub's `ImageInfo`.
type InfoTuple = (&'static str, u32, u32, u64);

fn info_tuple(info: ImageInfo) -> InfoTuple {
    (
        info.format.as_str(),
        info.width,
        info.height,
        info.file_size,
    )
}

/// The crate version, to check that the extension matches the Python package.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Probes one PNG or JPEG without decoding it: `(format, width, height, file_size)`.
#[pyfunction]
fn probe_image(py: Python<'_>, path: PathBuf) -> PyResult<InfoTuple> {
    let info = py.detach(|| probe::probe_file(&path))?;
    Ok(info_tuple(info))
}

/// One element of `probe_images`' result.
#[derive(IntoPyObject)]
enum Probed<'py> {
    Info(InfoTuple),
    /// The exception instance of a bad file (returned, not raised).
    Failed(Bound<'py, PyAny>),
}

/// Probes many files in parallel; each element is the info tuple or, for a bad file, an
/// exception instance of `pillsnap.errors` (returned, not raised).
#[pyfunction]
#[pyo3(signature = (paths, threads = 0))]
fn probe_images(py: Python<'_>, paths: Vec<PathBuf>, threads: usize) -> PyResult<Vec<Probed<'_>>> {
    let prober = py.detach(|| Prober::new(threads))?;
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(PROBE_CHUNK) {
        let results = py.detach(|| prober.probe(chunk));
        out.extend(results.into_iter().map(|result| match result {
            Ok(info) => Probed::Info(info_tuple(info)),
            Err(err) => Probed::Failed(exception_instance(py, err)),
        }));
        py.check_signals()?;
    }
    Ok(out)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::import_all(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(probe_image, m)?)?;
    m.add_function(wrap_pyfunction!(probe_images, m)?)?;
    m.add_function(wrap_pyfunction!(decode::jpeg_header, m)?)?;
    m.add_function(wrap_pyfunction!(decode::decode_train_sample, m)?)?;
    m.add_function(wrap_pyfunction!(decode::decode_eval_sample, m)?)?;
    m.add_function(wrap_pyfunction!(decode::decode_crop, m)?)?;
    m.add_function(wrap_pyfunction!(decode::decode_full, m)?)?;
    m.add_function(wrap_pyfunction!(decode::encode_jpeg, m)?)?;
    m.add_function(wrap_pyfunction!(decode::crop_params_train, m)?)?;
    m.add_function(wrap_pyfunction!(decode::crop_params_eval, m)?)?;
    m.add_class::<pack::PyPackWriter>()?;
    m.add_class::<reader::PyPackReader>()?;
    m.add_class::<loader::PyPackLoader>()?;
    m.add_class::<photo::PyPhoto>()?;
    m.add_function(wrap_pyfunction!(pack::prepare_records, m)?)?;
    Ok(())
}
