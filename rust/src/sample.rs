//! One training or eval sample from JPEG bytes to a filled batch slot, in one fused pass:
//! crop parameters from the header size, decode of only that crop (DCT-scaled when it is at
//! least twice the output), resize, flip, layout.

use crate::augment::{self, TrainAugment, TrainParams};
use crate::error::Error;
use crate::jpeg::{CropRect, JpegDecoder, ScalingFactor, Window};
use crate::resize::{Layout, Resizer};

/// Everything one worker thread needs to turn JPEG bytes into batch slots; reused across
/// images. `Send`, not `Sync`: one per thread.
pub struct SampleDecoder {
    pub decoder: JpegDecoder,
    pub resizer: Resizer,
    /// Full-image buffer of the full-decode baseline.
    full: Vec<u8>,
}

/// Source pixels beyond the crop edge that a bilinear antialias filter reaches when shrinking
/// `crop_w` source pixels to `out_w`: its support (1 output pixel) in source pixels, plus one
/// for the pixel the rounding may add.
fn filter_halo(crop_w: f64, out_w: u32) -> f64 {
    (crop_w / f64::from(out_w)).max(1.0).ceil() + 1.0
}

impl SampleDecoder {
    /// A decoder (powers-of-two DCT scaling, accurate IDCT and upsampling) and a resizer.
    pub fn new() -> Result<Self, Error> {
        Ok(SampleDecoder {
            decoder: JpegDecoder::new()?,
            resizer: Resizer::new(),
            full: Vec::new(),
        })
    }

    /// A training sample: RandomResizedCrop(`size`) + horizontal flip, with the parameters
    /// of `(seed, epoch, index)`, written into `dst` (`size * size * 3` bytes).
    pub fn load_train_sample(
        &mut self,
        jpeg: &[u8],
        size: u32,
        key: (u64, u64, u64),
        layout: Layout,
        dst: &mut [u8],
    ) -> Result<TrainParams, Error> {
        self.load_train_sample_with(jpeg, size, key, &TrainAugment::default(), layout, dst)
    }

    /// [`SampleDecoder::load_train_sample`] with a chosen augmentation (crop scale, flip).
    pub fn load_train_sample_with(
        &mut self,
        jpeg: &[u8],
        size: u32,
        (seed, epoch, index): (u64, u64, u64),
        augment: &TrainAugment,
        layout: Layout,
        dst: &mut [u8],
    ) -> Result<TrainParams, Error> {
        let header = self.decoder.header(jpeg)?;
        let params = augment.params(header.width, header.height, seed, epoch, index);
        self.load_crop(
            jpeg,
            params.crop,
            0.0,
            (size, size),
            params.flip,
            layout,
            dst,
        )?;
        Ok(params)
    }

    /// An eval sample: `Resize(int(size / 0.875))` then `CenterCrop(size)`, decoding only the
    /// source region that reaches the output. Returns that region.
    pub fn load_eval_sample(
        &mut self,
        jpeg: &[u8],
        size: u32,
        layout: Layout,
        dst: &mut [u8],
    ) -> Result<CropRect, Error> {
        let header = self.decoder.header(jpeg)?;
        let crop = augment::eval_crop(header.width, header.height, size);
        // Resize-then-crop lets border outputs see past the crop: keep that halo.
        let halo = filter_halo(crop.w.max(crop.h), size);
        self.load_crop(jpeg, crop, halo, (size, size), false, layout, dst)?;
        Ok(crop)
    }

    /// Explicit crop (source pixels) resized to `out` = (width, height), with `halo` source
    /// pixels of context kept around the crop for the filter (0: crop-then-resize).
    #[allow(clippy::too_many_arguments)]
    pub fn load_crop(
        &mut self,
        jpeg: &[u8],
        crop: CropRect,
        halo: f64,
        (out_w, out_h): (u32, u32),
        flip: bool,
        layout: Layout,
        dst: &mut [u8],
    ) -> Result<(), Error> {
        check_dst(dst, out_w, out_h)?;
        let window = self.decoder.decode_window(jpeg, crop, halo, out_w, out_h)?;
        self.resizer
            .resize_window(&window, out_w, out_h, flip, layout, dst)
    }

    /// The FFCV-style baseline: decode the whole image, then crop, resize and flip. Same
    /// parameters and output as [`SampleDecoder::load_train_sample`] up to DCT-scaling
    /// differences; used by benchmarks and tests.
    pub fn load_train_sample_full_decode(
        &mut self,
        jpeg: &[u8],
        size: u32,
        (seed, epoch, index): (u64, u64, u64),
        layout: Layout,
        dst: &mut [u8],
    ) -> Result<TrainParams, Error> {
        check_dst(dst, size, size)?;
        let (width, height) = self.decoder.decode_rgb_into(jpeg, &mut self.full)?;
        let params = augment::train_params(width, height, seed, epoch, index);
        let c = params.crop;
        // Train crops are integer: the view is exactly the crop.
        let window = Window {
            pixels: &self.full,
            width,
            height,
            view_x: c.x as u32,
            view_y: c.y as u32,
            view_w: c.w as u32,
            view_h: c.h as u32,
            crop: CropRect::new(0.0, 0.0, c.w, c.h),
            scale: ScalingFactor::ONE,
        };
        self.resizer
            .resize_window(&window, size, size, params.flip, layout, dst)?;
        Ok(params)
    }
}

