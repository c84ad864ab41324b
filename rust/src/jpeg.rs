//! JPEG decoding that reads only the pixels a crop needs, and the matching encoder.
//!
//! FFCV decodes every JPEG in full and then crops. [`JpegDecoder::decode_window`] instead
//! asks libjpeg-turbo (TurboJPEG 3) for a cropping region, so rows below the crop are never
//! entropy-decoded, rows above it are entropy-decoded but not transformed, and columns
//! outside it skip the IDCT, upsampling and colour conversion. When the crop is much larger
//! than the output, DCT scaling (1/2, 1/4, 1/8) shrinks it inside the IDCT for free.
//!
//! Warnings: libjpeg-turbo calls some damage a warning (e.g. "premature end of data segment")
//! and would fill the missing part with grey. Every JPEG the loader sees was written by our
//! own pack writer, so a warning means a damaged record: the decoder sets
//! `TJPARAM_STOPONWARNING` and reports it as [`Error::CorruptJpeg`], which the loader skips
//! and counts. (libjpeg prints the warning text to stderr before that; it cannot be muted
//! through the TurboJPEG API.)

use turbojpeg_sys as sys;

use crate::error::Error;
use crate::tj::{self, Handle, Region, TjError};

pub use crate::tj::ScalingFactor;

/// Refuse images with more pixels than this (a corrupt or hostile header could otherwise ask
/// for gigabytes of scratch memory); 100 MP is far above any PillSnap image.
pub const MAX_PIXELS: u64 = 100_000_000;

/// Chroma subsampling of a JPEG, as TurboJPEG classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subsampling {
    S444,
    S422,
    S420,
    Gray,
    S440,
    S411,
    S441,
    /// Sampling factors TurboJPEG cannot name; such images decode, but without cropping.
    Unknown,
}

impl Subsampling {
    fn from_tj(value: i32) -> Self {
        match value {
            0 => Subsampling::S444,
            1 => Subsampling::S422,
            2 => Subsampling::S420,
            3 => Subsampling::Gray,
            4 => Subsampling::S440,
            5 => Subsampling::S411,
            6 => Subsampling::S441,
            _ => Subsampling::Unknown,
        }
    }

    fn to_tj(self) -> Option<i32> {
        let value = match self {
            Subsampling::S444 => sys::TJSAMP_TJSAMP_444,
            Subsampling::S422 => sys::TJSAMP_TJSAMP_422,
            Subsampling::S420 => sys::TJSAMP_TJSAMP_420,
            Subsampling::Gray => sys::TJSAMP_TJSAMP_GRAY,
            Subsampling::S440 => sys::TJSAMP_TJSAMP_440,
            Subsampling::S411 => sys::TJSAMP_TJSAMP_411,
            Subsampling::S441 => sys::TJSAMP_TJSAMP_441,
            Subsampling::Unknown => return None,
        };
        Some(value)
    }

    /// The conventional name ("4:2:0", "gray", ...), as Python sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            Subsampling::S444 => "4:4:4",
            Subsampling::S422 => "4:2:2",
            Subsampling::S420 => "4:2:0",
            Subsampling::Gray => "gray",
            Subsampling::S440 => "4:4:0",
            Subsampling::S411 => "4:1:1",
            Subsampling::S441 => "4:4:1",
            Subsampling::Unknown => "unknown",
        }
    }
}

/// The colour space stored in a JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColorSpace {
    Rgb,
    YCbCr,
    Gray,
    Cmyk,
    Ycck,
}

impl ColorSpace {
    fn from_tj(value: i32) -> Option<Self> {
        let cs = u32::try_from(value).ok()?;
        Some(match cs {
            sys::TJCS_TJCS_RGB => ColorSpace::Rgb,
            sys::TJCS_TJCS_YCbCr => ColorSpace::YCbCr,
            sys::TJCS_TJCS_GRAY => ColorSpace::Gray,
            sys::TJCS_TJCS_CMYK => ColorSpace::Cmyk,
            sys::TJCS_TJCS_YCCK => ColorSpace::Ycck,
            _ => return None,
        })
    }
}

