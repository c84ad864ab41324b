//! The one conversion from [`Error`] into Python exceptions.
//!
//! The exception classes are declared in Python (`python/pillsnap/errors.py`), so Python code
//! catches the same types whichever side failed; the extension imports them here, once.
//! Every error the binding layer raises, or returns as an instance, goes through
//! `From<Error> for PyErr`, one match on the variant.

use std::path::PathBuf;

use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::{PyErrArguments, PyTypeInfo};

use crate::error::Error;

/// Declares each `pillsnap.errors` class the extension raises, and [`import_all`] to import
/// them all at module import.
macro_rules! python_errors {
    ($($name:ident),* $(,)?) => {
        $(pyo3::import_exception!(pillsnap.errors, $name);)*

        /// Imports every class above while `pillsnap._native` is being imported. A class that
        /// cannot be imported then fails that import with a clear `ImportError`; otherwise
        /// `import_exception!` would panic the first time it raised one. Each lookup is cached,
        /// so raising never imports again.
        pub(super) fn import_all(py: Python<'_>) -> PyResult<()> {
            let module = py.import("pillsnap.errors")?;
            $(
                module.getattr(stringify!($name))?.cast_into::<PyType>()?;
                $name::type_object(py);
            )*
            Ok(())
        }
    };
}

python_errors!(
    PillsnapError,
    CorruptImageError,
    UnsupportedImageError,
    ImageTooLargeError,
    PackError,
    NativeIOError,
    InvalidArgumentError,
    LoaderError,
);

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let message = err.to_string();
        match err {
            Error::Io { path, source } => match source.raw_os_error() {
                // The three-argument form fills errno, strerror and filename like any OSError.
                Some(errno) => NativeIOError::new_err(OsErrorArgs { errno, path }),
                None => NativeIOError::new_err(message),
            },
            Error::CorruptImage { .. } | Error::CorruptJpeg { .. } | Error::CorruptPng { .. } => {
                CorruptImageError::new_err(message)
            }
            Error::UnsupportedFormat { .. }
            | Error::UnsupportedJpeg { .. }
            | Error::UnsupportedImage { .. } => UnsupportedImageError::new_err(message),
            Error::TooManyPixels { .. } => ImageTooLargeError::new_err(message),
            Error::PackTruncated { .. }
            | Error::PackBadMagic { .. }
            | Error::PackBadVersion { .. }
            | Error::PackChecksum { .. }
            | Error::PackCorrupt { .. }
            | Error::PackJournal { .. } => PackError::new_err(message),
            // Caller mistakes, not data problems: a ValueError subclass, IndexError and
            // TypeError, as Python code expects.
            Error::InvalidArgument { .. } => InvalidArgumentError::new_err(message),
            Error::IndexOutOfRange { .. } => PyIndexError::new_err(message),
            Error::WrongType { .. } => PyTypeError::new_err(message),
            Error::Loader { .. } => LoaderError::new_err(message),
            Error::Internal { .. } => PillsnapError::new_err(message),
        }
    }
}

/// `err` as an exception instance, for the calls that return one per bad item instead of
/// raising.
pub(super) fn exception_instance(py: Python<'_>, err: Error) -> Bound<'_, PyAny> {
    PyErr::from(err).into_value(py).into_bound(py).into_any()
}

/// `OSError(errno, strerror, filename)`: built when the exception is raised, since
/// `os.strerror` needs the interpreter.
struct OsErrorArgs {
    errno: i32,
    path: PathBuf,
}

impl PyErrArguments for OsErrorArgs {
    fn arguments(self, py: Python<'_>) -> Py<PyAny> {
        // Python's own text for the number, as `OSError` subclasses raised by Python carry;
        // Rust's adds " (os error N)".
        let strerror = py
            .import("os")
            .and_then(|os| os.call_method1("strerror", (self.errno,)))
            .and_then(|s| s.extract::<String>())
            .unwrap_or_else(|_| std::io::Error::from_raw_os_error(self.errno).to_string());
        (self.errno, strerror, self.path.into_os_string()).arguments(py)
    }
}
