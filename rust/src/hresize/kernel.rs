//! The AVX2 kernel of the horizontal pass (x86-64 only): runs a [`Plan`] over the rows of the
//! vertical pass's output. Its `unsafe` is the SIMD loads from raw pointers: [`rows`] checks
//! their bounds once per call instead of once per load (a first version with a checked load
//! per tap pair, a run-time tap count and a copy per block took 2.5 times as long).

use std::arch::x86_64::*;

use super::plan::Plan;
use super::BLOCK;

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