/// What [`JpegDecoder::header`] reads without decoding pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegHeader {
    pub width: u32,
    pub height: u32,
    pub subsampling: Subsampling,
    pub colorspace: ColorSpace,
    pub progressive: bool,
}

/// A rectangle in pixel coordinates; fractional so that eval crops and scaled windows keep
/// their exact geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropRect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl CropRect {
    /// A rectangle with top-left (`x`, `y`), width `w` and height `h`.
    pub fn new(x: f64, y: f64, w: f64, h: f64) -> Self {
        CropRect { x, y, w, h }
    }

    /// The whole `width` x `height` image.
    pub fn full(width: u32, height: u32) -> Self {
        CropRect::new(0.0, 0.0, f64::from(width), f64::from(height))
    }

    /// Checks that the rectangle is non-empty and lies inside a `width` x `height` image.
    pub fn check_inside(&self, width: u32, height: u32) -> Result<(), Error> {
        let fits = |start: f64, len: f64, dim: u32| {
            start.is_finite() && len.is_finite() && start >= 0.0 && len > 0.0
                // A little slack for float noise in derived eval crops.
                && start + len <= f64::from(dim) + 1e-6
        };
        if fits(self.x, self.w, width) && fits(self.y, self.h, height) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "crop x={} y={} w={} h={} is empty or outside the {width}x{height} image",
                self.x, self.y, self.w, self.h
            )))
        }
    }
}

/// A decoded, possibly DCT-scaled, region of a JPEG.
///
/// `pixels` holds `width` x `height` packed RGB pixels (what libjpeg-turbo decoded: the crop
/// rows, with columns extended left to an iMCU boundary). The *view* is the integer pixel
/// block that the requested crop (plus halo) touches, and `crop` is the requested crop in
/// view coordinates, fractional: resizing `crop` of the view reproduces the geometry of the
/// unscaled source crop exactly.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub pixels: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub view_x: u32,
    pub view_y: u32,
    pub view_w: u32,
    pub view_h: u32,
    pub crop: CropRect,
    /// The DCT scaling factor used; 1/1 means the window is at source resolution.
    pub scale: ScalingFactor,
}

impl<'a> Window<'a> {
    /// A whole packed-RGB image at source resolution, with `crop` to resize from it.
    pub fn whole(pixels: &'a [u8], width: u32, height: u32, crop: CropRect) -> Self {
        Window {
            pixels,
            width,
            height,
            view_x: 0,
            view_y: 0,
            view_w: width,
            view_h: height,
            crop,
            scale: ScalingFactor::ONE,
        }
    }
}

/// Which DCT scaling factors the decoder may use for a crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalePolicy {
    /// Never scale: always decode at full resolution.
    Off,
    /// 1/2, 1/4, 1/8: used only when the crop is at least twice the output size.
    PowersOfTwo,
    /// Every N/8 factor libjpeg-turbo offers (7/8, 3/4, ...).
    Eighths,
}

/// A per-thread JPEG decoder: owns one TurboJPEG instance and a scratch buffer, both reused
/// across images. `Send` but not `Sync`: give each worker thread its own.
pub struct JpegDecoder {
    handle: Handle,
    /// Usable scaling factors, smallest first (strongest reduction first).
    factors: Vec<ScalingFactor>,
    scratch: Vec<u8>,
}

fn corrupt(err: TjError) -> Error {
    Error::corrupt_jpeg(err.message)
}

impl JpegDecoder {
    /// A decoder using DCT scaling only by powers of two (see [`ScalePolicy`]).
    pub fn new() -> Result<Self, Error> {
        Self::with_policy(ScalePolicy::PowersOfTwo)
    }

