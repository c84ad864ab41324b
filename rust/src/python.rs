//! The one binding layer: every `#[pyfunction]` and the `#[pymodule]` live here, and so does
//! the one conversion from [`Error`] into the exception classes of `pillsnap.errors`.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::augment::{self, TrainAugment};
use crate::error::Error;
use crate::jpeg::{CropRect, EncodeOptions, JpegEncoder, Subsampling};
use crate::pack::{
    AdviseReport, BoxLabel, PackReader, PackSummary, PackWriter, Policy, RecordInput, RecordRef,
    Storage, WriterOptions,
};
use crate::pack_source::{Mode, PackSource};
use crate::prefetch::{Loader, LoaderConfig, NextBatch, SampleSource};
use crate::prepare::{prepare_many, PrepareOptions, SourceItem};
use crate::probe::{self, ImageInfo, Prober};
use crate::resize::Layout;
use crate::sample::SampleDecoder;

/// Paths probed per GIL release in `probe_images`; Ctrl-C is checked between chunks.
const PROBE_CHUNK: usize = 4096;
/// Records written per GIL release in `PackWriter.add_many`; Ctrl-C is checked between.
const PACK_CHUNK: usize = 256;

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

thread_local! {
    /// One decoder per Python thread that calls in: TurboJPEG instances and scratch buffers
    /// are reused across calls instead of allocated per image.
    static DECODER: RefCell<Option<SampleDecoder>> = const { RefCell::new(None) };
}

/// Runs `work` with this thread's decoder, turning a panic into [`Error::Internal`].
fn with_decoder<T>(work: impl FnOnce(&mut SampleDecoder) -> Result<T, Error>) -> Result<T, Error> {
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        DECODER.with(|cell| {
            let mut slot = cell
                .try_borrow_mut()
                .map_err(|_| Error::internal("decoder re-entered"))?;
            if slot.is_none() {
                *slot = Some(SampleDecoder::new()?);
            }
            match slot.as_mut() {
                Some(decoder) => work(decoder),
                None => Err(Error::internal("decoder missing")),
            }
        })
    }));
    result.unwrap_or_else(|payload| Err(Error::from_panic("decoding a JPEG", payload)))
}

/// A caller's writable, C-contiguous byte buffer of exactly `needed` bytes.
///
/// The extension targets the stable ABI of Python 3.10 (`abi3-py310`), which has no buffer
/// protocol (`PyObject_GetBuffer` joined the limited API in 3.11, so pyo3's `PyBuffer` is
/// compiled out). `ctypes.c_char.from_buffer(out)` does the same job through Python: it takes
/// a writable, C-contiguous export of any buffer-protocol object (numpy array, bytearray,
/// `torch_tensor.numpy()`), keeps it for its own lifetime, and `ctypes.addressof` yields the
/// address. The checks before it only give clearer messages.
struct OutBuffer<'py> {
    /// Holds the buffer export: the memory stays allocated and unresizable while it lives.
    _export: Bound<'py, PyAny>,
    addr: usize,
    len: usize,
}

impl<'py> OutBuffer<'py> {
    /// A uint8 buffer of exactly `needed` bytes.
    fn get(out: &Bound<'py, PyAny>, needed: usize) -> PyResult<Self> {
        Self::get_typed(out, needed, &["B", "b", "c"], "uint8")
    }

    /// A buffer of exactly `needed` bytes whose item format is one of `formats`.
    fn get_typed(
        out: &Bound<'py, PyAny>,
        needed: usize,
        formats: &[&str],
        what: &str,
    ) -> PyResult<Self> {
        let py = out.py();
        let view = py
            .import("builtins")?
            .getattr("memoryview")?
            .call1((out,))
            .map_err(|_| {
                invalid_arg("out must support the buffer protocol (e.g. a numpy uint8 array)")
            })?;
        let format: String = view.getattr("format")?.extract()?;
        let readonly: bool = view.getattr("readonly")?.extract()?;
        let contiguous: bool = view.getattr("c_contiguous")?.extract()?;
        let len: usize = view.getattr("nbytes")?.extract()?;
        view.call_method0("release")?;
        if !formats.contains(&format.as_str()) {
            return Err(invalid_arg(format!(
                "out must hold {what}, got format {format:?}"
            )));
        }
        if readonly {
            return Err(invalid_arg("out is read-only; pass a writable buffer"));
        }
        if !contiguous {
            return Err(invalid_arg("out must be C-contiguous"));
        }
        if len != needed {
            return Err(invalid_arg(format!("out has {len} bytes, {needed} needed")));
        }
        let ctypes = py.import("ctypes")?;
        let export = ctypes
            .getattr("c_char")?
            .call_method1("from_buffer", (out,))?;
        let addr: usize = ctypes.getattr("addressof")?.call1((&export,))?.extract()?;
        Ok(OutBuffer {
            _export: export,
            addr,
            len,
        })
    }

