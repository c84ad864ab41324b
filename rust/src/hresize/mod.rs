//! The horizontal pass of the sample resize, with the flip and the slot layout folded in.
//!
//! Why this exists: fast_image_resize (fir) resamples u8 RGB one output pixel at a time (a
//! loop over that pixel's taps, then four scalar stores per four rows), about 3.5 cycles per
//! output pixel on the 2-core dev VM. At 384 px its horizontal pass cost 0.2 ms per sample,
//! as much as a third of the crop-window decode, and the flip or planar layout then needed
//! one more pass over the output. Here each 32-bit SIMD lane computes one output *channel
//! value*: a table built once per call says which source bytes and which coefficients every
//! lane needs, so one 16-byte load, one byte shuffle and one multiply-add give four output
//! values per pair of taps, and 32 output bytes are stored at once. Mirroring and the planar
//! layout are only another table order, so they cost nothing.
//!
//! Exactness: the coefficients are computed exactly as fir 6.1 computes them for
//! `Convolution(Bilinear)` on u8 images (Pillow's scheme: the triangle filter stretched by
//! the downscale factor, normalised, rounded to i16 at the largest precision that fits), the
//! arithmetic is the same (i32 sums from a rounding constant, arithmetic shift, saturation to
//! u8), and the vertical pass is still fir's, run first as fir does for u8 images. The
//! result is bit-identical to fir's resize followed by the old flip/layout store pass.
//!
//! When the fast path does not apply [`HorizontalResizer::resize`] returns `false` and the
//! caller uses fir as before: no AVX2; no horizontal resampling; a group of four values
//! whose source bytes do not fit one 16-byte load. HWC groups span two output pixels, so
//! they always fit up to a 2x downscale (past that the train path mostly decodes at 1/2
//! scale); CHW groups span four pixels of one plane and fit upscales only (nothing in
//! PillSnap asks for CHW).

#[cfg(target_arch = "x86_64")]
mod kernel;
mod plan;
#[cfg(test)]
mod tests;

use fast_image_resize as fir;
use fir::images::{CroppedImage, Image, ImageRef};
use fir::{FilterType, PixelType, ResizeAlg, ResizeOptions};

use crate::error::Error;
use crate::jpeg::Window;
use crate::resize::Layout;
use plan::{Plan, Taps};

/// Output values one block of the kernel writes: four accumulators, each two 128-bit halves
/// of four i32 values.
const BLOCK: usize = 32;

/// Per-thread state of the fast path: fir for the vertical pass, its output, the table.
#[derive(Default)]
pub struct HorizontalResizer {
    vertical: fir::Resizer,
    temp: Vec<u8>,
    plan: Plan,
}

impl HorizontalResizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resizes like [`crate::resize::Resizer::resize_window`] (same arguments, `dst` already
    /// checked to be `out_w * out_h * 3` bytes) and returns true, or returns false without
    /// touching `dst` when the fast path does not apply.
    pub fn resize(
        &mut self,
        window: &Window<'_>,
        out_w: u32,
        out_h: u32,
        flip: bool,
        layout: Layout,
        dst: &mut [u8],
    ) -> Result<bool, Error> {
        let c = window.crop;
        // fir skips a horizontal pass that would copy: nothing to gain here then.
        let horizontal = f64::from(out_w) != c.w || c.x != c.x.round();
        if !avx2() || !horizontal {
            return Ok(false);
        }
        let Some(taps) = Taps::new(window.view_w, c.x, c.x + c.w, out_w) else {
            return Ok(false);
        };
        let (first, end) = taps.span();
        let temp_w = end - first;
        let row_bytes = temp_w as usize * 3;
        if temp_w == 0 || !self.plan.build(&taps, first, row_bytes, flip, layout) {
            return Ok(false);
        }
        let body = row_bytes * out_h as usize;
        let need = body + self.plan.overrun;
        // Grown, never shrunk: refilling with zeros every call showed up in profiles.
        if self.temp.len() < need {
            self.temp.resize(need, 0);
        }
        vertical_pass(
            &mut self.vertical,
            window,
            first,
            temp_w,
            out_h,
            &mut self.temp[..body],
        )?;
        let out = (out_w as usize, out_h as usize);
        if kernel::rows(&self.plan, &self.temp[..need], row_bytes, out, dst) {
            Ok(true)
        } else {
            Err(Error::internal("horizontal resize table out of bounds"))
        }
    }
}

/// fir's vertical pass over source columns `first..first + temp_w` of the view, into `temp`
/// (`temp_w` x `out_h`): what fir's own resize computes before its horizontal pass.
fn vertical_pass(
    resizer: &mut fir::Resizer,
    window: &Window<'_>,
    first: u32,
    temp_w: u32,
    out_h: u32,
    temp: &mut [u8],
) -> Result<(), Error> {
    let fail = |e: &dyn std::fmt::Display| Error::internal(format!("resize failed: {e}"));
    let src = ImageRef::new(window.width, window.height, window.pixels, PixelType::U8x3)
        .map_err(|e| fail(&e))?;
    let columns = CroppedImage::new(
        &src,
        window.view_x + first,
        window.view_y,
        temp_w,
        window.view_h,
    )
    .map_err(|e| fail(&e))?;
    let mut out =
        Image::from_slice_u8(temp_w, out_h, temp, PixelType::U8x3).map_err(|e| fail(&e))?;
    let c = window.crop;
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(0.0, c.y, f64::from(temp_w), c.h);
    resizer
        .resize(&columns, &mut out, &options)
        .map_err(|e| fail(&e))
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod kernel {
    /// Never called: [`super::avx2`] is false off x86-64.
    pub(super) fn rows(
        _: &super::Plan,
        _: &[u8],
        _: usize,
        _: (usize, usize),
        _: &mut [u8],
    ) -> bool {
        false
    }
}