    /// A decoder restricted to the scaling factors of `policy`.
    pub fn with_policy(policy: ScalePolicy) -> Result<Self, Error> {
        let mut handle = Handle::decompressor().map_err(|e| Error::internal(e.message))?;
        handle
            .set(sys::TJPARAM_TJPARAM_STOPONWARNING, 1)
            .map_err(|e| Error::internal(e.message))?;
        let mut factors: Vec<ScalingFactor> = tj::scaling_factors()
            .into_iter()
            .filter(|f| f.num <= f.denom)
            .filter(|f| match policy {
                ScalePolicy::Off => f.num == f.denom,
                ScalePolicy::PowersOfTwo => f.num == 1 && f.denom.is_power_of_two(),
                ScalePolicy::Eighths => true,
            })
            .collect();
        factors.sort_by(|a, b| a.as_f64().total_cmp(&b.as_f64()));
        if !factors.contains(&ScalingFactor::ONE) {
            factors.push(ScalingFactor::ONE);
        }
        Ok(JpegDecoder {
            handle,
            factors,
            scratch: Vec::new(),
        })
    }

    /// Reads the header of `data` without decoding pixels.
    pub fn header(&mut self, data: &[u8]) -> Result<JpegHeader, Error> {
        self.read_header(data).map(|(header, _)| header)
    }

    fn read_header(&mut self, data: &[u8]) -> Result<(JpegHeader, tj::RawHeader), Error> {
        let raw = self.handle.read_header(data).map_err(corrupt)?;
        let colorspace = ColorSpace::from_tj(raw.colorspace)
            .ok_or_else(|| Error::corrupt_jpeg("unknown colour space"))?;
        let width = u32::try_from(raw.width).map_err(|_| Error::corrupt_jpeg("bad width"))?;
        let height = u32::try_from(raw.height).map_err(|_| Error::corrupt_jpeg("bad height"))?;
        let header = JpegHeader {
            width,
            height,
            subsampling: Subsampling::from_tj(raw.subsamp),
            colorspace,
            progressive: raw.progressive,
        };
        Ok((header, raw))
    }

    /// Reads the header and refuses what the RGB decode paths cannot serve.
    fn supported_header(&mut self, data: &[u8]) -> Result<JpegHeader, Error> {
        let (header, raw) = self.read_header(data)?;
        if matches!(header.colorspace, ColorSpace::Cmyk | ColorSpace::Ycck) {
            return Err(Error::unsupported_jpeg(
                "CMYK/YCCK JPEGs are not supported (convert to RGB first)",
            ));
        }
        if raw.precision != 8 || raw.lossless {
            return Err(Error::unsupported_jpeg(format!(
                "only 8-bit lossy JPEGs are supported (precision {}, lossless {})",
                raw.precision, raw.lossless
            )));
        }
        if u64::from(header.width) * u64::from(header.height) > MAX_PIXELS {
            return Err(Error::unsupported_jpeg(format!(
                "{}x{} exceeds the limit of {MAX_PIXELS} pixels",
                header.width, header.height
            )));
        }
        Ok(header)
    }