    /// The buffer's bytes, for use while the GIL is released.
    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `addr..addr + len` is the writable, C-contiguous memory of the export that
        // `self._export` holds, so it stays allocated and cannot be resized until `self` is
        // dropped, which the borrow of the returned slice prevents while it is alive. The
        // length was checked against what the caller will write. As with numpy's own
        // GIL-free loops, Python code touching the same array from another thread during the
        // call races with it; that is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }
}

/// `pillsnap.errors.InvalidArgumentError` (a `ValueError`) with `reason`.
fn invalid_arg(reason: impl Into<String>) -> PyErr {
    Error::invalid(reason).into()
}

fn rgb_bytes(width: u32, height: u32) -> usize {
    width as usize * height as usize * 3
}

/// `(width, height, subsampling)` of JPEG bytes, reading only the header.
#[pyfunction]
fn jpeg_header(py: Python<'_>, data: &[u8]) -> PyResult<(u32, u32, &'static str)> {
    let header = py.detach(|| with_decoder(|s| s.decoder.header(data)))?;
    Ok((header.width, header.height, header.subsampling.as_str()))
}

/// A training sample into `out`; returns the crop `(x, y, w, h, flipped)` it used.
#[pyfunction]
#[pyo3(signature = (data, size, seed, epoch, index, out, layout = "hwc", full_decode = false))]
#[allow(clippy::too_many_arguments)]
fn decode_train_sample(
    py: Python<'_>,
    data: &[u8],
    size: u32,
    seed: u64,
    epoch: u64,
    index: u64,
    out: &Bound<'_, PyAny>,
    layout: &str,
    full_decode: bool,
) -> PyResult<(u32, u32, u32, u32, bool)> {
    let layout = Layout::parse(layout)?;
    let mut out = OutBuffer::get(out, rgb_bytes(size, size))?;
    let dst = out.as_mut_slice();
    let key = (seed, epoch, index);
    let params = py.detach(|| {
        with_decoder(|s| {
            if full_decode {
                s.load_train_sample_full_decode(data, size, key, layout, dst)
            } else {
                s.load_train_sample(data, size, key, layout, dst)
            }
        })
    })?;
    let c = params.crop;
    Ok((c.x as u32, c.y as u32, c.w as u32, c.h as u32, params.flip))
}

/// An eval sample (Resize(int(size / 0.875)) + CenterCrop(size)) into `out`; returns the
/// source region `(x, y, w, h)` (fractional) that fills it.
#[pyfunction]
#[pyo3(signature = (data, size, out, layout = "hwc"))]
fn decode_eval_sample(
    py: Python<'_>,
    data: &[u8],
    size: u32,
    out: &Bound<'_, PyAny>,
    layout: &str,
) -> PyResult<(f64, f64, f64, f64)> {
    let layout = Layout::parse(layout)?;
    let mut out = OutBuffer::get(out, rgb_bytes(size, size))?;
    let dst = out.as_mut_slice();
    let c = py.detach(|| with_decoder(|s| s.load_eval_sample(data, size, layout, dst)))?;
    Ok((c.x, c.y, c.w, c.h))
}

