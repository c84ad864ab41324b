//! Crop and flip parameters with torchvision's semantics, from a deterministic per-sample RNG.
//!
//! The parameters are computed from the stored image size alone (before any pixel is
//! decoded), which is what lets the decoder read only the crop.
//!
//! Determinism: [`sample_rng`] derives the whole random stream of one sample from
//! `(seed, epoch, index)`, so the same triple gives the same crop and flip on any thread, in
//! any order, in any process. The generator is xoshiro256++ seeded through SplitMix64
//! (`rng.rs`); it is not torch's generator, so streams differ from torchvision's, but the
//! distributions are the same.

use crate::jpeg::CropRect;
use crate::rng::{mix64, Xoshiro256pp, GOLDEN};

/// Separates this stream from any other seeded stream the engine may add (e.g. shuffling).
const AUGMENT_STREAM: u64 = 0x6175_676d_656e_7421; // "augment!"

/// The random stream of one sample, for `(seed, epoch, index)`. Each component is folded in
/// through a full mixing round, so neighbouring indices or epochs give unrelated streams.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> Xoshiro256pp {
    let mut key = mix64(seed ^ AUGMENT_STREAM);
    key = mix64(key ^ epoch.wrapping_mul(GOLDEN));
    key = mix64(key ^ index.wrapping_mul(GOLDEN).rotate_left(32));
    Xoshiro256pp::from_key(key)
}

/// `torchvision.transforms.RandomResizedCrop`'s parameter sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    /// Range of the crop area as a fraction of the image area.
    pub scale: (f64, f64),
    /// Range of the crop aspect ratio (width / height), sampled log-uniformly.
    pub ratio: (f64, f64),
}

impl Default for RandomResizedCrop {
    /// torchvision's defaults: scale (0.08, 1.0), ratio (3/4, 4/3).
    fn default() -> Self {
        RandomResizedCrop {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

/// Python's `int(round(x))`: round half to even, then truncate.
fn py_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

impl RandomResizedCrop {
    /// `RandomResizedCrop.get_params`: up to 10 tries of (area, log-ratio); if none fits,
    /// the whole image centre-cropped to the nearest allowed aspect ratio. Returns an
    /// integer crop (x, y, w, h) inside `width` x `height`.
    pub fn get_params(&self, width: u32, height: u32, rng: &mut Xoshiro256pp) -> CropRect {
        let (w_img, h_img) = (i64::from(width), i64::from(height));
        let area = (w_img * h_img) as f64;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target_area = area * rng.uniform(self.scale.0, self.scale.1);
            let aspect = rng.uniform(log_lo, log_hi).exp();
            let w = py_round((target_area * aspect).sqrt());
            let h = py_round((target_area / aspect).sqrt());
            if 0 < w && w <= w_img && 0 < h && h <= h_img {
                // torch.randint(0, H - h + 1): inclusive of H - h.
                let y = rng.below((h_img - h + 1) as u64) as i64;
                let x = rng.below((w_img - w + 1) as u64) as i64;
                return int_rect(x, y, w, h);
            }
        }
        self.fallback(w_img, h_img)
    }

    /// The centre crop used when ten tries fail (very elongated images).
    pub fn fallback(&self, w_img: i64, h_img: i64) -> CropRect {
        let in_ratio = w_img as f64 / h_img as f64;
        let (min_ratio, max_ratio) = (
            self.ratio.0.min(self.ratio.1),
            self.ratio.0.max(self.ratio.1),
        );
        let (w, h) = if in_ratio < min_ratio {
            (w_img, py_round(w_img as f64 / min_ratio))
        } else if in_ratio > max_ratio {
            (py_round(h_img as f64 * max_ratio), h_img)
        } else {
            (w_img, h_img)
        };
        int_rect((w_img - w) / 2, (h_img - h) / 2, w, h)
    }
}

fn int_rect(x: i64, y: i64, w: i64, h: i64) -> CropRect {
    CropRect::new(x as f64, y as f64, w as f64, h as f64)
}

/// The augmentation of one training sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainParams {
    /// Integer crop in source pixels.
    pub crop: CropRect,
    /// Mirror left-right (torchvision `RandomHorizontalFlip(p=0.5)`).
    pub flip: bool,
}

/// The training augmentation: a RandomResizedCrop, then a horizontal flip with `flip_p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainAugment {
    pub crop: RandomResizedCrop,
    pub flip_p: f64,
}

