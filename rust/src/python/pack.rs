//! Making packs from Python: `prepare_records` (the parallel decode-crop-encode step) and
//! `PackWriter`; `reader.rs` reads them. See `_native.pyi` for the Python contract.
//!
//! What a call returns to Python is a typed struct (`#[derive(IntoPyObject)]`: named fields
//! become a dict with those keys), so the keys are spelled once, beside the stub's
//! `TypedDict` of the same name.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use super::errors::exception_instance;
use crate::error::Error;
use crate::pack::{self, BoxLabel, PackWriter, RecordInput, Storage, WriterOptions};
use crate::prepare::{prepare_many, PrepareOptions, SourceItem};

/// Records written per GIL release in `PackWriter.add_many`; Ctrl-C is checked between.
const PACK_CHUNK: usize = 256;

/// A box as Python sees it: `(x, y, w, h, label)` in the stored image's pixels.
pub(super) type BoxTuple = (f32, f32, f32, f32, i32);

fn box_label((x, y, w, h, label): BoxTuple) -> BoxLabel {
    BoxLabel { x, y, w, h, label }
}

pub(super) fn box_tuple(b: &BoxLabel) -> BoxTuple {
    (b.x, b.y, b.w, b.h, b.label)
}

/// `PackWriter.finish()` (the stub's `PackSummary`).
#[derive(IntoPyObject)]
struct PackSummary {
    path: PathBuf,
    records: u64,
    boxes: u64,
    file_bytes: u64,
    payload_bytes: u64,
    padding_bytes: u64,
    resumed_records: u64,
    dropped_on_resume: u64,
}

impl From<pack::PackSummary> for PackSummary {
    fn from(s: pack::PackSummary) -> Self {
        PackSummary {
            path: s.path,
            records: s.records,
            boxes: s.boxes,
            file_bytes: s.file_bytes,
            payload_bytes: s.payload_bytes,
            padding_bytes: s.padding_bytes,
            resumed_records: s.resumed_records,
            dropped_on_resume: s.dropped_on_resume,
        }
    }
}

/// One record as Python passes it: `(payload, width, height, label[, boxes[, source_id]])`.
struct PyRecord {
    payload: PyBackedBytes,
    width: u32,
    height: u32,
    label: i32,
    boxes: Vec<BoxLabel>,
    source_id: u64,
}

impl PyRecord {
    fn input(&self) -> RecordInput<'_> {
        RecordInput {
            payload: &self.payload,
            width: self.width,
            height: self.height,
            label: self.label,
            boxes: &self.boxes,
            source_id: self.source_id,
        }
    }

    fn from_tuple(item: &Bound<'_, PyAny>) -> PyResult<PyRecord> {
        let t = item.cast::<PyTuple>().map_err(|_| Error::WrongType {
            reason: "each record is a tuple (payload, width, height, label[, boxes[, \
                     source_id]])"
                .to_owned(),
        })?;
        if !(4..=6).contains(&t.len()) {
            return Err(Error::invalid(format!(
                "a record tuple has 4 to 6 items (payload, width, height, label[, boxes[, \
                 source_id]]), not {}",
                t.len()
            ))
            .into());
        }
        let boxes: Vec<BoxTuple> = match t.len() {
            5.. => t.get_item(4)?.extract()?,
            _ => Vec::new(),
        };
        Ok(PyRecord {
            payload: t.get_item(0)?.extract()?,
            width: t.get_item(1)?.extract()?,
            height: t.get_item(2)?.extract()?,
            label: t.get_item(3)?.extract()?,
            boxes: boxes.into_iter().map(box_label).collect(),
            source_id: match t.len() {
                6 => t.get_item(5)?.extract()?,
                _ => 0,
            },
        })
    }
}

/// Writes a pack; see `_native.pyi` for the Python contract.
#[pyclass(name = "PackWriter", module = "pillsnap._native")]
pub(super) struct PyPackWriter {
    /// `None` once finished or closed.
    inner: Option<PackWriter>,
    path: PathBuf,
    /// Records written, kept for `len()` after the writer is gone.
    records: u64,
    resumed: u64,
    dropped_on_resume: u64,
}