/// Crop `(x, y, w, h)` of the source, resized to `out_w` x `out_h` (crop then resize),
/// optionally mirrored, into `out`.
#[pyfunction]
#[pyo3(signature = (data, x, y, w, h, out_w, out_h, flip, out, layout = "hwc"))]
#[allow(clippy::too_many_arguments)]
fn decode_crop(
    py: Python<'_>,
    data: &[u8],
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    out_w: u32,
    out_h: u32,
    flip: bool,
    out: &Bound<'_, PyAny>,
    layout: &str,
) -> PyResult<()> {
    let layout = Layout::parse(layout)?;
    let mut out = OutBuffer::get(out, rgb_bytes(out_w, out_h))?;
    let dst = out.as_mut_slice();
    let crop = CropRect::new(x, y, w, h);
    py.detach(|| {
        with_decoder(|s| s.load_crop(data, crop, 0.0, (out_w, out_h), flip, layout, dst))
    })?;
    Ok(())
}

/// The whole image as packed RGB into `out` (width * height * 3 bytes): the baseline.
#[pyfunction]
fn decode_full(py: Python<'_>, data: &[u8], out: &Bound<'_, PyAny>) -> PyResult<(u32, u32)> {
    let (width, height, _) = jpeg_header(py, data)?;
    let mut out = OutBuffer::get(out, rgb_bytes(width, height))?;
    let dst = out.as_mut_slice();
    Ok(py.detach(|| with_decoder(|s| s.decoder.decode_rgb_to(data, dst)))?)
}

fn parse_subsampling(name: &str) -> Result<Subsampling, Error> {
    match name {
        "4:4:4" | "444" => Ok(Subsampling::S444),
        "4:2:2" | "422" => Ok(Subsampling::S422),
        "4:2:0" | "420" => Ok(Subsampling::S420),
        "gray" | "grey" => Ok(Subsampling::Gray),
        other => Err(Error::invalid(format!(
            "subsampling must be '4:4:4', '4:2:2', '4:2:0' or 'gray', got {other:?}"
        ))),
    }
}

/// Encodes packed RGB (`width` x `height`, uint8, C-contiguous) as a baseline JPEG.
#[pyfunction]
#[pyo3(signature = (rgb, width, height, quality = 90, subsampling = "4:2:0", progressive = false))]
fn encode_jpeg<'py>(
    py: Python<'py>,
    rgb: &Bound<'py, PyAny>,
    width: u32,
    height: u32,
    quality: u8,
    subsampling: &str,
    progressive: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let options = EncodeOptions {
        quality,
        subsampling: parse_subsampling(subsampling)?,
        progressive,
    };
    // One copy under the GIL (memoryview.tobytes) keeps this simple and safe with the
    // Python 3.10 stable ABI; encoding costs far more than the copy.
    let bytes = py
        .import("builtins")?
        .getattr("memoryview")?
        .call1((rgb,))
        .and_then(|view| view.call_method0("tobytes"))
        .map_err(|_| invalid_arg("rgb must support the buffer protocol"))?;
    let pixels: &[u8] = bytes.cast::<PyBytes>()?.as_bytes();
    let jpeg = py.detach(|| {
        panic::catch_unwind(AssertUnwindSafe(|| {
            JpegEncoder::new()?.encode(pixels, width, height, &options)
        }))
        .unwrap_or_else(|payload| Err(Error::from_panic("encoding a JPEG", payload)))
    })?;
    Ok(PyBytes::new(py, &jpeg))
}

/// RandomResizedCrop + flip parameters for `(seed, epoch, index)`: `(x, y, w, h, flip)`.
/// `size` does not change the crop (as in torchvision); it is checked for symmetry with
/// `decode_train_sample`.
#[pyfunction]
fn crop_params_train(
    width: u32,
    height: u32,
    size: u32,
    seed: u64,
    epoch: u64,
    index: u64,
) -> PyResult<(u32, u32, u32, u32, bool)> {
    if width == 0 || height == 0 || size == 0 {
        return Err(invalid_arg("width, height and size must be positive"));
    }
    let p = augment::train_params(width, height, seed, epoch, index);
    let c = p.crop;
    Ok((c.x as u32, c.y as u32, c.w as u32, c.h as u32, p.flip))
}