impl Default for TrainAugment {
    /// torchvision's `RandomResizedCrop()` + `RandomHorizontalFlip()`.
    fn default() -> Self {
        TrainAugment {
            crop: RandomResizedCrop::default(),
            flip_p: 0.5,
        }
    }
}

impl TrainAugment {
    /// Crop then flip, drawn in that order from the stream of `(seed, epoch, index)`.
    pub fn params(
        &self,
        width: u32,
        height: u32,
        seed: u64,
        epoch: u64,
        index: u64,
    ) -> TrainParams {
        let mut rng = sample_rng(seed, epoch, index);
        let crop = self.crop.get_params(width, height, &mut rng);
        let flip = rng.next_f64() < self.flip_p;
        TrainParams { crop, flip }
    }
}

/// RandomResizedCrop (torchvision defaults) then a horizontal flip with p = 0.5, drawn in
/// that order from the stream of `(seed, epoch, index)`.
pub fn train_params(width: u32, height: u32, seed: u64, epoch: u64, index: u64) -> TrainParams {
    TrainAugment::default().params(width, height, seed, epoch, index)
}

/// The share of the resized short side that eval keeps (timm / torchvision convention).
pub const EVAL_CROP_PCT: f64 = 0.875;

/// `Resize(int(size / 0.875))` then `CenterCrop(size)`, expressed as the (fractional) crop of
/// the *source* image that ends up in the output, so eval also decodes only that part.
pub fn eval_crop(width: u32, height: u32, size: u32) -> CropRect {
    let short_target = (f64::from(size) / EVAL_CROP_PCT) as i64;
    let (w, h) = (i64::from(width), i64::from(height));
    // torchvision's _compute_resized_output_size: the long side is truncated, not rounded.
    let (new_w, new_h) = if w <= h {
        (short_target, short_target * h / w)
    } else {
        (short_target * w / h, short_target)
    };
    let size_i = i64::from(size);
    // CenterCrop: int(round((H - h) / 2.0)), both sides.
    let top = py_round((new_h - size_i) as f64 / 2.0);
    let left = py_round((new_w - size_i) as f64 / 2.0);
    let (sx, sy) = (w as f64 / new_w as f64, h as f64 / new_h as f64);
    CropRect::new(
        left as f64 * sx,
        top as f64 * sy,
        size_i as f64 * sx,
        size_i as f64 * sy,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_triple_same_stream_and_neighbours_differ() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(sample_rng(1, 2, 3), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(sample_rng(1, 2, 3), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        for (s, e, i) in [(1, 2, 4), (1, 3, 3), (2, 2, 3), (0, 0, 0)] {
            assert_ne!(sample_rng(s, e, i).next_u64(), a[0]);
        }
    }

    #[test]
    fn the_sample_stream_and_params_are_pinned() {
        // Recorded before the generator moved to rng.rs (issue 12).
        assert_eq!(sample_rng(1, 2, 3).next_u64(), 0x34fa_cf3d_6840_b3de);
        let p = train_params(480, 629, 7, 3, 5);
        assert_eq!(
            (p.crop.x, p.crop.y, p.crop.w, p.crop.h),
            (24.0, 125.0, 282.0, 236.0)
        );
        assert!(!p.flip);
    }

    #[test]
    fn params_are_deterministic_across_threads() -> Result<(), Box<dyn std::error::Error>> {
        let expected: Vec<TrainParams> = (0..64).map(|i| train_params(480, 629, 7, 3, i)).collect();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..64)
                        .rev()
                        .map(|i| train_params(480, 629, 7, 3, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            let mut got = handle.join().map_err(|_| "thread panicked")?;
            got.reverse();
            assert_eq!(got, expected);
        }
        Ok(())
    }

    #[test]
    fn random_resized_crop_statistics() {
        let (w, h) = (480u32, 629u32);
        let area = f64::from(w * h);
        let (mut flips, mut fractions) = (0u32, Vec::new());
        for i in 0..20_000 {
            let p = train_params(w, h, 11, 0, i);
            let c = p.crop;
            assert_eq!(c.x.fract() + c.y.fract() + c.w.fract() + c.h.fract(), 0.0);
            assert!(c.x >= 0.0 && c.y >= 0.0 && c.w >= 1.0 && c.h >= 1.0);
            assert!(c.x + c.w <= f64::from(w) && c.y + c.h <= f64::from(h));
            let fraction = c.w * c.h / area;
            // Rounding w and h to integers moves the area a little past the nominal bounds.
            assert!(
                (0.075..=1.0).contains(&fraction),
                "area fraction {fraction}"
            );
            let aspect = c.w / c.h;
            assert!((0.74..=1.35).contains(&aspect), "aspect {aspect}");
            fractions.push(fraction);
            flips += u32::from(p.flip);
        }
        // Draws are uniform in area fraction but large ones often do not fit a 480-wide image
        // and are redrawn: simulating torchvision's get_params in Python (200k draws) gives a
        // mean of 0.439 for 480x629; 20k draws have a standard error of about 0.002.
        let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
        assert!((0.43..0.45).contains(&mean), "mean area fraction {mean}");
        assert!(fractions.iter().any(|&f| f < 0.1) && fractions.iter().any(|&f| f > 0.9));
        assert!((9_700..10_300).contains(&flips), "flips {flips}");
    }

    #[test]
    fn fallback_centre_crops_to_the_ratio_bounds() {
        let rrc = RandomResizedCrop::default();
        // 1000x10: no crop of area >= 8% with aspect <= 4/3 fits, so all 10 tries fail.
        let mut rng = sample_rng(5, 0, 0);
        let c = rrc.get_params(1000, 10, &mut rng);
        assert_eq!((c.x, c.y, c.w, c.h), (493.0, 0.0, 13.0, 10.0));
        // Too tall: width kept, height = round(w / (3/4)).
        let c = rrc.fallback(10, 1000);
        assert_eq!((c.x, c.y, c.w, c.h), (0.0, 493.0, 10.0, 13.0));
        // In range: the whole image.
        let c = rrc.fallback(100, 90);
        assert_eq!((c.x, c.y, c.w, c.h), (0.0, 0.0, 100.0, 90.0));
    }

    #[test]
    fn python_rounding_is_half_to_even() {
        assert_eq!(py_round(2.5), 2);
        assert_eq!(py_round(3.5), 4);
        assert_eq!(py_round(-0.5), 0);
        assert_eq!(py_round(2.4999), 2);
    }

    #[test]
    fn eval_crop_matches_resize_then_centre_crop() {
        // 480x629, size 384: short side -> 438, long -> int(438 * 629 / 480) = 573;
        // top = round((573 - 384) / 2) = round(94.5) = 94 (half to even), left = 27.
        let c = eval_crop(480, 629, 384);
        let (sx, sy) = (480.0 / 438.0, 629.0 / 573.0);
        assert!((c.x - 27.0 * sx).abs() < 1e-9 && (c.y - 94.0 * sy).abs() < 1e-9);
        assert!((c.w - 384.0 * sx).abs() < 1e-9 && (c.h - 384.0 * sy).abs() < 1e-9);
        assert!(c.x + c.w <= 480.0 && c.y + c.h <= 629.0);
        // Square image, 224: Resize(256) + CenterCrop(224) keeps the central 224/256.
        let c = eval_crop(512, 512, 224);
        assert_eq!((c.x, c.y, c.w, c.h), (32.0, 32.0, 448.0, 448.0));
    }

    #[test]
    fn a_milder_scale_keeps_more_of_the_image_and_flip_p_zero_never_flips() {
        let aug = TrainAugment {
            crop: RandomResizedCrop {
                scale: (0.5, 1.0),
                ratio: (3.0 / 4.0, 4.0 / 3.0),
            },
            flip_p: 0.0,
        };
        for index in 0..500 {
            let p = aug.params(480, 630, 3, 1, index);
            let area = p.crop.w * p.crop.h / (480.0 * 630.0);
            assert!(area >= 0.5 - 0.01, "area {area}");
            assert!(!p.flip);
        }
        // The default keeps torchvision's stream: same draws as before this option existed.
        assert_eq!(
            TrainAugment::default().params(480, 630, 1, 2, 3),
            train_params(480, 630, 1, 2, 3)
        );
    }
}
