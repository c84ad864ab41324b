//! Reading packs from Python: `PackReader`, and the cache policy (`advise`) that the loader
//! shares. See `_native.pyi` for the Python contract; results are typed structs, as in
//! `pack.rs`.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::pack::{box_tuple, BoxTuple};
use crate::error::Error;
use crate::pack::{PackReader, Policy, RecordRef};

/// `PackReader.header()` (the stub's `PackHeader`).
#[derive(IntoPyObject)]
struct PackHeader {
    version: u32,
    storage: &'static str,
    class_hash: String,
    records: u64,
    boxes: u64,
    created_unix: u64,
    data_start: u64,
    index_offset: u64,
    file_bytes: u64,
    /// The metadata JSON, parsed into Python objects.
    #[pyo3(into_py_with = json_loads)]
    metadata: String,
}

// pyo3's `into_py_with` hands the field over as `Cow<'_, String>`, the field's own type.
#[allow(clippy::owned_cow)]
fn json_loads<'py>(
    text: std::borrow::Cow<'_, String>,
    py: Python<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text.as_str(),))
}

/// `PackReader.meta(i)` (the stub's `RecordMeta`).
#[derive(IntoPyObject)]
struct RecordMeta {
    width: u32,
    height: u32,
    label: i32,
    boxes: Vec<BoxTuple>,
    source_id: u64,
    offset: u64,
    length: u32,
    checksum: u32,
}

/// `advise()` of a reader or loader (the stub's `AdviseReport`).
#[derive(IntoPyObject)]
pub(super) struct AdviseReport {
    policy: &'static str,
    willneed: bool,
    lock_requested: u64,
    locked_bytes: u64,
    lock_error: Option<String>,
}

/// The cache policy on `reader`'s mapping (PackReader and PackLoader).
pub(super) fn advise(
    py: Python<'_>,
    reader: &PackReader,
    policy: &str,
    lock_bytes: u64,
) -> PyResult<AdviseReport> {
    let policy = Policy::parse(policy, lock_bytes)?;
    let r = py.detach(|| reader.advise(policy))?;
    Ok(AdviseReport {
        policy: r.policy,
        willneed: r.willneed,
        lock_requested: r.lock_requested,
        locked_bytes: r.locked_bytes,
        lock_error: r.lock_error,
    })
}

/// A memory-mapped pack, shared by every thread (and, through the page cache, process).
#[pyclass(name = "PackReader", module = "pillsnap._native", frozen)]
pub(super) struct PyPackReader {
    inner: PackReader,
}

impl PyPackReader {
    /// A Python index (negative counts from the end) as a record number.
    fn index(&self, i: i64) -> Result<u64, Error> {
        let len = self.inner.len();
        let n = if i < 0 {
            len.checked_sub(i.unsigned_abs())
        } else {
            Some(i as u64)
        };
        n.filter(|&n| n < len).ok_or(Error::IndexOutOfRange {
            index: i.into(),
            len,
        })
    }

    fn record_at(&self, i: i64) -> Result<RecordRef<'_>, Error> {
        let n = self.index(i)?;
        self.inner.record(n).ok_or(Error::IndexOutOfRange {
            index: n.into(),
            len: self.inner.len(),
        })
    }
}

#[pymethods]
impl PyPackReader {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| {
            Error::catch_panic(|| "opening a pack".to_owned(), || PackReader::open(&path))
        })?;
        Ok(PyPackReader { inner })
    }

    fn __len__(&self) -> usize {
        usize::try_from(self.inner.len()).unwrap_or(usize::MAX)
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    #[getter]
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    fn header(&self) -> PackHeader {
        let h = self.inner.header();
        PackHeader {
            version: h.version,
            storage: h.storage.as_str(),
            class_hash: h.class_hash_str().to_owned(),
            records: h.record_count,
            boxes: h.box_count,
            created_unix: h.created_unix,
            data_start: h.data_start,
            index_offset: h.index_offset,
            file_bytes: h.file_len,
            metadata: self.inner.view().metadata_json().to_owned(),
        }
    }

    fn record<'py>(&self, py: Python<'py>, i: i64) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, self.record_at(i)?.bytes))
    }

    fn meta(&self, i: i64) -> PyResult<RecordMeta> {
        let r = self.record_at(i)?;
        let m = &r.meta;
        Ok(RecordMeta {
            width: m.width,
            height: m.height,
            label: m.label,
            boxes: r.boxes().map(|b| box_tuple(&b)).collect(),
            source_id: m.source_id,
            offset: m.offset,
            length: m.length,
            checksum: m.checksum,
        })
    }

    fn labels(&self, py: Python<'_>) -> Vec<i32> {
        py.detach(|| self.inner.view().labels())
    }

    fn verify(&self, py: Python<'_>, i: i64) -> PyResult<bool> {
        let n = self.index(i)?;
        match py.detach(|| self.inner.verify(n)) {
            Ok(()) => Ok(true),
            Err(Error::PackChecksum { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    #[pyo3(signature = (threads = 0))]
    fn verify_all(&self, py: Python<'_>, threads: usize) -> PyResult<Vec<u64>> {
        Ok(py.detach(|| {
            Error::catch_panic(
                || "verifying a pack".to_owned(),
                || self.inner.verify_all(threads),
            )
        })?)
    }

    #[pyo3(signature = (policy, lock_bytes = 0))]
    fn advise(&self, py: Python<'_>, policy: &str, lock_bytes: u64) -> PyResult<AdviseReport> {
        advise(py, &self.inner, policy, lock_bytes)
    }

    #[pyo3(signature = (threads = 0))]
    fn warm(&self, py: Python<'_>, threads: usize) -> PyResult<u64> {
        Ok(py.detach(|| {
            Error::catch_panic(|| "warming a pack".to_owned(), || self.inner.warm(threads))
        })?)
    }

    fn __repr__(&self) -> String {
        format!(
            "PackReader({:?}, records={})",
            self.inner.path().display().to_string(),
            self.inner.len()
        )
    }
}