/// The eval crop (Resize(int(size / 0.875)) + CenterCrop(size)) as a fractional source
/// region `(x, y, w, h)`.
#[pyfunction]
fn crop_params_eval(width: u32, height: u32, size: u32) -> PyResult<(f64, f64, f64, f64)> {
    if width == 0 || height == 0 || size == 0 {
        return Err(invalid_arg("width, height and size must be positive"));
    }
    let c = augment::eval_crop(width, height, size);
    Ok((c.x, c.y, c.w, c.h))
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
        Error::CorruptJpeg { .. } => errors
            .getattr("CorruptImageError")?
            .call1((err.to_string(),)),
        Error::UnsupportedJpeg { .. } => errors
            .getattr("UnsupportedImageError")?
            .call1((err.to_string(),)),
        Error::PackTruncated { .. }
        | Error::PackBadMagic { .. }
        | Error::PackBadVersion { .. }
        | Error::PackChecksum { .. }
        | Error::PackCorrupt { .. }
        | Error::PackJournal { .. } => errors.getattr("PackError")?.call1((err.to_string(),)),
        // Caller mistakes, not data problems: ValueError / IndexError as Python code expects.
        Error::InvalidArgument { .. } => errors
            .getattr("InvalidArgumentError")?
            .call1((err.to_string(),)),
        Error::IndexOutOfRange { .. } => Ok(PyIndexError::new_err(err.to_string())
            .into_value(py)
            .into_bound(py)
            .into_any()),
        Error::Loader { .. } => errors.getattr("LoaderError")?.call1((err.to_string(),)),
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
        let t = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(
                "each record is a tuple (payload, width, height, label[, boxes[, source_id]])",
            )
        })?;
        if !(4..=6).contains(&t.len()) {
            return Err(PyValueError::new_err(format!(
                "a record tuple has 4 to 6 items (payload, width, height, label[, boxes[, \
                 source_id]]), not {}",
                t.len()
            )));
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

/// A box as Python sees it: `(x, y, w, h, label)` in the stored image's pixels.
type BoxTuple = (f32, f32, f32, f32, i32);

fn box_label((x, y, w, h, label): BoxTuple) -> BoxLabel {
    BoxLabel { x, y, w, h, label }
}

/// Writes a pack; see `_native.pyi` for the Python contract.
#[pyclass(name = "PackWriter", module = "pillsnap._native")]
struct PyPackWriter {
    /// `None` once finished or closed.
    inner: Option<PackWriter>,
    path: PathBuf,
    /// Records written, kept for `len()` after the writer is gone.
    records: u64,
    resumed: u64,
    dropped_on_resume: u64,
}

impl PyPackWriter {
    fn writer(&mut self) -> PyResult<&mut PackWriter> {
        self.inner.as_mut().ok_or_else(|| {
            PyValueError::new_err(format!(
                "the PackWriter for {} is already finished or closed",
                self.path.display()
            ))
        })
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
        path, storage = "jpeg", *, class_hash, metadata_json = "{}".to_owned(), resume = false,
        checkpoint_every = 256
    ))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        storage: &str,
        class_hash: String,
        metadata_json: String,
        resume: bool,
        checkpoint_every: u32,
    ) -> PyResult<Self> {
        let parsed = py.import("json")?.call_method1("loads", (&metadata_json,));
        if !parsed.is_ok_and(|v| v.is_instance_of::<PyDict>()) {
            return Err(PyValueError::new_err(format!(
                "metadata_json must be a JSON object, got {metadata_json:?}"
            )));
        }
        let mut options = WriterOptions::new(Storage::parse(storage)?, class_hash);
        options.metadata_json = metadata_json;
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

    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.writer()?;
        let Some(writer) = self.inner.take() else {
            return Err(PyValueError::new_err("the PackWriter is already finished"));
        };
        let summary =
            py.detach(|| Error::catch_panic(|| "finishing a pack".to_owned(), || writer.finish()))?;
        self.records = summary.records;
        summary_dict(py, &summary)
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

fn summary_dict<'py>(py: Python<'py>, s: &PackSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &s.path)?;
    d.set_item("records", s.records)?;
    d.set_item("boxes", s.boxes)?;
    d.set_item("file_bytes", s.file_bytes)?;
    d.set_item("payload_bytes", s.payload_bytes)?;
    d.set_item("padding_bytes", s.padding_bytes)?;
    d.set_item("resumed_records", s.resumed_records)?;
    d.set_item("dropped_on_resume", s.dropped_on_resume)?;
    Ok(d)
}

