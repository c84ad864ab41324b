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
//! When the fast path does not apply (no AVX2, no horizontal resampling, a downscale too
//! strong for the table's 16-byte windows) [`HorizontalResizer::resize`] returns `false` and
//! the caller uses fir as before.

use fast_image_resize as fir;
use fir::images::{CroppedImage, Image, ImageRef};
use fir::{FilterType, PixelType, ResizeAlg, ResizeOptions};

use crate::error::Error;
use crate::jpeg::Window;
use crate::resize::Layout;

/// Output values one block of the kernel writes: four accumulators, each two 128-bit halves
/// of four i32 values.
const BLOCK: usize = 32;
/// fir's limits for u8 images (convolution/optimisations.rs): sums keep two bits of headroom
/// over an 8-bit result; coefficients are i16.
const PRECISION_BITS: u8 = 32 - 8 - 2;
const MAX_COEFFS_PRECISION: u8 = 16 - 1;
/// Most tap pairs per output value the table takes (8 taps: a 3.5x downscale); stronger
/// downscales go to fir.
const MAX_PAIRS: usize = 4;
/// Zero in a byte-shuffle control: the lane reads 0.
const ZERO: u8 = 0x80;

/// One axis of resampling coefficients, exactly as fir computes them
/// (`precompute_coefficients` with the bilinear filter, support 1, adaptive kernel size, then
/// `Normalizer16`).
struct Taps {
    precision: u8,
    /// First source pixel of each output pixel.
    starts: Vec<u32>,
    /// Taps of each output pixel.
    counts: Vec<u32>,
    /// `window` coefficients per output pixel; only the first `counts[i]` are used.
    values: Vec<i16>,
    window: usize,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

impl Taps {
    /// Coefficients resampling source pixels `in0..in1` of a row of `in_size` pixels to
    /// `out_size` pixels. The statements follow fir's so that every rounding is the same.
    fn new(in_size: u32, in0: f64, in1: f64, out_size: u32) -> Option<Taps> {
        let scale = (in1 - in0) / f64::from(out_size);
        if in_size == 0 || out_size == 0 || scale <= 0.0 || !scale.is_finite() {
            return None;
        }
        let filter_scale = scale.max(1.0);
        let radius = filter_scale; // bilinear support 1.0, stretched
        let window = radius.ceil() as usize * 2 + 1;
        let recip = 1.0 / filter_scale;
        let mut coeffs: Vec<f64> = Vec::with_capacity(window * out_size as usize);
        let mut starts = Vec::with_capacity(out_size as usize);
        let mut counts = Vec::with_capacity(out_size as usize);
        for out_x in 0..out_size {
            let in_center = in0 + (f64::from(out_x) + 0.5) * scale;
            let x_min = (in_center - radius).floor().max(0.0) as u32;
            let x_max = (in_center + radius).ceil().min(f64::from(in_size)) as u32;
            let cur = coeffs.len();
            let center = in_center - 0.5;
            let (mut start, mut end) = (x_min, x_max);
            let mut ww = 0.0;
            for x in x_min..x_max {
                let w = bilinear((f64::from(x) - center) * recip);
                if x == start && w == 0.0 {
                    start += 1;
                } else {
                    coeffs.push(w);
                    ww += w;
                }
            }
            // fir trims trailing zeros over the whole list (stopping at the first non-zero).
            for &c in coeffs.iter().rev() {
                if end <= start || c != 0.0 {
                    break;
                }
                end -= 1;
            }
            if ww != 0.0 {
                coeffs[cur..].iter_mut().for_each(|w| *w /= ww);
            }
            coeffs.resize(cur + window, 0.0);
            starts.push(start);
            counts.push(end.saturating_sub(start));
        }
        let max_weight = coeffs.iter().copied().fold(0.0, f64::max);
        let mut precision = 0u8;
        for cur in 0..PRECISION_BITS {
            precision = cur;
            let next = (max_weight * f64::from(1i32 << (precision + 1))).round() as i32;
            if next >= 1 << MAX_COEFFS_PRECISION {
                break;
            }
        }
        let unit = f64::from(1i32 << precision);
        let values = coeffs.iter().map(|&v| (v * unit).round() as i16).collect();
        Some(Taps {
            precision,
            starts,
            counts,
            values,
            window,
        })
    }

