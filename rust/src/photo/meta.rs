//! What a photo's container says before any pixel is decoded: JPEG or PNG, the PNG header,
//! and the EXIF orientation, read the way Pillow's `ImageOps.exif_transpose` reads it.
//!
//! Pillow finds the orientation in the EXIF block (JPEG APP1 `Exif`, PNG `eXIf`) and, only
//! when that has none, in XMP (`tiff:Orientation`) or in an ImageMagick "Raw profile type
//! exif" text chunk. This module reads the EXIF block; for anything it does not read (an XMP
//! or text-chunk orientation, an odd or damaged EXIF directory, an animated PNG) it returns
//! [`Error::UnsupportedImage`], so that the caller leaves the photo to Pillow and the answer
//! stays what Pillow gives.

use super::orient::Orientation;
use crate::error::Error;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const EXIF_ORIENTATION: u16 = 0x0112;

/// The container formats the native path decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

impl Format {
    /// "JPEG" / "PNG", as Pillow names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
        }
    }
}

/// A PNG's IHDR fields that decide whether the native decoder takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PngHeader {
    pub width: u32,
    pub height: u32,
    pub bit_depth: u8,
    pub color_type: u8,
}

/// What [`read`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub format: Format,
    pub orientation: Orientation,
    /// PNG only; a JPEG's size comes from libjpeg-turbo's header reader.
    pub png: Option<PngHeader>,
}

fn unsupported(reason: impl Into<String>) -> Error {
    Error::UnsupportedImage {
        reason: reason.into(),
    }
}