/// What using a finished or closed writer raises.
fn closed_error(path: &Path) -> Error {
    Error::invalid(format!(
        "the PackWriter for {} is already finished or closed",
        path.display()
    ))
}

impl PyPackWriter {
    fn writer(&mut self) -> Result<&mut PackWriter, Error> {
        let path = &self.path;
        self.inner.as_mut().ok_or_else(|| closed_error(path))
    }

    /// Adds records with the GIL released; a panic abandons the writer (its journal stays).
    fn add_records(&mut self, py: Python<'_>, records: &[PyRecord]) -> PyResult<()> {
        let writer = self.writer()?;
        let result = py.detach(|| {
            Error::catch_panic(
                || "writing pack records".to_owned(),
                || {
                    for (k, r) in records.iter().enumerate() {
                        writer.add(&r.input()).map_err(|e| match e {
                            Error::InvalidArgument { reason } if records.len() > 1 => {
                                Error::invalid(format!("record {k} of the batch: {reason}"))
                            }
                            other => other,
                        })?;
                    }
                    Ok(())
                },
            )
        });
        self.records = writer.len();
        if let Err(Error::Internal { .. }) = &result {
            if let Some(w) = self.inner.take() {
                w.abandon();
            }
        }
        Ok(result?)
    }
}

#[pymethods]
impl PyPackWriter {
    #[new]
    #[pyo3(signature = (
        path, storage = "jpeg", *, class_hash, metadata_json = "{}", resume = false,
        checkpoint_every = 256
    ))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        storage: &str,
        class_hash: String,
        metadata_json: &str,
        resume: bool,
        checkpoint_every: u32,
    ) -> PyResult<Self> {
        let parsed = py.import("json")?.call_method1("loads", (metadata_json,));
        if !parsed.is_ok_and(|v| v.is_instance_of::<PyDict>()) {
            return Err(Error::invalid(format!(
                "metadata_json must be a JSON object, got {metadata_json:?}"
            ))
            .into());
        }
        let mut options = WriterOptions::new(Storage::parse(storage)?, class_hash);
        options.metadata_json = metadata_json.to_owned();
        options.resume = resume;
        options.checkpoint_every = checkpoint_every;
        let writer = py.detach(|| {
            Error::catch_panic(
                || "opening a pack writer".to_owned(),
                || PackWriter::open(&path, options),
            )
        })?;
        Ok(PyPackWriter {
            records: writer.len(),
            resumed: writer.resumed(),
            dropped_on_resume: writer.dropped_on_resume(),
            inner: Some(writer),
            path,
        })
    }

    fn __len__(&self) -> usize {
        usize::try_from(self.records).unwrap_or(usize::MAX)
    }

    /// Where the finished pack goes.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The source id of the last record written (None when empty): where a resumed run
    /// picks up its inputs.
    fn last_source_id(&self) -> Option<u64> {
        self.inner.as_ref().and_then(PackWriter::last_source_id)
    }

    /// Records found in the journal when the writer was opened with `resume=True`.
    #[getter]
    fn resumed(&self) -> u64 {
        self.resumed
    }

    /// Journal records dropped at open because their bytes were missing or damaged.
    #[getter]
    fn dropped_on_resume(&self) -> u64 {
        self.dropped_on_resume
    }

    #[pyo3(signature = (payload, width, height, label, boxes = Vec::new(), source_id = 0))]
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        py: Python<'_>,
        payload: PyBackedBytes,
        width: u32,
        height: u32,
        label: i32,
        boxes: Vec<BoxTuple>,
        source_id: u64,
    ) -> PyResult<u64> {
        let record = PyRecord {
            payload,
            width,
            height,
            label,
            boxes: boxes.into_iter().map(box_label).collect(),
            source_id,
        };
        self.add_records(py, std::slice::from_ref(&record))?;
        Ok(self.records - 1)
    }

    fn add_many(&mut self, py: Python<'_>, records: &Bound<'_, PyAny>) -> PyResult<u64> {
        let first = self.writer()?.len();
        let records: Vec<PyRecord> = records
            .try_iter()?
            .map(|item| PyRecord::from_tuple(&item?))
            .collect::<PyResult<_>>()?;
        for chunk in records.chunks(PACK_CHUNK) {
            self.add_records(py, chunk)?;
            py.check_signals()?;
        }
        Ok(first)
    }

    fn finish(&mut self, py: Python<'_>) -> PyResult<PackSummary> {
        let Some(writer) = self.inner.take() else {
            return Err(closed_error(&self.path).into());
        };
        let summary =
            py.detach(|| Error::catch_panic(|| "finishing a pack".to_owned(), || writer.finish()))?;
        self.records = summary.records;
        Ok(summary.into())
    }

    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(mut writer) = self.inner.take() else {
            return Ok(());
        };
        // The checkpoint (payload sync, journal write) needs no GIL. Its error is raised, so
        // the caller knows the journal may lack the last records (a resume redoes them).
        let checkpoint = py.detach(|| {
            Error::catch_panic(
                || "closing a pack writer".to_owned(),
                || writer.checkpoint(),
            )
        });
        py.detach(|| match checkpoint {
            Err(Error::Internal { .. }) => writer.abandon(),
            _ => drop(writer),
        });
        Ok(checkpoint?)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (exc_type, _exc = None, _tb = None))]
    fn __exit__(
        &mut self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        match exc_type {
            // A clean exit finishes the pack, like closing a file flushes it.
            None if self.inner.is_some() => {
                self.finish(py)?;
            }
            // On an exception, keep the journal so a rerun with resume=True goes on; a
            // failing checkpoint must not hide the exception that is on its way out.
            Some(_) => {
                let _ = self.close(py);
            }
            None => {} // already finished (or closed) inside the block
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.inner.is_some() {
            "open"
        } else {
            "closed"
        };
        format!(
            "PackWriter({:?}, records={}, {state})",
            self.path.display().to_string(),
            self.records
        )
    }
}