/// A memory-mapped pack, shared by every thread (and, through the page cache, process).
#[pyclass(name = "PackReader", module = "pillsnap._native", frozen)]
struct PyPackReader {
    inner: PackReader,
}

impl PyPackReader {
    /// A Python index (negative counts from the end) as a record number.
    fn index(&self, i: i64) -> PyResult<u64> {
        let len = self.inner.len();
        let n = if i < 0 {
            len.checked_sub(i.unsigned_abs())
        } else {
            Some(i as u64)
        };
        n.filter(|&n| n < len).ok_or_else(|| {
            PyIndexError::new_err(format!(
                "record {i} is out of range for a pack of {len} records"
            ))
        })
    }

    fn record_at(&self, i: i64) -> PyResult<RecordRef<'_>> {
        let n = self.index(i)?;
        Ok(self.inner.record(n).ok_or(Error::IndexOutOfRange {
            index: n,
            len: self.inner.len(),
        })?)
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

    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let h = self.inner.header();
        let d = PyDict::new(py);
        d.set_item("version", h.version)?;
        d.set_item("storage", h.storage.as_str())?;
        d.set_item("class_hash", h.class_hash_str())?;
        d.set_item("records", h.record_count)?;
        d.set_item("boxes", h.box_count)?;
        d.set_item("created_unix", h.created_unix)?;
        d.set_item("data_start", h.data_start)?;
        d.set_item("index_offset", h.index_offset)?;
        d.set_item("file_bytes", h.file_len)?;
        let json = self.inner.view().metadata_json();
        d.set_item(
            "metadata",
            py.import("json")?.call_method1("loads", (json,))?,
        )?;
        Ok(d)
    }

    fn record<'py>(&self, py: Python<'py>, i: i64) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, self.record_at(i)?.bytes))
    }

    fn meta<'py>(&self, py: Python<'py>, i: i64) -> PyResult<Bound<'py, PyDict>> {
        let r = self.record_at(i)?;
        let m = &r.meta;
        let d = PyDict::new(py);
        d.set_item("width", m.width)?;
        d.set_item("height", m.height)?;
        d.set_item("label", m.label)?;
        let boxes: Vec<BoxTuple> = r.boxes().map(|b| (b.x, b.y, b.w, b.h, b.label)).collect();
        d.set_item("boxes", boxes)?;
        d.set_item("source_id", m.source_id)?;
        d.set_item("offset", m.offset)?;
        d.set_item("length", m.length)?;
        d.set_item("checksum", m.checksum)?;
        Ok(d)
    }

    fn labels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let labels = py.detach(|| self.inner.view().labels());
        PyList::new(py, labels)
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
    fn advise<'py>(
        &self,
        py: Python<'py>,
        policy: &str,
        lock_bytes: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
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

/// The cache policy on `reader`'s mapping, reported as a dict (PackReader and PackLoader).
fn advise<'py>(
    py: Python<'py>,
    reader: &PackReader,
    policy: &str,
    lock_bytes: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let policy = Policy::parse(policy, lock_bytes)?;
    let report = py.detach(|| reader.advise(policy))?;
    advise_dict(py, &report)
}

fn advise_dict<'py>(py: Python<'py>, r: &AdviseReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("policy", r.policy)?;
    d.set_item("willneed", r.willneed)?;
    d.set_item("lock_requested", r.lock_requested)?;
    d.set_item("locked_bytes", r.locked_bytes)?;
    d.set_item("lock_error", r.lock_error.as_deref())?;
    Ok(d)
}

/// One item for `prepare_records`: `(path, crop or None, boxes)`.
type ItemTuple = (PathBuf, Option<(f64, f64, f64, f64)>, Vec<BoxTuple>);