    /// Decodes the whole image to packed RGB in `out` (resized to `width * height * 3`);
    /// returns `(width, height)`. This is the full-decode baseline and the path for callers
    /// that need every pixel.
    pub fn decode_rgb_into(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(u32, u32), Error> {
        let header = self.prepare_full(data)?;
        out.resize(header.width as usize * header.height as usize * 3, 0);
        self.handle.decompress_rgb(data, out).map_err(corrupt)
    }

    /// The tests' shorthand for [`JpegDecoder::decode_rgb_into`]: `(pixels, width, height)`.
    #[cfg(test)]
    pub fn decode_rgb(&mut self, data: &[u8]) -> Result<(Vec<u8>, u32, u32), Error> {
        let mut out = Vec::new();
        let (w, h) = self.decode_rgb_into(data, &mut out)?;
        Ok((out, w, h))
    }

    /// As [`JpegDecoder::decode_rgb_into`], into a caller's slice of exactly
    /// `width * height * 3` bytes (read the size with [`JpegDecoder::header`] first).
    pub fn decode_rgb_to(&mut self, data: &[u8], dst: &mut [u8]) -> Result<(u32, u32), Error> {
        let header = self.prepare_full(data)?;
        let needed = header.width as usize * header.height as usize * 3;
        if dst.len() != needed {
            return Err(Error::invalid(format!(
                "output buffer has {} bytes, {}x{}x3 = {needed} needed",
                dst.len(),
                header.width,
                header.height
            )));
        }
        self.handle.decompress_rgb(data, dst).map_err(corrupt)
    }

    /// Reads the header and sets up an unscaled, uncropped decode.
    fn prepare_full(&mut self, data: &[u8]) -> Result<JpegHeader, Error> {
        let header = self.supported_header(data)?;
        self.handle
            .set_scaling(ScalingFactor::ONE)
            .and_then(|()| self.handle.set_region(Region::default()))
            .map_err(|e| Error::internal(e.message))?;
        Ok(header)
    }

    /// The strongest reduction that keeps a `crop_w` x `crop_h` crop at least
    /// `target_w` x `target_h` after scaling (1/1 when the crop is already smaller).
    pub fn choose_scale(
        &self,
        crop_w: f64,
        crop_h: f64,
        target_w: u32,
        target_h: u32,
    ) -> ScalingFactor {
        self.factors
            .iter()
            .copied()
            .find(|f| {
                let s = f.as_f64();
                crop_w * s >= f64::from(target_w) && crop_h * s >= f64::from(target_h)
            })
            .unwrap_or(ScalingFactor::ONE)
    }

    /// Decodes only the region of `data` under `crop` (source pixels), DCT-scaled as far as
    /// `target_w` x `target_h` allows; see [`Window`] for what comes back. The view also
    /// keeps up to `halo` source pixels around the crop (clipped to the image), for
    /// resampling filters that should see past the crop edge (resize-then-centre-crop
    /// semantics); 0 keeps just the crop.
    pub fn decode_window(
        &mut self,
        data: &[u8],
        crop: CropRect,
        halo: f64,
        target_w: u32,
        target_h: u32,
    ) -> Result<Window<'_>, Error> {
        let header = self.supported_header(data)?;
        crop.check_inside(header.width, header.height)?;
        if target_w == 0 || target_h == 0 {
            return Err(Error::invalid("target size must be positive"));
        }
        let scale = self.choose_scale(crop.w, crop.h, target_w, target_h);
        let plan = WindowPlan::new(&header, crop, halo.max(0.0), scale);
        self.handle
            .set_scaling(scale)
            .map_err(|e| Error::internal(e.message))?;
        let (width, height, region_x) = self.decode_region(data, &plan)?;
        let needed = width as usize * height as usize * 3;
        Ok(Window {
            pixels: &self.scratch[..needed],
            width,
            height,
            view_x: plan.view.x - region_x,
            view_y: plan.view.y - plan.region_y,
            view_w: plan.view.w,
            view_h: plan.view.h,
            crop: plan.crop_in_view,
            scale,
        })
    }

    /// Decodes `plan.region` into the scratch buffer: `(width, height, left column)`.
    ///
    /// TurboJPEG checks the left edge against the iMCU width its subsampling class implies;
    /// libjpeg then aligns to the true sampling factors. For exotic files (e.g. 4:4:4 coded
    /// with 2x2 factors everywhere) the two disagree and the decode fails with a "mismatch";
    /// retrying from column 0 is always valid and only costs speed.
    fn decode_region(&mut self, data: &[u8], plan: &WindowPlan) -> Result<(u32, u32, u32), Error> {
        match self.decode_into_scratch(data, plan.region) {
            Ok((w, h)) => Ok((w, h, plan.region_x)),
            Err(err) if plan.region.x != 0 && !err.warning && err.message.contains("mismatch") => {
                let region = Region {
                    x: 0,
                    w: plan.region.x + plan.region.w,
                    ..plan.region
                };
                let (w, h) = self.decode_into_scratch(data, region).map_err(corrupt)?;
                Ok((w, h, 0))
            }
            Err(err) => Err(corrupt(err)),
        }
    }

