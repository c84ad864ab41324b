//! The one binding layer: every `#[pyfunction]` and the `#[pymodule]` live here, and so does
//! the one conversion from [`Error`] into the exception classes of `pillsnap.errors`.

use std::path::PathBuf;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::error::Error;
use crate::probe::{self, ImageInfo, Prober};

/// Paths probed per GIL release in `probe_images`; Ctrl-C is checked between chunks.
const PROBE_CHUNK: usize = 4096;

/// The crate version, to check that the extension matches the Python package.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Probes one PNG or JPEG without decoding it: `(format, width, height, file_size)`.
#[pyfunction]
fn probe_image(py: Python<'_>, path: PathBuf) -> PyResult<(&'static str, u32, u32, u64)> {
    let info = py.detach(|| probe::probe_file(&path))?;
    Ok(info_tuple(info))
}

/// Probes many files in parallel; each element is the info tuple or, for a bad file, an
/// exception instance of `pillsnap.errors` (returned, not raised).
#[pyfunction]
#[pyo3(signature = (paths, threads = 0))]
fn probe_images<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
    let prober = py.detach(|| Prober::new(threads))?;
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(PROBE_CHUNK) {
        let results = py.detach(|| prober.probe(chunk));
        for result in results {
            out.push(match result {
                Ok(info) => info_tuple(info).into_pyobject(py)?.into_any(),
                Err(err) => exception_instance(py, &err)?,
            });
        }
        py.check_signals()?;
    }
    PyList::new(py, out)
}

fn info_tuple(info: ImageInfo) -> (&'static str, u32, u32, u64) {
    (
        info.format.as_str(),
        info.width,
        info.height,
        info.file_size,
    )
}

/// Builds (does not raise) the `pillsnap.errors` exception that matches `err`.
fn exception_instance<'py>(py: Python<'py>, err: &Error) -> PyResult<Bound<'py, PyAny>> {
    let errors = py.import("pillsnap.errors")?;
    match err {
        Error::Io { path, source } => {
            let class = errors.getattr("NativeIOError")?;
            match source.raw_os_error() {
                // The three-argument form fills errno, strerror and filename like any OSError.
                Some(errno) => {
                    let strerror = py.import("os")?.call_method1("strerror", (errno,))?;
                    class.call1((errno, strerror, path.as_os_str()))
                }
                None => class.call1((err.to_string(),)),
            }
        }
        Error::CorruptImage { .. } => errors
            .getattr("CorruptImageError")?
            .call1((err.to_string(),)),
        Error::UnsupportedFormat { .. } => errors
            .getattr("UnsupportedImageError")?
            .call1((err.to_string(),)),
        Error::PackTruncated { .. }
        | Error::PackBadMagic { .. }
        | Error::PackBadVersion { .. }
        | Error::PackChecksum { .. }
        | Error::PackCorrupt { .. }
        | Error::PackJournal { .. } => errors.getattr("PackError")?.call1((err.to_string(),)),
        // Caller mistakes, not data problems: the built-in classes Python code expects.
        Error::InvalidArgument { .. } => Ok(PyValueError::new_err(err.to_string())
            .into_value(py)
            .into_bound(py)
            .into_any()),
        Error::IndexOutOfRange { .. } => Ok(PyIndexError::new_err(err.to_string())
            .into_value(py)
            .into_bound(py)
            .into_any()),
        Error::Internal { .. } => errors.getattr("PillsnapError")?.call1((err.to_string(),)),
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        Python::attach(|py| match exception_instance(py, &err) {
            Ok(instance) => PyErr::from_value(instance),
            Err(import_failure) => import_failure,
        })
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(probe_image, m)?)?;
    m.add_function(wrap_pyfunction!(probe_images, m)?)?;
    Ok(())
}
