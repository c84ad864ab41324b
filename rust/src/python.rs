//! The one binding layer: every `#[pyfunction]` and the `#[pymodule]` live here, and so does
//! the one conversion from [`Error`] into the exception classes of `pillsnap.errors`.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::augment;
use crate::error::Error;
use crate::jpeg::{CropRect, EncodeOptions, JpegEncoder, Subsampling};
use crate::probe::{self, ImageInfo, Prober};
use crate::resize::Layout;
use crate::sample::SampleDecoder;

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
    fn get(out: &Bound<'py, PyAny>, needed: usize) -> PyResult<Self> {
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
        if !matches!(format.as_str(), "B" | "b" | "c") {
            return Err(invalid_arg(format!(
                "out must hold uint8, got format {format:?}"
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
        Error::InvalidArgument { .. } => errors
            .getattr("InvalidArgumentError")?
            .call1((err.to_string(),)),
        Error::Internal { .. } | Error::Timeout => {
            errors.getattr("PillsnapError")?.call1((err.to_string(),))
        }
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
    m.add_function(wrap_pyfunction!(jpeg_header, m)?)?;
    m.add_function(wrap_pyfunction!(decode_train_sample, m)?)?;
    m.add_function(wrap_pyfunction!(decode_eval_sample, m)?)?;
    m.add_function(wrap_pyfunction!(decode_crop, m)?)?;
    m.add_function(wrap_pyfunction!(decode_full, m)?)?;
    m.add_function(wrap_pyfunction!(encode_jpeg, m)?)?;
    m.add_function(wrap_pyfunction!(crop_params_train, m)?)?;
    m.add_function(wrap_pyfunction!(crop_params_eval, m)?)?;
    Ok(())
}
