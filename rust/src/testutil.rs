//! Helpers shared by the unit tests: synthetic photos and error metrics.

use crate::augment::sample_rng;
use crate::prefetch::LoaderConfig;

/// A deterministic "natural-looking" RGB image: smooth gradients, a few filled discs and
/// rectangles with soft edges, and mild noise, so JPEG has both flat areas and detail.
pub fn synthetic_rgb(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut rng = sample_rng(seed, 0xFEED, 0);
    let discs: Vec<[f64; 6]> = (0..6)
        .map(|_| {
            let r = rng.uniform(0.05, 0.25) * f64::from(width.min(height));
            [
                rng.uniform(0.0, f64::from(width)),
                rng.uniform(0.0, f64::from(height)),
                r,
                rng.uniform(0.0, 255.0),
                rng.uniform(0.0, 255.0),
                rng.uniform(0.0, 255.0),
            ]
        })
        .collect();
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (f64::from(x), f64::from(y));
            let mut px = [
                255.0 * fx / f64::from(width),
                255.0 * fy / f64::from(height),
                128.0 + 100.0 * (fx * 0.05).sin() * (fy * 0.03).cos(),
            ];
            for d in &discs {
                let dist = ((fx - d[0]).powi(2) + (fy - d[1]).powi(2)).sqrt();
                let alpha = (d[2] - dist).clamp(0.0, 2.0) / 2.0;
                for c in 0..3 {
                    px[c] = px[c] * (1.0 - alpha) + d[3 + c] * alpha;
                }
            }
            let noise = rng.uniform(-6.0, 6.0);
            out.extend(px.iter().map(|v| (v + noise).clamp(0.0, 255.0) as u8));
        }
    }
    out
}

/// Mean absolute difference of two equally long byte buffers.
pub fn mae(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let total: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.len().max(1) as f64
}

/// Copies the `w` x `h` block at (x, y) out of a packed RGB image `width` pixels wide.
pub fn crop_rgb(src: &[u8], width: u32, x: u32, y: u32, w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for row in y..y + h {
        let start = (row as usize * width as usize + x as usize) * 3;
        out.extend_from_slice(&src[start..start + w as usize * 3]);
    }
    out
}

/// A loader config for unit tests: `batch` samples, `threads` workers, `ring` slots of 8
/// bytes, shuffled with seed 7, one process.
pub fn loader_config(batch: usize, threads: usize, ring: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: batch,
        threads,
        ring,
        sample_bytes: 8,
        seed: 7,
        shuffle: true,
        drop_last: false,
        rank: 0,
        world_size: 1,
        max_substitutes: 3,
    }
}
