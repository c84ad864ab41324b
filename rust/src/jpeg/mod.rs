//! JPEG decoding that reads only the pixels a crop needs, and the matching encoder, over
//! libjpeg-turbo's TurboJPEG 3 API (`tj.rs`).
//!
//! This file holds what both directions share: the header, subsampling and colour-space
//! types and the crop rectangle. `decode.rs` is the cropping, DCT-scaling decoder;
//! `encode.rs` the encoder the pack writer and the tests use.

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use turbojpeg_sys as sys;

use crate::error::Error;

pub use crate::tj::ScalingFactor;
pub use decode::{JpegDecoder, ScalePolicy, Window};
pub use encode::{EncodeOptions, JpegEncoder};

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
    pub(crate) fn from_tj(value: i32) -> Self {
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

    pub(crate) fn to_tj(self) -> Option<i32> {
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
    pub(crate) fn from_tj(value: i32) -> Option<Self> {
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