/// One item for `prepare_records`: `(path, crop or None, boxes)`.
type ItemTuple = (PathBuf, Option<(f64, f64, f64, f64)>, Vec<BoxTuple>);

/// One element of `prepare_records`' result.
#[derive(IntoPyObject)]
pub(super) enum Prepared<'py> {
    /// `(payload, width, height, boxes)`.
    Record(Bound<'py, PyBytes>, u32, u32, Vec<BoxTuple>),
    /// The exception instance of a bad source (returned, not raised).
    Failed(Bound<'py, PyAny>),
}

/// Decode, crop, shrink and encode source photos for a pack, in parallel with the GIL
/// released. Each element is `(payload, width, height, boxes)` or, for a bad source, the
/// `pillsnap.errors` exception instance (returned, not raised).
#[pyfunction]
#[pyo3(signature = (items, *, short_side, quality = 90, storage = "jpeg", threads = 0))]
pub(super) fn prepare_records<'py>(
    py: Python<'py>,
    items: Vec<ItemTuple>,
    short_side: u32,
    quality: u8,
    storage: &str,
    threads: usize,
) -> PyResult<Vec<Prepared<'py>>> {
    let opts = PrepareOptions {
        short_side,
        quality,
        storage: Storage::parse(storage)?,
    };
    let items: Vec<SourceItem> = items
        .into_iter()
        .map(|(path, crop, boxes)| SourceItem {
            path,
            crop: crop.map(|(x, y, w, h)| [x, y, w, h]),
            boxes: boxes.into_iter().map(box_label).collect(),
        })
        .collect();
    let results = py.detach(|| prepare_many(&items, &opts, threads))?;
    let mut out = Vec::with_capacity(results.len());
    for result in results {
        out.push(match result {
            Ok(p) => Prepared::Record(
                PyBytes::new(py, &p.payload),
                p.width,
                p.height,
                p.boxes.iter().map(box_tuple).collect(),
            ),
            Err(err) => Prepared::Failed(exception_instance(py, err)),
        });
        py.check_signals()?;
    }
    Ok(out)
}