    /// Source columns `(first, end)` that any output pixel reads.
    fn span(&self) -> (u32, u32) {
        let ends = self.starts.iter().zip(&self.counts).map(|(s, c)| s + c);
        let first = self.starts.iter().copied().min().unwrap_or(0);
        (first, ends.max().unwrap_or(first).max(first))
    }
}

/// The kernel's table for one output row. Per accumulator: the byte offsets of the 16 source
/// bytes each half loads for tap pair 0 (pair k loads 6k bytes further: two pixels), then in
/// `table` the shuffle that spreads them into (tap, tap) i16 pairs and the weights (i16,
/// little-endian) of every pair.
#[derive(Default)]
struct Plan {
    pairs: usize,
    precision: u8,
    offsets: Vec<[u32; 2]>,
    /// `1 + pairs` entries per accumulator: shuffle control, then weights.
    table: Vec<[u8; 32]>,
    /// Output runs of a row: (first accumulator, values). HWC: one run of `3 * out_w`
    /// interleaved values; CHW: one run of `out_w` values per colour plane.
    runs: Vec<(usize, usize)>,
    /// Bytes past a source row's end that the loads may touch.
    overrun: usize,
}

impl Plan {
    /// Builds the table into `self` (buffers reused); false if a group of four values needs
    /// source bytes more than one 16-byte load apart or more than [`MAX_PAIRS`] tap pairs.
    fn build(
        &mut self,
        taps: &Taps,
        first: u32,
        row_bytes: usize,
        flip: bool,
        layout: Layout,
    ) -> bool {
        let out_w = taps.starts.len();
        let max_count = taps.counts.iter().copied().max().unwrap_or(0) as usize;
        self.pairs = max_count.div_ceil(2);
        if self.pairs == 0 || self.pairs > MAX_PAIRS {
            return false;
        }
        self.precision = taps.precision;
        self.offsets.clear();
        self.table.clear();
        self.runs.clear();
        self.overrun = 0;
        let planes: &[Option<usize>] = match layout {
            Layout::Hwc => &[None],
            Layout::Chw => &[Some(0), Some(1), Some(2)],
        };
        for &plane in planes {
            let values = plane.map_or(out_w * 3, |_| out_w);
            self.runs.push((self.offsets.len(), values));
            for block in 0..values.div_ceil(BLOCK) {
                for acc in 0..4 {
                    let mut entry = Entry::new(self.pairs);
                    for half in 0..2 {
                        // Lane half h of accumulator a holds group 4h + a: after the two
                        // saturating packs the 32 bytes come out in order.
                        let group = block * BLOCK + (half * 4 + acc) * 4;
                        let sources = (0..4).map(|j| {
                            let v = group + j;
                            (v < values).then(|| {
                                let (x, ch) = plane.map_or((v / 3, v % 3), |c| (v, c));
                                (if flip { out_w - 1 - x } else { x }, ch)
                            })
                        });
                        let sources: [Option<(usize, usize)>; 4] = array4(sources);
                        if !entry.fill(half, &sources, taps, first) {
                            return false;
                        }
                    }
                    self.overrun = self
                        .overrun
                        .max(entry.reach(self.pairs).saturating_sub(row_bytes));
                    let [o0, o1] = entry.offsets.map(u32::try_from);
                    let (Ok(o0), Ok(o1)) = (o0, o1) else {
                        return false;
                    };
                    self.offsets.push([o0, o1]);
                    self.table.push(entry.ctrl);
                    self.table
                        .extend(entry.weights[..self.pairs].iter().map(|w| {
                            let mut bytes = [0u8; 32];
                            for (b, v) in bytes.chunks_exact_mut(2).zip(w) {
                                b.copy_from_slice(&v.to_le_bytes());
                            }
                            bytes
                        }));
                }
            }
        }
        true
    }
}

fn array4<T: Copy + Default>(mut it: impl Iterator<Item = T>) -> [T; 4] {
    std::array::from_fn(|_| it.next().unwrap_or_default())
}

/// One accumulator's table entry while it is built.
struct Entry {
    offsets: [usize; 2],
    ctrl: [u8; 32],
    weights: [[i16; 16]; MAX_PAIRS],
}

impl Entry {
    fn new(pairs: usize) -> Self {
        debug_assert!(pairs <= MAX_PAIRS);
        Entry {
            offsets: [0; 2],
            ctrl: [ZERO; 32],
            weights: [[0; 16]; MAX_PAIRS],
        }
    }

