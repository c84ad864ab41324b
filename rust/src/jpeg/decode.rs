//! The cropping JPEG decoder.
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

use super::{ColorSpace, CropRect, JpegHeader, ScalingFactor, Subsampling, MAX_PIXELS};
use crate::error::Error;
use crate::tj::{self, Handle, Region, TjError};

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

    /// Frees the scratch buffer if it grew past `keep` bytes (a huge photo's window), so a
    /// long-lived per-thread decoder does not hold on to it.
    pub fn shrink_scratch(&mut self, keep: usize) {
        if self.scratch.capacity() > keep {
            self.scratch = Vec::new();
        }
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
    pub(crate) fn supported_header(&mut self, data: &[u8]) -> Result<JpegHeader, Error> {
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
