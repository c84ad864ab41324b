//! PNG -> packed 8-bit RGB, for the flavours whose RGB Pillow's `convert("RGB")` defines
//! without arithmetic: 8-bit grey, grey + alpha, RGB, RGBA (alpha dropped, grey repeated)
//! and palettes of any depth. 16-bit and 1/2/4-bit grey (Pillow clips or rescales those)
//! are left to Pillow. Checksums (chunk CRCs, zlib's Adler-32) are verified, so the native
//! decoder never accepts a file that Pillow would refuse as damaged.

use std::io::Cursor;

use super::meta::PngHeader;
use crate::error::Error;
use crate::jpeg::MAX_PIXELS;

const GRAY: u8 = 0;
const RGB: u8 = 2;
const PALETTE: u8 = 3;
const GRAY_ALPHA: u8 = 4;
const RGBA: u8 = 6;

/// Whether [`decode`] takes a PNG with this header.
pub fn supported(header: &PngHeader) -> Result<(), Error> {
    let ok = match header.color_type {
        PALETTE => matches!(header.bit_depth, 1 | 2 | 4 | 8),
        GRAY | RGB | GRAY_ALPHA | RGBA => header.bit_depth == 8,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::UnsupportedImage {
            reason: format!(
                "PNG colour type {} at {} bits (left to Pillow)",
                header.color_type, header.bit_depth
            ),
        })
    }
}

fn corrupt(err: impl std::fmt::Display) -> Error {
    Error::CorruptPng {
        reason: err.to_string(),
    }
}

/// Decodes the first frame of `data` into `rgb` (packed RGB, resized to fit); returns its
/// `(width, height)`.
pub fn decode(data: &[u8], rgb: &mut Vec<u8>) -> Result<(u32, u32), Error> {
    // The caller checked the pixel count; this bounds the decoder's own buffers as well.
    let limits = png::Limits {
        bytes: usize::try_from(MAX_PIXELS * 8).unwrap_or(usize::MAX),
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(data), limits);
    decoder.set_transformations(png::Transformations::EXPAND);
    decoder.ignore_checksums(false);
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| corrupt("image too large for this machine"))?;
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return Err(corrupt("decoder did not expand to 8 bits"));
    }
    if color == png::ColorType::Rgb {
        // The AIHub photos: decode straight into the result, no conversion pass.
        rgb.resize(size, 0);
        let info = reader.next_frame(rgb).map_err(corrupt)?;
        rgb.truncate(info.width as usize * info.height as usize * 3);
        return Ok((info.width, info.height));
    }
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(corrupt)?;
    let channels = color.samples();
    let pixels = info.width as usize * info.height as usize;
    let data = buf
        .get(..pixels * channels)
        .ok_or_else(|| corrupt("frame shorter than its size"))?;
    rgb.clear();
    rgb.reserve(pixels * 3);
    match channels {
        4 => data
            .chunks_exact(4)
            .for_each(|p| rgb.extend_from_slice(&p[..3])),
        1 | 2 => data
            .chunks_exact(channels)
            .for_each(|p| rgb.extend_from_slice(&[p[0]; 3])),
        _ => return Err(corrupt("unexpected channel count")),
    }
    Ok((info.width, info.height))
}