    /// Sets half `half` to compute the four values `sources` ((source pixel, channel), None
    /// for padding past the row's end); false if they do not fit one 16-byte window.
    fn fill(
        &mut self,
        half: usize,
        sources: &[Option<(usize, usize)>; 4],
        taps: &Taps,
        first: u32,
    ) -> bool {
        let start = |p: usize| (taps.starts[p] - first) as usize;
        let base = sources
            .iter()
            .flatten()
            .map(|&(p, _)| start(p))
            .min()
            .unwrap_or(0);
        self.offsets[half] = base * 3;
        for (j, source) in sources.iter().enumerate() {
            let Some((p, ch)) = *source else { continue };
            let rel = start(p) - base;
            // Bytes 3 * rel + ch (first tap) and 3 * rel + 3 + ch (second) must be in 0..16.
            if rel > 3 {
                return false;
            }
            let count = taps.counts[p] as usize;
            let coeffs = &taps.values[p * taps.window..][..count];
            for e in 0..2 {
                let lane = half * 16 + 4 * j + 2 * e;
                self.ctrl[lane] = (3 * rel + 3 * e + ch) as u8;
                for (k, w) in self.weights.iter_mut().enumerate() {
                    w[half * 8 + 2 * j + e] = coeffs.get(2 * k + e).copied().unwrap_or(0);
                }
            }
        }
        true
    }

    /// One past the last source byte (from a row's start) that the loads of `pairs` touch.
    fn reach(&self, pairs: usize) -> usize {
        self.offsets.iter().max().copied().unwrap_or(0) + 6 * (pairs - 1) + 16
    }
}

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

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    use super::{Plan, BLOCK};

    /// Runs the table over `out_h` rows of `temp` (`row_bytes` apart) into `dst` (`out_w` x
    /// `out_h`) in the plan's layout. False, with nothing read or written out of bounds, if
    /// the table would load past `temp` or the runs do not tile `dst` (a bug in the table).
    pub(super) fn rows(
        plan: &Plan,
        temp: &[u8],
        row_bytes: usize,
        (out_w, out_h): (usize, usize),
        dst: &mut [u8],
    ) -> bool {
        let reach = plan
            .offsets
            .iter()
            .flatten()
            .max()
            .map_or(0, |&o| o as usize);
        let reach = reach + 6 * plan.pairs.saturating_sub(1) + 16;
        let last_row = row_bytes * out_h.saturating_sub(1);
        let tiled = plan.runs.iter().map(|r| r.1).sum::<usize>() * out_h == dst.len();
        let entries = plan
            .runs
            .iter()
            .map(|r| r.1.div_ceil(BLOCK) * 4)
            .sum::<usize>();
        let sized = plan.offsets.len() == entries && plan.table.len() == entries * (1 + plan.pairs);
        if !super::avx2() || last_row + reach > temp.len() || !tiled || !sized || out_w == 0 {
            return false;
        }
        // SAFETY: AVX2 was detected on this CPU just above, and every load the table makes
        // from a row start (offset + 6 * (pairs - 1) + 16 bytes at most) stays inside `temp`
        // even from the last row's start (checked above).
        unsafe {
            match plan.pairs {
                1 => rows_avx2::<1>(plan, temp, row_bytes, out_h, dst),
                2 => rows_avx2::<2>(plan, temp, row_bytes, out_h, dst),
                3 => rows_avx2::<3>(plan, temp, row_bytes, out_h, dst),
                4 => rows_avx2::<4>(plan, temp, row_bytes, out_h, dst),
                _ => return false,
            }
        }
        true
    }

