//! The per-call tables of the horizontal pass: fir's coefficients, and where every SIMD lane
//! finds its source bytes and weights.

use super::BLOCK;
use crate::resize::Layout;

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
pub(super) struct Taps {
    pub(super) precision: u8,
    /// First source pixel of each output pixel.
    pub(super) starts: Vec<u32>,
    /// Taps of each output pixel.
    pub(super) counts: Vec<u32>,
    /// `window` coefficients per output pixel; only the first `counts[i]` are used.
    pub(super) values: Vec<i16>,
    pub(super) window: usize,
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
    pub(super) fn new(in_size: u32, in0: f64, in1: f64, out_size: u32) -> Option<Taps> {
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
            // fir takes at most `window` of them (`take(bound.size)` on a window-long chunk).
            counts.push(end.saturating_sub(start).min(window as u32));
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
    pub(super) fn span(&self) -> (u32, u32) {
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
pub(super) struct Plan {
    pub(super) pairs: usize,
    pub(super) precision: u8,
    pub(super) offsets: Vec<[u32; 2]>,
    /// `1 + pairs` entries per accumulator: shuffle control, then weights.
    pub(super) table: Vec<[u8; 32]>,
    /// Output runs of a row: (first accumulator, values). HWC: one run of `3 * out_w`
    /// interleaved values; CHW: one run of `out_w` values per colour plane.
    pub(super) runs: Vec<(usize, usize)>,
    /// Bytes past a source row's end that the loads may touch.
    pub(super) overrun: usize,
}

impl Plan {
    /// Builds the table into `self` (buffers reused); false if a group of four values needs
    /// source bytes more than one 16-byte load apart or more than [`MAX_PAIRS`] tap pairs.
    pub(super) fn build(
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