/// Decode, crop, shrink and encode source photos for a pack, in parallel with the GIL
/// released. Each element is `(payload, width, height, boxes)` or, for a bad source, the
/// `pillsnap.errors` exception instance (returned, not raised).
#[pyfunction]
#[pyo3(signature = (items, *, short_side, quality = 90, storage = "jpeg", threads = 0))]
fn prepare_records<'py>(
    py: Python<'py>,
    items: Vec<ItemTuple>,
    short_side: u32,
    quality: u8,
    storage: &str,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
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
            Ok(p) => {
                let boxes: Vec<BoxTuple> = p
                    .boxes
                    .iter()
                    .map(|b| (b.x, b.y, b.w, b.h, b.label))
                    .collect();
                (PyBytes::new(py, &p.payload), p.width, p.height, boxes)
                    .into_pyobject(py)?
                    .into_any()
            }
            Err(err) => exception_instance(py, &err)?,
        });
        py.check_signals()?;
    }
    PyList::new(py, out)
}

/// A buffer export held for a loader's lifetime (see `OutBuffer`).
struct HeldBuffer {
    _export: Py<PyAny>,
    addr: usize,
}

impl HeldBuffer {
    fn hold(out: &Bound<'_, PyAny>, needed: usize, formats: &[&str], what: &str) -> PyResult<Self> {
        let buffer = OutBuffer::get_typed(out, needed, formats, what)?;
        Ok(HeldBuffer {
            addr: buffer.addr,
            _export: buffer._export.unbind(),
        })
    }
}

/// The prefetching loader over a pack (`pillsnap.data.PackLoader` wraps it).
#[pyclass(name = "PackLoader", module = "pillsnap._native")]
struct PyPackLoader {
    loader: Loader<PackSource>,
    records: usize,
    pid: u32,
    // Declared after `loader`, so dropped after its threads are joined.
    _images: HeldBuffer,
    _labels: HeldBuffer,
}

#[pymethods]
impl PyPackLoader {
    #[new]
    #[pyo3(signature = (
        path, images, labels, *, batch_size, image_size, train = true, threads = 0, seed = 0,
        shuffle = true, drop_last = true, ring = 4, rank = 0, world_size = 1, layout = "hwc",
        max_substitutes = 8, crop_scale = (0.08, 1.0), hflip = 0.5
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        images: &Bound<'_, PyAny>,
        labels: &Bound<'_, PyAny>,
        batch_size: usize,
        image_size: u32,
        train: bool,
        threads: usize,
        seed: u64,
        shuffle: bool,
        drop_last: bool,
        ring: usize,
        rank: usize,
        world_size: usize,
        layout: &str,
        max_substitutes: usize,
        crop_scale: (f64, f64),
        hflip: f64,
    ) -> PyResult<Self> {
        let reader = Arc::new(py.detach(|| PackReader::open(&path))?);
        let mode = if train {
            Mode::Train {
                seed,
                augment: train_augment(crop_scale, hflip)?,
            }
        } else {
            Mode::Eval
        };
        let source = Arc::new(PackSource::new(
            reader,
            image_size,
            mode,
            Layout::parse(layout)?,
        ));
        let sample_bytes = source.sample_bytes();
        let slots = ring.saturating_mul(batch_size);
        let images = HeldBuffer::hold(images, slots * sample_bytes, &["B", "b", "c"], "uint8")?;
        let labels = HeldBuffer::hold(labels, slots * 8, &["q", "l"], "int64")?;
        let cfg = LoaderConfig {
            batch_size,
            threads: if threads == 0 { num_cpus() } else { threads },
            ring,
            sample_bytes,
            seed,
            shuffle,
            drop_last,
            rank,
            world_size,
            max_substitutes,
        };
        let records = source.len();
        // SAFETY: both buffers were checked to hold `ring * batch_size` samples / labels and
        // stay exported (allocated, unresizable) in `_images` / `_labels` until after the
        // loader is dropped (field order).
        let loader =
            unsafe { Loader::new(source, cfg, images.addr as *mut u8, labels.addr as *mut i64)? };
        Ok(PyPackLoader {
            loader,
            records,
            pid: std::process::id(),
            _images: images,
            _labels: labels,
        })
    }

    fn __len__(&self) -> usize {
        self.records
    }

    fn batches_per_epoch(&self) -> PyResult<usize> {
        self.same_process()?;
        Ok(self.loader.batches_per_epoch())
    }

    fn start_epoch(&self, py: Python<'_>, epoch: u64) -> PyResult<()> {
        self.same_process()?;
        Ok(py.detach(|| self.loader.start_epoch(epoch))?)
    }

    /// `(slot, size)` of the next batch, or None at the end of the epoch. Waits with the GIL
    /// released, waking every 100 ms so that Ctrl-C gets through.
    fn next_batch(&self, py: Python<'_>) -> PyResult<Option<(usize, usize)>> {
        self.same_process()?;
        loop {
            match py.detach(|| self.loader.next_batch(Duration::from_millis(100)))? {
                NextBatch::Ready(batch) => return Ok(Some((batch.slot, batch.len))),
                NextBatch::EpochDone => return Ok(None),
                NextBatch::NotYet => py.check_signals()?,
            }
        }
    }

    fn release(&self) -> PyResult<()> {
        self.same_process()?;
        Ok(self.loader.release()?)
    }

    /// Apply the cache policy to the mapping the loader threads read (see
    /// `PackReader.advise`): "hotset" asks the kernel to read the pack in and may mlock up
    /// to `lock_bytes`; "none" leaves it to the page cache.
    #[pyo3(signature = (policy, lock_bytes = 0))]
    fn advise<'py>(
        &self,
        py: Python<'py>,
        policy: &str,
        lock_bytes: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        advise(py, self.loader.source().reader(), policy, lock_bytes)
    }

    /// `{"samples", "skipped", "last_error"}` since the loader was made.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.loader.stats()?;
        let dict = PyDict::new(py);
        dict.set_item("samples", stats.samples)?;
        dict.set_item("skipped", stats.skipped)?;
        dict.set_item("last_error", stats.last_error)?;
        Ok(dict)
    }
}