    /// # Safety
    /// AVX2 is available; `pairs == P`; from every row start `y * row_bytes` (y < `out_h`),
    /// every offset in `plan.offsets` plus `6 * (P - 1) + 16` stays inside `temp`.
    #[target_feature(enable = "avx2")]
    unsafe fn rows_avx2<const P: usize>(
        plan: &Plan,
        temp: &[u8],
        row_bytes: usize,
        out_h: usize,
        dst: &mut [u8],
    ) {
        let round = _mm256_set1_epi32(1 << (plan.precision.max(1) - 1));
        let shift = _mm_cvtsi32_si128(i32::from(plan.precision));
        // CHW: run c of row y is row y of plane c; the planes follow each other.
        let planes = plan.runs.len();
        for y in 0..out_h {
            // SAFETY: y < out_h, so the row start is inside `temp` (caller's contract).
            let src = unsafe { temp.as_ptr().add(y * row_bytes) };
            let mut acc = 0;
            for (run, &(_, values)) in plan.runs.iter().enumerate() {
                let at = if planes == 1 { y } else { run * out_h + y } * values;
                let Some(out) = dst.get_mut(at..at + values) else {
                    return;
                };
                let blocks = values.div_ceil(BLOCK);
                let table = &plan.table[acc * (1 + P)..][..blocks * 4 * (1 + P)];
                let offsets = &plan.offsets[acc..][..blocks * 4];
                // SAFETY: forwarded contract: the table's loads stay inside `temp`.
                unsafe { row::<P>(table, offsets, src, out, round, shift) };
                acc += blocks * 4;
            }
        }
    }