fn check_dst(dst: &[u8], out_w: u32, out_h: u32) -> Result<(), Error> {
    let needed = out_w as u64 * out_h as u64 * 3;
    if out_w == 0 || out_h == 0 || dst.len() as u64 != needed {
        return Err(Error::invalid(format!(
            "output buffer has {} bytes; {out_w}x{out_h} RGB needs {needed}",
            dst.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jpeg::{JpegEncoder, Subsampling};
    use crate::testutil::{mae, synthetic_rgb};
    use fast_image_resize as fir;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn jpeg(width: u32, height: u32, sub: Subsampling) -> Result<Vec<u8>, Error> {
        let rgb = synthetic_rgb(width, height, 9);
        JpegEncoder::new()?.encode_rgb(&rgb, width, height, 90, sub)
    }

    #[test]
    fn train_sample_matches_full_decode_then_crop() -> TestResult {
        let mut s = SampleDecoder::new()?;
        let size = 384;
        // 480x629 never needs DCT scaling at 384; 1600x1280 often does (1/2). Measured
        // worst MAE: 0.004 (4:2:0), 0 (4:4:4, grey) unscaled; about 0.5 scaled.
        let all = [Subsampling::S420, Subsampling::S444, Subsampling::Gray];
        for (w, h, subs, bound) in [(480, 629, &all[..], 0.05), (1600, 1280, &all[..1], 1.0)] {
            for &sub in subs {
                let data = jpeg(w, h, sub)?;
                let mut fast = vec![0u8; size as usize * size as usize * 3];
                let mut base = fast.clone();
                let mut worst = 0.0f64;
                for index in 0..8 {
                    let key = (3, 1, index);
                    let p = s.load_train_sample(&data, size, key, Layout::Hwc, &mut fast)?;
                    let q =
                        s.load_train_sample_full_decode(&data, size, key, Layout::Hwc, &mut base)?;
                    assert_eq!(p, q);
                    worst = worst.max(mae(&fast, &base));
                }
                // Unscaled: differences only next to the decoded region's border (chroma
                // upsampling edge). Scaled: DCT-domain downscaling vs pixel-domain filter.
                assert!(worst < bound, "{w}x{h} {sub:?}: worst MAE {worst}");
            }
        }
        Ok(())
    }

    #[test]
    fn train_samples_are_deterministic_per_triple() -> TestResult {
        let data = jpeg(480, 629, Subsampling::S420)?;
        let (mut a, mut b) = (SampleDecoder::new()?, SampleDecoder::new()?);
        let n = 96 * 96 * 3;
        let (mut x, mut y) = (vec![0u8; n], vec![0u8; n]);
        let p = a.load_train_sample(&data, 96, (1, 2, 3), Layout::Chw, &mut x)?;
        // Another decoder, after other work, gives the same bytes.
        b.load_train_sample(&data, 96, (9, 9, 9), Layout::Chw, &mut y)?;
        let q = b.load_train_sample(&data, 96, (1, 2, 3), Layout::Chw, &mut y)?;
        assert_eq!((p, &x), (q, &y));
        let r = b.load_train_sample(&data, 96, (1, 3, 3), Layout::Chw, &mut y)?;
        assert_ne!(p, r, "another epoch draws another crop");
        Ok(())
    }

    #[test]
    fn eval_sample_matches_resize_then_centre_crop() -> TestResult {
        let (w, h, size) = (480u32, 629u32, 384u32);
        let data = jpeg(w, h, Subsampling::S420)?;
        let mut s = SampleDecoder::new()?;
        let mut out = vec![0u8; (size * size * 3) as usize];
        s.load_eval_sample(&data, size, Layout::Hwc, &mut out)?;
        // Reference: full decode, Resize(438) -> 438x573, CenterCrop(384) at (27, 94).
        let (full, _, _) = s.decoder.decode_rgb(&data)?;
        let src = fir::images::ImageRef::new(w, h, &full, fir::PixelType::U8x3)?;
        let mut resized = fir::images::Image::new(438, 573, fir::PixelType::U8x3);
        let options = fir::ResizeOptions::new()
            .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
        fir::Resizer::new().resize(&src, &mut resized, &options)?;
        let expected = crate::testutil::crop_rgb(resized.buffer(), 438, 27, 94, size, size);
        let err = mae(&out, &expected);
        assert!(err < 0.25, "eval MAE {err}");
        Ok(())
    }

    #[test]
    fn bad_slot_size_and_corrupt_data_are_errors() -> TestResult {
        let data = jpeg(64, 64, Subsampling::S420)?;
        let mut s = SampleDecoder::new()?;
        let mut small = vec![0u8; 10];
        let r = s.load_train_sample(&data, 32, (0, 0, 0), Layout::Hwc, &mut small);
        assert!(matches!(r, Err(Error::InvalidArgument { .. })));
        let mut out = vec![0u8; 32 * 32 * 3];
        let r = s.load_train_sample(
            &data[..data.len() / 3],
            32,
            (0, 0, 0),
            Layout::Hwc,
            &mut out,
        );
        assert!(matches!(r, Err(Error::CorruptJpeg { .. })), "{r:?}");
        let r = s.load_eval_sample(b"not a jpeg", 32, Layout::Hwc, &mut out);
        assert!(matches!(r, Err(Error::CorruptJpeg { .. })), "{r:?}");
        Ok(())
    }
}