impl PyPackLoader {
    /// Threads do not survive fork(): refuse clearly instead of waiting forever.
    fn same_process(&self) -> PyResult<()> {
        if std::process::id() == self.pid {
            return Ok(());
        }
        Err(Error::loader(
            "this PackLoader was created in another process and its threads did not survive \
             fork(); create the loader in the process that iterates it",
        )
        .into())
    }
}

/// RandomResizedCrop with area fraction in `crop_scale` (torchvision's ratio range), then a
/// flip with probability `hflip`.
fn train_augment(crop_scale: (f64, f64), hflip: f64) -> PyResult<TrainAugment> {
    let (lo, hi) = crop_scale;
    if !(0.0 < lo && lo <= hi && hi <= 1.0) {
        return Err(invalid_arg(format!(
            "crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale:?}"
        )));
    }
    if !(0.0..=1.0).contains(&hflip) {
        return Err(invalid_arg(format!("hflip must be in 0..=1, got {hflip}")));
    }
    let mut augment = TrainAugment::default();
    augment.crop.scale = crop_scale;
    augment.flip_p = hflip;
    Ok(augment)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(probe_image, m)?)?;
    m.add_function(wrap_pyfunction!(probe_images, m)?)?;
    m.add_function(wrap_pyfunction!(jpeg_header, m)?)?;
    m.add_function(wrap_pyfunction!(decode_train_sample, m)?)?;
    m.add_function(wrap_pyfunction!(decode_eval_sample, m)?)?;
    m.add_function(wrap_pyfunction!(decode_crop, m)?)?;
    m.add_function(wrap_pyfunction!(decode_full, m)?)?;
    m.add_function(wrap_pyfunction!(encode_jpeg, m)?)?;
    m.add_function(wrap_pyfunction!(crop_params_train, m)?)?;
    m.add_function(wrap_pyfunction!(crop_params_eval, m)?)?;
    m.add_class::<PyPackWriter>()?;
    m.add_class::<PyPackReader>()?;
    m.add_class::<PyPackLoader>()?;
    m.add_function(wrap_pyfunction!(prepare_records, m)?)?;
    Ok(())
}