    fn decode_into_scratch(&mut self, data: &[u8], region: Region) -> Result<(u32, u32), TjError> {
        self.handle.set_region(region)?;
        let (w, h) = self.handle.output_size()?;
        let needed = w as usize * h as usize * 3;
        if self.scratch.len() < needed {
            self.scratch.resize(needed, 0);
        }
        self.handle
            .decompress_rgb(data, &mut self.scratch[..needed])
    }
}

/// Where a crop lands in scaled coordinates and which region libjpeg-turbo must decode.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WindowPlan {
    /// Region handed to tj3SetCroppingRegion (zero: whole scaled image).
    region: Region,
    /// Top-left of the decoded buffer in scaled image coordinates.
    region_x: u32,
    region_y: u32,
    /// Integer pixel block touched by crop + halo, in scaled image coordinates.
    view: Region,
    /// The crop in view coordinates.
    crop_in_view: CropRect,
}

impl WindowPlan {
    fn new(header: &JpegHeader, crop: CropRect, halo: f64, scale: ScalingFactor) -> Self {
        let s = scale.as_f64();
        let (sw, sh) = (scale.scale(header.width), scale.scale(header.height));
        let (cx, cy, cw, ch) = (crop.x * s, crop.y * s, crop.w * s, crop.h * s);
        let span = |start: f64, len: f64, dim: u32| {
            let lo = ((start - halo * s).floor().max(0.0) as u32).min(dim.saturating_sub(1));
            let hi = ((start + len + halo * s).ceil() as u32).clamp(lo + 1, dim);
            (lo, hi)
        };
        let (vx0, vx1) = span(cx, cw, sw);
        let (vy0, vy1) = span(cy, ch, sh);
        let view = Region {
            x: vx0,
            y: vy0,
            w: vx1 - vx0,
            h: vy1 - vy0,
        };
        let crop_in_view = CropRect::new(cx - f64::from(vx0), cy - f64::from(vy0), cw, ch);
        // Columns: the left edge must sit on a scaled iMCU boundary. Unknown sampling
        // factors cannot be cropped at all, so decode the whole (scaled) image then.
        let mcu = tj_mcu_width(header.subsampling).map(|w| scale.scale(w));
        let (region, region_x, region_y) = match mcu {
            Some(mcu) if mcu > 0 => {
                let rx = vx0 / mcu * mcu;
                let region = Region {
                    x: rx,
                    y: vy0,
                    w: vx1 - rx,
                    h: vy1 - vy0,
                };
                let whole = rx == 0 && vy0 == 0 && vx1 == sw && vy1 == sh;
                (if whole { Region::default() } else { region }, rx, vy0)
            }
            _ => (Region::default(), 0, 0),
        };
        WindowPlan {
            region,
            region_x,
            region_y,
            view,
            crop_in_view,
        }
    }
}

fn tj_mcu_width(subsampling: Subsampling) -> Option<u32> {
    tj::mcu_width(subsampling.to_tj()?)
}

/// Options of [`JpegEncoder::encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// 1..=100.
    pub quality: u8,
    /// Chroma subsampling; [`Subsampling::Gray`] writes a one-channel JPEG.
    pub subsampling: Subsampling,
    pub progressive: bool,
}

/// A per-thread JPEG encoder (the pack writer's re-encoder).
pub struct JpegEncoder {
    handle: Handle,
}

impl JpegEncoder {
    /// A compressor instance for this thread.
    pub fn new() -> Result<Self, Error> {
        let handle = Handle::compressor().map_err(|e| Error::internal(e.message))?;
        Ok(JpegEncoder { handle })
    }