    /// One output run from one source row.
    ///
    /// # Safety
    /// AVX2 is available and every load of the table (offset + 6k, 16 bytes, k < P) from
    /// `src` is inside the source buffer.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn row<const P: usize>(
        table: &[[u8; 32]],
        offsets: &[[u32; 2]],
        src: *const u8,
        out: &mut [u8],
        round: __m256i,
        shift: __m128i,
    ) {
        let blocks = table.chunks_exact(4 * (1 + P)).zip(offsets.chunks_exact(4));
        for (chunk, (entries, offsets)) in out.chunks_mut(BLOCK).zip(blocks) {
            let mut acc = [round; 4];
            for ((sum, entry), &[o0, o1]) in
                acc.iter_mut().zip(entries.chunks_exact(1 + P)).zip(offsets)
            {
                let ctrl = load32(&entry[0]);
                for (k, weights) in entry[1..].iter().enumerate() {
                    // SAFETY: the caller guarantees these 16-byte loads are in bounds.
                    let (lo, hi) = unsafe {
                        let lo = _mm_loadu_si128(src.add(o0 as usize + 6 * k).cast());
                        (lo, _mm_loadu_si128(src.add(o1 as usize + 6 * k).cast()))
                    };
                    let pixels = _mm256_shuffle_epi8(_mm256_set_m128i(hi, lo), ctrl);
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pixels, load32(weights)));
                }
            }
            let [a, b, c, d] = acc;
            let (a, b) = (_mm256_sra_epi32(a, shift), _mm256_sra_epi32(b, shift));
            let (c, d) = (_mm256_sra_epi32(c, shift), _mm256_sra_epi32(d, shift));
            let bytes = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
            if let Ok(full) = <&mut [u8; BLOCK]>::try_from(&mut *chunk) {
                // SAFETY: `full` is 32 writable bytes; storeu has no alignment requirement.
                unsafe { _mm256_storeu_si256(full.as_mut_ptr().cast(), bytes) };
            } else {
                let mut tmp = [0u8; BLOCK];
                // SAFETY: as above, into `tmp`.
                unsafe { _mm256_storeu_si256(tmp.as_mut_ptr().cast(), bytes) };
                chunk.copy_from_slice(&tmp[..chunk.len()]);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load32(bytes: &[u8; 32]) -> __m256i {
        // SAFETY: reads exactly the 32 bytes of `bytes`; loadu has no alignment requirement.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod kernel {
    use super::Plan;

    /// Never called: [`super::avx2`] is false off x86-64.
    pub(super) fn rows(_: &Plan, _: &[u8], _: usize, _: (usize, usize), _: &mut [u8]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::{eval_crop, sample_rng, train_params};
    use crate::jpeg::CropRect;
    use crate::resize::store;
    use crate::testutil::synthetic_rgb;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The previous path: fir's whole resize, then the flip/layout store pass.
    fn reference(win: &Window<'_>, out: (u32, u32), flip: bool, layout: Layout) -> Vec<u8> {
        let src = ImageRef::new(win.width, win.height, win.pixels, PixelType::U8x3);
        let src = src.expect("reference source");
        let view = CroppedImage::new(&src, win.view_x, win.view_y, win.view_w, win.view_h);
        let view = view.expect("reference view");
        let c = win.crop;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(c.x, c.y, c.w, c.h);
        let mut tmp = Image::new(out.0, out.1, PixelType::U8x3);
        fir::Resizer::new()
            .resize(&view, &mut tmp, &options)
            .expect("reference resize");
        let mut dst = vec![0u8; tmp.buffer().len()];
        store(tmp.buffer(), out.0 as usize, flip, layout, &mut dst);
        dst
    }

    /// Runs the fast path; `None` when it declines.
    fn fast(
        r: &mut HorizontalResizer,
        win: &Window<'_>,
        out: (u32, u32),
        flip: bool,
        layout: Layout,
    ) -> Result<Option<Vec<u8>>, Error> {
        let mut dst = vec![0u8; out.0 as usize * out.1 as usize * 3];
        Ok(r.resize(win, out.0, out.1, flip, layout, &mut dst)?
            .then_some(dst))
    }

    /// A window as `decode_window` returns it: a view at (`x`, `y`) inside a wider decoded
    /// buffer, just covering `crop` (view coordinates).
    fn window(
        pixels: &[u8],
        width: u32,
        height: u32,
        crop: CropRect,
        (x, y): (u32, u32),
    ) -> Window<'_> {
        let view_w = ((crop.x + crop.w).ceil() as u32).min(width - x);
        let view_h = ((crop.y + crop.h).ceil() as u32).min(height - y);
        Window {
            pixels,
            width,
            height,
            view_x: x,
            view_y: y,
            view_w,
            view_h,
            crop,
            scale: crate::jpeg::ScalingFactor::ONE,
        }
    }

    #[test]
    fn train_crops_are_bit_identical_to_fir_then_store() -> TestResult {
        let (w, h) = (480u32, 629u32);
        let src = synthetic_rgb(w + 16, h, 5);
        let mut r = HorizontalResizer::new();
        let mut taken = 0;
        for size in [384u32, 224, 97] {
            for index in 0..24 {
                let p = train_params(w, h, 7, 0, index);
                let c = p.crop;
                let crop = CropRect::new(0.0, 0.0, c.w, c.h);
                let win = window(&src, w + 16, h, crop, (c.x as u32 + 16, c.y as u32));
                for layout in [Layout::Hwc, Layout::Chw] {
                    for flip in [false, true] {
                        let want = reference(&win, (size, size), flip, layout);
                        if let Some(got) = fast(&mut r, &win, (size, size), flip, layout)? {
                            assert!(got == want, "{size} {index} {layout:?} flip {flip}");
                            taken += 1;
                        }
                    }
                }
            }
        }
        if avx2() {
            // Upscales (most 384 crops) always fit the table.
            assert!(taken > 100, "fast path taken {taken} times");
        }
        Ok(())
    }

    #[test]
    fn fractional_crops_views_and_odd_sizes_are_bit_identical() -> TestResult {
        let (w, h) = (301u32, 257u32);
        let src = synthetic_rgb(w, h, 6);
        let mut rng = sample_rng(1, 2, 3);
        let mut r = HorizontalResizer::new();
        for case in 0..60 {
            let cw = rng.uniform(8.0, 250.0);
            let ch = rng.uniform(8.0, 200.0);
            let crop = CropRect::new(rng.uniform(0.0, 40.0), rng.uniform(0.0, 50.0), cw, ch);
            let corner = (rng.below(20) as u32, rng.below(6) as u32);
            let win = window(&src, w, h, crop, corner);
            let out = (1 + rng.below(200) as u32, 1 + rng.below(200) as u32);
            let flip = case % 2 == 0;
            let layout = if case % 3 == 0 {
                Layout::Chw
            } else {
                Layout::Hwc
            };
            let want = reference(&win, out, flip, layout);
            if let Some(got) = fast(&mut r, &win, out, flip, layout)? {
                assert!(got == want, "case {case}: {crop:?} -> {out:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn eval_crops_with_halo_are_bit_identical() -> TestResult {
        let (w, h) = (480u32, 629u32);
        let src = synthetic_rgb(w, h, 8);
        let mut r = HorizontalResizer::new();
        for size in [384u32, 224] {
            let c = eval_crop(w, h, size);
            // The eval view keeps a halo around the crop.
            let (x0, y0) = ((c.x - 3.0).floor(), (c.y - 3.0).floor());
            let crop = CropRect::new(c.x - x0, c.y - y0, c.w, c.h);
            let win = window(&src, w, h, crop, (x0 as u32, y0 as u32));
            let want = reference(&win, (size, size), false, Layout::Hwc);
            let got = fast(&mut r, &win, (size, size), false, Layout::Hwc)?;
            assert!(got.is_none_or(|g| g == want), "eval {size}");
        }
        Ok(())
    }

    #[test]
    fn strong_downscales_and_copies_decline() -> TestResult {
        let src = synthetic_rgb(400, 40, 9);
        let mut r = HorizontalResizer::new();
        // 400 -> 40 columns: 10x, more taps than the table takes.
        let win = Window::whole(&src, 400, 40, CropRect::full(400, 40));
        assert!(fast(&mut r, &win, (40, 40), false, Layout::Hwc)?.is_none());
        // Same width, integer left edge: fir does no horizontal pass.
        let win = Window::whole(&src, 400, 40, CropRect::new(0.0, 0.5, 400.0, 30.0));
        assert!(fast(&mut r, &win, (400, 20), true, Layout::Hwc)?.is_none());
        Ok(())
    }

    #[test]
    fn coefficients_sum_to_one_and_follow_the_crop() {
        let taps = Taps::new(100, 10.5, 60.5, 100).expect("taps");
        let unit = 1i32 << taps.precision;
        assert!(taps.precision >= 13, "precision {}", taps.precision);
        for p in 0..100 {
            let count = taps.counts[p] as usize;
            let sum: i32 = taps.values[p * taps.window..][..count]
                .iter()
                .map(|&v| i32::from(v))
                .sum();
            assert!((sum - unit).abs() <= 1, "pixel {p}: {sum}");
            assert!(count <= 2, "an upscale reads at most two pixels");
        }
        assert_eq!(taps.span(), (10, 61));
    }
}
