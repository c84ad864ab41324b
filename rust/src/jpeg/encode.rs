//! The JPEG encoder: the pack writer re-encodes shrunk photos with it, and the tests make
//! their inputs with it.

use turbojpeg_sys as sys;

use super::Subsampling;
use crate::error::Error;
use crate::tj::Handle;

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
    pub(super) fn encode_cmyk(
        &mut self,
        cmyk: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Vec<u8>, Error> {
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