    /// Encodes packed RGB (`width` x `height`) as a baseline JPEG.
    pub fn encode_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        quality: u8,
        subsampling: Subsampling,
    ) -> Result<Vec<u8>, Error> {
        let options = EncodeOptions {
            quality,
            subsampling,
            progressive: false,
        };
        self.encode(rgb, width, height, &options)
    }

    /// Encodes packed RGB (`width` x `height`) with every option spelled out.
    pub fn encode(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        options: &EncodeOptions,
    ) -> Result<Vec<u8>, Error> {
        if !(1..=100).contains(&options.quality) {
            return Err(Error::invalid(format!(
                "JPEG quality must be 1..=100, got {}",
                options.quality
            )));
        }
        let subsamp = options
            .subsampling
            .to_tj()
            .ok_or_else(|| Error::invalid("cannot encode with unknown subsampling"))?;
        let expected = width as usize * height as usize * 3;
        if width == 0 || height == 0 || rgb.len() != expected {
            return Err(Error::invalid(format!(
                "RGB buffer of {} bytes does not match {width}x{height}x3 = {expected}",
                rgb.len()
            )));
        }
        let h = &mut self.handle;
        h.set(sys::TJPARAM_TJPARAM_QUALITY, i32::from(options.quality))
            .and_then(|()| h.set(sys::TJPARAM_TJPARAM_SUBSAMP, subsamp))
            .and_then(|()| {
                h.set(
                    sys::TJPARAM_TJPARAM_PROGRESSIVE,
                    i32::from(options.progressive),
                )
            })
            .map_err(|e| Error::invalid(e.message))?;
        let mut out = Vec::new();
        h.compress_rgb(rgb, width, height, &mut out)
            .map_err(|e| Error::internal(format!("JPEG encode failed: {}", e.message)))?;
        out.shrink_to_fit();
        Ok(out)
    }
}

#[cfg(test)]
impl JpegEncoder {
    /// A CMYK JPEG, only to check that the decoder refuses it.
    fn encode_cmyk(&mut self, cmyk: &[u8], width: u32, height: u32) -> Result<Vec<u8>, Error> {
        let h = &mut self.handle;
        h.set(sys::TJPARAM_TJPARAM_QUALITY, 90)
            .and_then(|()| h.set(sys::TJPARAM_TJPARAM_SUBSAMP, sys::TJSAMP_TJSAMP_444))
            .map_err(|e| Error::internal(e.message))?;
        let mut out = Vec::new();
        h.compress(cmyk, width, height, true, &mut out)
            .map_err(|e| Error::internal(e.message))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{crop_rgb, mae, synthetic_rgb};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const W: u32 = 480;
    const H: u32 = 629;

    fn encode(sub: Subsampling, progressive: bool) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let rgb = synthetic_rgb(W, H, 1);
        let options = EncodeOptions {
            quality: 92,
            subsampling: sub,
            progressive,
        };
        let jpeg = JpegEncoder::new()?.encode(&rgb, W, H, &options)?;
        Ok((rgb, jpeg))
    }

    const KINDS: [(Subsampling, bool); 5] = [
        (Subsampling::S420, false),
        (Subsampling::S422, false),
        (Subsampling::S444, false),
        (Subsampling::Gray, false),
        (Subsampling::S420, true),
    ];

    #[test]
    fn header_reports_what_was_encoded() -> TestResult {
        let mut dec = JpegDecoder::new()?;
        for (sub, progressive) in KINDS {
            let (_, jpeg) = encode(sub, progressive)?;
            let header = dec.header(&jpeg)?;
            assert_eq!((header.width, header.height), (W, H));
            assert_eq!(header.subsampling, sub);
            assert_eq!(header.progressive, progressive);
            let cs = if sub == Subsampling::Gray {
                ColorSpace::Gray
            } else {
                ColorSpace::YCbCr
            };
            assert_eq!(header.colorspace, cs);
        }
        Ok(())
    }