/// The container of `data`: its format, PNG header and EXIF orientation.
pub fn read(data: &[u8]) -> Result<Meta, Error> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let orientation = jpeg_orientation(data)?;
        return Ok(Meta {
            format: Format::Jpeg,
            orientation,
            png: None,
        });
    }
    if data.starts_with(PNG_SIGNATURE) {
        let (png, orientation) = png_meta(data)?;
        return Ok(Meta {
            format: Format::Png,
            orientation,
            png: Some(png),
        });
    }
    Err(unsupported("not a JPEG or PNG"))
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// Walks the JPEG's marker segments up to the first scan: the first APP1 `Exif` block
/// decides; an XMP `tiff:Orientation` is left to Pillow.
fn jpeg_orientation(data: &[u8]) -> Result<Orientation, Error> {
    let (mut exif, mut xmp_orientation) = (None, false);
    let mut i = 2;
    loop {
        match data.get(i..i + 2) {
            Some([0xFF, 0xFF]) => i += 1, // fill byte
            Some([0xFF, 0xDA | 0xD9]) => break,
            Some([0xFF, 0x01 | 0xD0..=0xD7]) => i += 2, // markers without a length
            Some([0xFF, marker]) => {
                let marker = *marker;
                let length = be16(data, i + 2).map(usize::from).filter(|n| *n >= 2);
                let body = length.and_then(|n| data.get(i + 4..i + 2 + n));
                let body = body.ok_or_else(|| unsupported("JPEG header segment cut short"))?;
                if marker == 0xE1 && exif.is_none() && body.starts_with(b"Exif\0\0") {
                    exif = Some(&body[6..]);
                } else if marker == 0xE1 && body.starts_with(b"http://ns.adobe.com/xap/1.0/\0") {
                    xmp_orientation |= contains(body, b"tiff:Orientation");
                }
                i += 2 + body.len() + 2;
            }
            _ => return Err(unsupported("JPEG markers the native reader does not walk")),
        }
    }
    let value = match exif {
        Some(tiff) => tiff_orientation(tiff)?,
        None => None,
    };
    if value.is_none() && xmp_orientation {
        return Err(unsupported("orientation in XMP only"));
    }
    Ok(Orientation::from_exif(value.unwrap_or(1)))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The orientation tag of IFD0 in a TIFF-structured EXIF block (`None`: no tag). A layout
/// Pillow might read differently (a tag of another type or count, a directory outside the
/// block) is an error, so the photo goes to Pillow.
fn tiff_orientation(tiff: &[u8]) -> Result<Option<u32>, Error> {
    let mut tiff = tiff;
    while let Some(rest) = tiff.strip_prefix(b"Exif\0\0") {
        tiff = rest; // Pillow strips repeated prefixes too
    }
    if tiff.is_empty() {
        return Ok(None);
    }
    let little = match tiff.get(..4) {
        Some(b"II*\0") => true,
        Some(b"MM\0*") => false,
        _ => return Err(unsupported("EXIF block is not TIFF-structured")),
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let damaged = || unsupported("EXIF directory outside its block");
    let ifd = u32_at(4).ok_or_else(damaged)? as usize;
    let count = usize::from(u16_at(ifd).ok_or_else(damaged)?);
    if tiff.len() < ifd + 2 + count * 12 {
        return Err(damaged());
    }
    let mut found = None;
    for entry in (0..count).map(|k| ifd + 2 + k * 12) {
        if u16_at(entry) != Some(EXIF_ORIENTATION) {
            continue;
        }
        let (kind, n) = (u16_at(entry + 2), u32_at(entry + 4));
        found = Some(match (kind, n) {
            (Some(3), Some(1)) => u32::from(u16_at(entry + 8).ok_or_else(damaged)?),
            (Some(4), Some(1)) => u32_at(entry + 8).ok_or_else(damaged)?,
            _ => return Err(unsupported("EXIF orientation of an unusual type")),
        });
    }
    Ok(found)
}

/// Walks a PNG's chunks (lengths only; pixel data is skipped): IHDR, and the orientation of
/// its one `eXIf` chunk before the pixel data.
fn png_meta(data: &[u8]) -> Result<(PngHeader, Orientation), Error> {
    let corrupt = |reason: &str| Error::CorruptPng {
        reason: reason.to_owned(),
    };
    let ihdr = match (be32(data, 8), data.get(12..16)) {
        (Some(13), Some(b"IHDR")) => data.get(16..29).ok_or_else(|| corrupt("IHDR cut short"))?,
        _ => return Err(corrupt("the first chunk is not IHDR")),
    };
    let header = PngHeader {
        width: be32(ihdr, 0).unwrap_or(0),
        height: be32(ihdr, 4).unwrap_or(0),
        bit_depth: ihdr[8],
        color_type: ihdr[9],
    };
    let (mut exif, mut exifs, mut seen_data, mut text_orientation) = (None, 0, false, false);
    let mut at = 8;
    // A truncated file ends the walk; decoding its pixels reports it.
    while let (Some(length), Some(kind)) = (be32(data, at), data.get(at + 4..at + 8)) {
        let body = data.get(at + 8..(at + 8).saturating_add(length as usize));
        match (kind, body) {
            (b"IDAT", _) => seen_data = true,
            (b"IEND", _) => break,
            (b"acTL", _) => return Err(unsupported("an animated PNG")),
            (b"eXIf", Some(body)) => {
                exifs += 1;
                if !seen_data {
                    exif = Some(body);
                }
            }
            (b"tEXt" | b"zTXt" | b"iTXt", Some(body)) => {
                text_orientation |= text_may_orient(kind, body);
            }
            _ => {}
        }
        at = at.saturating_add(12).saturating_add(length as usize);
    }
    if exifs > usize::from(exif.is_some()) {
        return Err(unsupported(
            "several eXIf chunks, or one after the pixel data",
        ));
    }
    let value = match exif {
        Some(tiff) => tiff_orientation(tiff)?,
        None => None,
    };
    if value.is_none() && text_orientation {
        return Err(unsupported("orientation in a PNG text chunk"));
    }
    Ok((header, Orientation::from_exif(value.unwrap_or(1))))
}

/// Whether a text chunk may hold an orientation Pillow would apply: an ImageMagick EXIF
/// profile, or XMP with `tiff:Orientation` (or compressed, so unknown).
fn text_may_orient(kind: &[u8], body: &[u8]) -> bool {
    let Some(nul) = body.iter().position(|b| *b == 0) else {
        return false;
    };
    match &body[..nul] {
        b"Raw profile type exif" => true,
        b"XML:com.adobe.xmp" => {
            kind != b"iTXt"
                || body.get(nul + 1) != Some(&0)
                || contains(&body[nul..], b"tiff:Orientation")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff(little: bool, entries: &[(u16, u16, u32, u32)]) -> Vec<u8> {
        let mut out = if little {
            b"II*\0".to_vec()
        } else {
            b"MM\0*".to_vec()
        };
        let put16 = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let put32 = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        out.extend(put32(8));
        out.extend(put16(entries.len() as u16));
        for &(tag, kind, count, value) in entries {
            out.extend(put16(tag));
            out.extend(put16(kind));
            out.extend(put32(count));
            if kind == 3 {
                out.extend(put16(value as u16));
                out.extend([0, 0]);
            } else {
                out.extend(put32(value));
            }
        }
        out.extend([0, 0, 0, 0]);
        out
    }

    #[test]
    fn orientation_is_read_in_both_byte_orders_and_types() {
        for little in [true, false] {
            let t = tiff(little, &[(0x010F, 2, 4, 0), (EXIF_ORIENTATION, 3, 1, 6)]);
            assert_eq!(tiff_orientation(&t).ok(), Some(Some(6)));
            let t = tiff(little, &[(EXIF_ORIENTATION, 4, 1, 8)]);
            assert_eq!(tiff_orientation(&t).ok(), Some(Some(8)));
            assert_eq!(tiff_orientation(&tiff(little, &[])).ok(), Some(None));
        }
        assert_eq!(tiff_orientation(b"").ok(), Some(None));
    }

    #[test]
    fn odd_exif_is_left_to_pillow() {
        let odd = tiff(true, &[(EXIF_ORIENTATION, 3, 2, 6)]);
        let cut = &tiff(true, &[(EXIF_ORIENTATION, 3, 1, 6)])[..14];
        for bad in [&odd[..], cut, b"XX*\0\x08\0\0\0"] {
            assert!(matches!(
                tiff_orientation(bad),
                Err(Error::UnsupportedImage { .. })
            ));
        }
    }

    #[test]
    fn jpeg_walk_finds_the_first_exif_block_before_the_scan() {
        let app1 = |body: &[u8]| {
            let mut seg = vec![0xFF, 0xE1];
            seg.extend(((body.len() + 2) as u16).to_be_bytes());
            seg.extend(body);
            seg
        };
        let exif = |v: u32| {
            [
                b"Exif\0\0".to_vec(),
                tiff(false, &[(EXIF_ORIENTATION, 3, 1, v)]),
            ]
            .concat()
        };
        let mut data = vec![0xFF, 0xD8];
        data.extend(app1(&exif(3)));
        data.extend(app1(&exif(6)));
        data.extend([0xFF, 0xDA, 0, 2, 0xFF, 0xD9]);
        assert_eq!(
            jpeg_orientation(&data).ok(),
            Some(Orientation::from_exif(3))
        );
        let mut xmp = vec![0xFF, 0xD8];
        xmp.extend(app1(
            b"http://ns.adobe.com/xap/1.0/\0<x tiff:Orientation=\"6\"/>",
        ));
        xmp.extend([0xFF, 0xDA, 0, 2]);
        assert!(matches!(
            jpeg_orientation(&xmp),
            Err(Error::UnsupportedImage { .. })
        ));
        assert!(jpeg_orientation(&[0xFF, 0xD8, 0xFF, 0xE1, 0x10]).is_err());
    }
}
