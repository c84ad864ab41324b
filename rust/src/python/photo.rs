//! `Photo`: serving's image work (`crate::photo`), the stub's `Photo` class.
//!
//! The bytes are held, not copied (`PyBackedBytes`), so that the work can run with the GIL
//! released; each calling thread keeps its own decoders.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;

use super::buffer::{OutBuffer, FLOAT32};
use crate::error::Error;
use crate::jpeg::CropRect;
use crate::photo::{Photo, PhotoDecoder};

thread_local! {
    /// One set of decoders per Python thread that calls in, reused across photos.
    static DECODER: RefCell<Option<PhotoDecoder>> = const { RefCell::new(None) };
}

/// Runs `work` with this thread's decoders, turning a panic into [`Error::Internal`].
fn with_decoder<T>(work: impl FnOnce(&mut PhotoDecoder) -> Result<T, Error>) -> Result<T, Error> {
    Error::catch_panic(
        || "preparing a photo".to_owned(),
        || {
            DECODER.with(|cell| {
                let mut slot = cell
                    .try_borrow_mut()
                    .map_err(|_| Error::internal("photo decoder re-entered"))?;
                if slot.is_none() {
                    *slot = Some(PhotoDecoder::new()?);
                }
                let Some(decoder) = slot.as_mut() else {
                    return Err(Error::internal("photo decoder missing"));
                };
                let result = work(decoder);
                decoder.trim(); // a huge upload's buffers are not kept by this thread
                result
            })
        },
    )
}

/// A fractional region `(x, y, w, h)` in upright photo pixels.
type Region = (f64, f64, f64, f64);

#[pyclass(name = "Photo", module = "pillsnap._native")]
pub(super) struct PyPhoto {
    inner: Photo<PyBackedBytes>,
}

#[pymethods]
impl PyPhoto {
    #[new]
    #[pyo3(signature = (data, max_pixels = None))]
    fn new(py: Python<'_>, data: PyBackedBytes, max_pixels: Option<u64>) -> PyResult<Self> {
        let inner = py.detach(|| with_decoder(|dec| Photo::open(data, max_pixels, dec)))?;
        Ok(PyPhoto { inner })
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.inner.format().as_str()
    }

    #[getter]
    fn width(&self) -> u32 {
        self.inner.size().0
    }

    #[getter]
    fn height(&self) -> u32 {
        self.inner.size().1
    }

    fn letterbox(
        &mut self,
        py: Python<'_>,
        size: u32,
        out: &Bound<'_, PyAny>,
    ) -> PyResult<(f64, u32, u32)> {
        let needed = 3 * size as usize * size as usize * 4;
        let mut out = OutBuffer::get_typed(out, needed, FLOAT32, "float32")?;
        let dst = out.as_mut_f32()?;
        let inner = &mut self.inner;
        let place = py.detach(|| with_decoder(|dec| inner.letterbox(size, dec, dst)))?;
        Ok((place.scale, place.pad_x, place.pad_y))
    }

    #[pyo3(signature = (regions, size, short_side, out))]
    fn crops(
        &mut self,
        py: Python<'_>,
        regions: Option<Vec<Region>>,
        size: u32,
        short_side: Option<u32>,
        out: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let regions: Option<Vec<CropRect>> = regions.map(|list| {
            list.into_iter()
                .map(|(x, y, w, h)| CropRect::new(x, y, w, h))
                .collect()
        });
        let count = regions.as_ref().map_or(1, Vec::len);
        let mut out = OutBuffer::get(out, count * size as usize * size as usize * 3)?;
        let dst = out.as_mut_slice();
        let inner = &mut self.inner;
        py.detach(|| {
            with_decoder(|dec| inner.crops(regions.as_deref(), size, short_side, dec, dst))
        })?;
        Ok(())
    }

    fn decode(&mut self, py: Python<'_>, out: &Bound<'_, PyAny>) -> PyResult<()> {
        let (width, height) = self.inner.size();
        let mut out = OutBuffer::get(out, width as usize * height as usize * 3)?;
        let dst = out.as_mut_slice();
        let inner = &mut self.inner;
        py.detach(|| with_decoder(|dec| inner.decode(dec, dst)))?;
        Ok(())
    }
}