    #[test]
    fn full_decode_round_trips_every_kind() -> TestResult {
        let mut dec = JpegDecoder::new()?;
        for (sub, progressive) in KINDS {
            let (rgb, jpeg) = encode(sub, progressive)?;
            let (pixels, w, h) = dec.decode_rgb(&jpeg)?;
            assert_eq!((w, h), (W, H));
            if sub == Subsampling::Gray {
                // Grey comes back as RGB with the three channels equal.
                assert!(pixels.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
            } else {
                // Quality 92 on this content: a few levels of error on average.
                let err = mae(&pixels, &rgb);
                assert!(err < 4.0, "{sub:?} progressive={progressive}: MAE {err}");
            }
        }
        Ok(())
    }

    #[test]
    fn unscaled_crop_equals_full_decode_then_crop() -> TestResult {
        let mut dec = JpegDecoder::new()?;
        let crops = [
            (0, 0, W, H),
            (37, 101, 250, 300),
            (200, 0, 280, 17),
            (1, 500, 479, 129),
        ];
        for (sub, progressive) in KINDS {
            let (_, jpeg) = encode(sub, progressive)?;
            let (full, _, _) = dec.decode_rgb(&jpeg)?;
            for (x, y, w, h) in crops {
                let rect = CropRect::new(f64::from(x), f64::from(y), f64::from(w), f64::from(h));
                // A target as large as the crop rules out DCT scaling.
                let win = dec.decode_window(&jpeg, rect, 0.0, w, h)?;
                assert_eq!(win.scale, ScalingFactor::ONE);
                assert_eq!((win.view_w, win.view_h), (w, h));
                assert_eq!(
                    (win.crop.x, win.crop.y, win.crop.w, win.crop.h),
                    (0.0, 0.0, f64::from(w), f64::from(h))
                );
                let view = crop_rgb(win.pixels, win.width, win.view_x, win.view_y, w, h);
                let expected = crop_rgb(&full, W, x, y, w, h);
                // Fancy chroma upsampling sees an edge at the decoded region's border, so a
                // column or two next to it can differ slightly; everything else is identical.
                let err = mae(&view, &expected);
                assert!(
                    err < 0.5,
                    "{sub:?} {progressive} crop {x},{y},{w},{h}: MAE {err}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn scaling_factor_choice() -> TestResult {
        let dec = JpegDecoder::new()?;
        let one = ScalingFactor::ONE;
        let f = |num, denom| ScalingFactor { num, denom };
        assert_eq!(dec.choose_scale(480.0, 629.0, 384, 384), one);
        assert_eq!(dec.choose_scale(767.0, 900.0, 384, 384), one);
        assert_eq!(dec.choose_scale(768.0, 900.0, 384, 384), f(1, 2));
        assert_eq!(dec.choose_scale(1600.0, 1700.0, 384, 384), f(1, 4));
        assert_eq!(dec.choose_scale(4000.0, 3100.0, 384, 384), f(1, 8));
        assert_eq!(
            dec.choose_scale(100.0, 100.0, 384, 384),
            one,
            "upscaling stays 1/1"
        );
        let eighths = JpegDecoder::with_policy(ScalePolicy::Eighths)?;
        assert_eq!(eighths.choose_scale(480.0, 600.0, 384, 384), f(7, 8));
        assert_eq!(eighths.choose_scale(400.0, 400.0, 384, 384), one);
        let off = JpegDecoder::with_policy(ScalePolicy::Off)?;
        assert_eq!(off.choose_scale(4000.0, 4000.0, 384, 384), one);
        Ok(())
    }

    #[test]
    fn scaled_window_keeps_the_crop_geometry() -> TestResult {
        // A 1920x1600 image, crop 1000x900 at (301, 157) to 384: scaled by 1/2.
        let rgb = synthetic_rgb(1920, 1600, 3);
        let jpeg = JpegEncoder::new()?.encode_rgb(&rgb, 1920, 1600, 90, Subsampling::S420)?;
        let mut dec = JpegDecoder::new()?;
        let crop = CropRect::new(301.0, 157.0, 1000.0, 900.0);
        let win = dec.decode_window(&jpeg, crop, 0.0, 384, 384)?;
        assert_eq!(win.scale, ScalingFactor { num: 1, denom: 2 });
        // Scaled crop: x 150.5, y 78.5, 500 x 450; view = pixels 150..651 x 78..529.
        assert_eq!((win.view_w, win.view_h), (501, 451));
        assert_eq!(
            (win.crop.x, win.crop.y, win.crop.w, win.crop.h),
            (0.5, 0.5, 500.0, 450.0)
        );
        // Decoded columns start at a scaled iMCU boundary (16 px * 1/2 = 8).
        assert_eq!((150 - win.view_x) % 8, 0);
        assert_eq!(win.view_y, 0);
        assert_eq!(win.height, 451);
        Ok(())
    }

    #[test]
    fn cmyk_is_unsupported() -> TestResult {
        let cmyk: Vec<u8> = (0..32 * 16 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let jpeg = JpegEncoder::new()?.encode_cmyk(&cmyk, 32, 16)?;
        let mut dec = JpegDecoder::new()?;
        assert_eq!(dec.header(&jpeg)?.colorspace, ColorSpace::Ycck);
        for result in [
            dec.decode_rgb(&jpeg).map(|_| ()),
            dec.decode_window(&jpeg, CropRect::full(32, 16), 0.0, 8, 8)
                .map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(Error::UnsupportedJpeg { .. })),
                "{result:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn corrupt_and_truncated_data_are_errors_not_panics() -> TestResult {
        let (_, jpeg) = encode(Subsampling::S420, false)?;
        let (_, progressive) = encode(Subsampling::S420, true)?;
        let mut flipped = jpeg.clone();
        let mid = flipped.len() / 2;
        for b in &mut flipped[mid..mid + 64] {
            *b ^= 0x5A;
        }
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("not a jpeg", b"hello, world".to_vec()),
            ("SOI+EOI only", vec![0xFF, 0xD8, 0xFF, 0xD9]),
            ("header only", jpeg[..600].to_vec()),
            ("truncated half", jpeg[..jpeg.len() / 2].to_vec()),
            (
                "truncated progressive",
                progressive[..progressive.len() * 2 / 3].to_vec(),
            ),
            ("bit flips", flipped),
        ];
        let mut dec = JpegDecoder::new()?;
        // Rows below a crop are never read, so damage there goes unseen (by design): only a
        // crop that reaches the last row must see every defect.
        let tall = CropRect::new(10.0, 20.0, 300.0, f64::from(H - 20));
        let small = CropRect::new(10.0, 20.0, 100.0, 50.0);
        for (name, data) in cases {
            let full = dec.decode_rgb(&data);
            assert!(
                matches!(full, Err(Error::CorruptJpeg { .. })),
                "{name}: {full:?}"
            );
            let win = dec.decode_window(&data, tall, 0.0, 224, 224).map(|_| ());
            assert!(
                matches!(win, Err(Error::CorruptJpeg { .. })),
                "{name}: {win:?}"
            );
            let _ = dec.decode_window(&data, small, 0.0, 64, 64).map(|_| ());
        }
        // The decoder is still usable after errors.
        assert_eq!(dec.decode_rgb(&jpeg)?.1, W);
        Ok(())
    }

    #[test]
    fn crop_outside_image_is_invalid_argument() -> TestResult {
        let (_, jpeg) = encode(Subsampling::S420, false)?;
        let mut dec = JpegDecoder::new()?;
        for crop in [
            CropRect::new(400.0, 0.0, 100.0, 10.0),
            CropRect::new(0.0, 0.0, 0.0, 10.0),
            CropRect::new(-1.0, 0.0, 10.0, 10.0),
            CropRect::new(0.0, 0.0, f64::NAN, 10.0),
        ] {
            let result = dec.decode_window(&jpeg, crop, 0.0, 10, 10).map(|_| ());
            assert!(
                matches!(result, Err(Error::InvalidArgument { .. })),
                "{crop:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn encoder_rejects_bad_arguments() -> TestResult {
        let mut enc = JpegEncoder::new()?;
        let rgb = vec![0u8; 8 * 8 * 3];
        assert!(enc.encode_rgb(&rgb, 8, 8, 0, Subsampling::S420).is_err());
        assert!(enc.encode_rgb(&rgb, 8, 9, 90, Subsampling::S420).is_err());
        assert!(enc
            .encode_rgb(&rgb, 8, 8, 90, Subsampling::Unknown)
            .is_err());
        assert!(enc.encode_rgb(&rgb, 8, 8, 90, Subsampling::S444).is_ok());
        Ok(())
    }
}
