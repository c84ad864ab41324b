//! JPEG decode, encode and crop parameters: the functions of `_native.pyi`'s decode section.
//!
//! Decoding releases the GIL and writes straight into the caller's buffer; each calling
//! Python thread keeps its own decoder.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::buffer::{copy_bytes, OutBuffer};
use crate::augment;
use crate::error::Error;
use crate::jpeg::{CropRect, EncodeOptions, JpegEncoder, Subsampling};
use crate::resize::Layout;
use crate::sample::SampleDecoder;

thread_local! {
    /// One decoder per Python thread that calls in: TurboJPEG instances and scratch buffers
    /// are reused across calls instead of allocated per image.
    static DECODER: RefCell<Option<SampleDecoder>> = const { RefCell::new(None) };
}

/// Runs `work` with this thread's decoder, turning a panic into [`Error::Internal`].
fn with_decoder<T>(work: impl FnOnce(&mut SampleDecoder) -> Result<T, Error>) -> Result<T, Error> {
    Error::catch_panic(
        || "decoding a JPEG".to_owned(),
        || {
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
        },
    )
}

fn rgb_bytes(width: u32, height: u32) -> usize {
    width as usize * height as usize * 3
}

/// A crop `(x, y, w, h)` in whole source pixels, then whether it is mirrored.
type TrainCrop = (u32, u32, u32, u32, bool);
/// A fractional source region `(x, y, w, h)`.
type Region = (f64, f64, f64, f64);

fn train_crop(params: augment::TrainParams) -> TrainCrop {
    let c = params.crop;
    (c.x as u32, c.y as u32, c.w as u32, c.h as u32, params.flip)
}

fn region(c: CropRect) -> Region {
    (c.x, c.y, c.w, c.h)
}

/// `(width, height, subsampling)` of JPEG bytes, reading only the header.
#[pyfunction]
pub(super) fn jpeg_header(py: Python<'_>, data: &[u8]) -> PyResult<(u32, u32, &'static str)> {
    let header = py.detach(|| with_decoder(|s| s.decoder.header(data)))?;
    Ok((header.width, header.height, header.subsampling.as_str()))
}

/// A training sample into `out`; returns the crop `(x, y, w, h, flipped)` it used.
#[pyfunction]
#[pyo3(signature = (data, size, seed, epoch, index, out, layout = "hwc", full_decode = false))]
#[allow(clippy::too_many_arguments)]
pub(super) fn decode_train_sample(
    py: Python<'_>,
    data: &[u8],
    size: u32,
    seed: u64,
    epoch: u64,
    index: u64,
    out: &Bound<'_, PyAny>,
    layout: &str,
    full_decode: bool,
) -> PyResult<TrainCrop> {
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
    Ok(train_crop(params))
}

/// An eval sample (Resize(int(size / 0.875)) + CenterCrop(size)) into `out`; returns the
/// source region `(x, y, w, h)` (fractional) that fills it.
#[pyfunction]
#[pyo3(signature = (data, size, out, layout = "hwc"))]
pub(super) fn decode_eval_sample(
    py: Python<'_>,
    data: &[u8],
    size: u32,
    out: &Bound<'_, PyAny>,
    layout: &str,
) -> PyResult<Region> {
    let layout = Layout::parse(layout)?;
    let mut out = OutBuffer::get(out, rgb_bytes(size, size))?;
    let dst = out.as_mut_slice();
    let crop = py.detach(|| with_decoder(|s| s.load_eval_sample(data, size, layout, dst)))?;
    Ok(region(crop))
}

/// Crop `(x, y, w, h)` of the source, resized to `out_w` x `out_h` (crop then resize),
/// optionally mirrored, into `out`.
#[pyfunction]
#[pyo3(signature = (data, x, y, w, h, out_w, out_h, flip, out, layout = "hwc"))]
#[allow(clippy::too_many_arguments)]
pub(super) fn decode_crop(
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
pub(super) fn decode_full(
    py: Python<'_>,
    data: &[u8],
    out: &Bound<'_, PyAny>,
) -> PyResult<(u32, u32)> {
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
pub(super) fn encode_jpeg<'py>(
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
    // Encoding costs far more than the copy.
    let bytes = copy_bytes(rgb, "rgb")?;
    let pixels = bytes.as_bytes();
    let jpeg = py.detach(|| {
        Error::catch_panic(
            || "encoding a JPEG".to_owned(),
            || JpegEncoder::new()?.encode(pixels, width, height, &options),
        )
    })?;
    Ok(PyBytes::new(py, &jpeg))
}

fn check_sizes(width: u32, height: u32, size: u32) -> Result<(), Error> {
    if width == 0 || height == 0 || size == 0 {
        return Err(Error::invalid("width, height and size must be positive"));
    }
    Ok(())
}

/// RandomResizedCrop + flip parameters for `(seed, epoch, index)`: `(x, y, w, h, flip)`.
/// `size` does not change the crop (as in torchvision); it is checked for symmetry with
/// `decode_train_sample`.
#[pyfunction]
pub(super) fn crop_params_train(
    width: u32,
    height: u32,
    size: u32,
    seed: u64,
    epoch: u64,
    index: u64,
) -> PyResult<TrainCrop> {
    check_sizes(width, height, size)?;
    Ok(train_crop(augment::train_params(
        width, height, seed, epoch, index,
    )))
}

/// The eval crop (Resize(int(size / 0.875)) + CenterCrop(size)) as a fractional source
/// region `(x, y, w, h)`.
#[pyfunction]
pub(super) fn crop_params_eval(width: u32, height: u32, size: u32) -> PyResult<Region> {
    check_sizes(width, height, size)?;
    Ok(region(augment::eval_crop(width, height, size)))
}
