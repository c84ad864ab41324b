//! Pack input preparation: a source photo (PNG or JPEG) -> one pack record payload.
//!
//! Decode the whole source (PNG through the `png` crate, JPEG through libjpeg-turbo), take
//! the requested crop (a pill with its margin, or the whole photo), shrink it so its short
//! side is at most `short_side` (never enlarged: small pill crops keep their pixels, the
//! loader's RandomResizedCrop scales them anyway), and store it as JPEG or raw RGB. Boxes
//! follow the crop and the scale. Many items run in parallel, one `Preparer` per thread.

use std::cell::RefCell;
use std::fs;
use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::Error;
use crate::jpeg::{CropRect, JpegDecoder, JpegEncoder, Subsampling, Window};
use crate::pack::{BoxLabel, Storage};
use crate::resize::{Layout, Resizer};
use crate::threads;

/// One record to make.
#[derive(Debug, Clone)]
pub struct SourceItem {
    pub path: PathBuf,
    /// `(x, y, w, h)` in source pixels; `None`: the whole photo.
    pub crop: Option<[f64; 4]>,
    /// Boxes in source pixels relative to the crop's origin (the caller subtracted it).
    pub boxes: Vec<BoxLabel>,
}

/// A prepared record: payload bytes, the stored size and the boxes in stored pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub payload: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub boxes: Vec<BoxLabel>,
}

#[derive(Debug, Clone, Copy)]
pub struct PrepareOptions {
    pub short_side: u32,
    pub quality: u8,
    pub storage: Storage,
}

/// Per-thread state: decoders, encoder, resizer and their buffers, reused across items.
pub struct Preparer {
    jpeg: JpegDecoder,
    encoder: JpegEncoder,
    resizer: Resizer,
    rgb: Vec<u8>,
    out: Vec<u8>,
}

impl Preparer {
    pub fn new() -> Result<Self, Error> {
        Ok(Preparer {
            jpeg: JpegDecoder::new()?,
            encoder: JpegEncoder::new()?,
            resizer: Resizer::new(),
            rgb: Vec::new(),
            out: Vec::new(),
        })
    }

    pub fn prepare(&mut self, item: &SourceItem, opts: &PrepareOptions) -> Result<Prepared, Error> {
        let bytes = fs::read(&item.path).map_err(|e| Error::io(&item.path, e))?;
        let (width, height) = self.decode(&bytes, &item.path)?;
        let crop = match item.crop {
            Some([x, y, w, h]) => CropRect::new(x, y, w, h),
            None => CropRect::full(width, height),
        };
        crop.check_inside(width, height)
            .map_err(|e| Error::invalid(format!("{}: {e}", item.path.display())))?;
        let (out_w, out_h) = stored_size(crop.w, crop.h, opts.short_side);
        self.out.resize(out_w as usize * out_h as usize * 3, 0);
        let window = Window::whole(&self.rgb, width, height, crop);
        self.resizer
            .resize_window(&window, out_w, out_h, false, Layout::Hwc, &mut self.out)?;
        let payload = match opts.storage {
            Storage::Jpeg => {
                self.encoder
                    .encode_rgb(&self.out, out_w, out_h, opts.quality, Subsampling::S420)?
            }
            Storage::RawRgb => self.out.clone(),
        };
        let (sx, sy) = (f64::from(out_w) / crop.w, f64::from(out_h) / crop.h);
        let boxes = item
            .boxes
            .iter()
            .map(|b| scale_box(b, sx, sy, out_w, out_h))
            .collect();
        Ok(Prepared {
            payload,
            width: out_w,
            height: out_h,
            boxes,
        })
    }

    /// Decode the source into `self.rgb` (packed RGB); returns its size.
    fn decode(&mut self, bytes: &[u8], path: &Path) -> Result<(u32, u32), Error> {
        if bytes.starts_with(&[0xFF, 0xD8]) {
            return self
                .jpeg
                .decode_rgb_into(bytes, &mut self.rgb)
                .map_err(|e| with_path(e, path));
        }
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(Error::unsupported(path, "not a PNG or JPEG file"));
        }
        decode_png(bytes, &mut self.rgb).map_err(|reason| Error::corrupt(path, reason))
    }
}

fn with_path(err: Error, path: &Path) -> Error {
    match err {
        Error::Io { .. } => err,
        other => Error::corrupt(path, other.to_string()),
    }
}

/// The stored size of a `w` x `h` crop: its short side shrunk to `short_side`, aspect kept.
pub fn stored_size(w: f64, h: f64, short_side: u32) -> (u32, u32) {
    let scale = (f64::from(short_side) / w.min(h)).min(1.0);
    let side = |v: f64| ((v * scale).round() as u32).max(1);
    (side(w), side(h))
}

fn scale_box(b: &BoxLabel, sx: f64, sy: f64, out_w: u32, out_h: u32) -> BoxLabel {
    let x0 = (f64::from(b.x) * sx).clamp(0.0, f64::from(out_w));
    let y0 = (f64::from(b.y) * sy).clamp(0.0, f64::from(out_h));
    let x1 = (f64::from(b.x + b.w) * sx).clamp(0.0, f64::from(out_w));
    let y1 = (f64::from(b.y + b.h) * sy).clamp(0.0, f64::from(out_h));
    BoxLabel {
        x: x0 as f32,
        y: y0 as f32,
        w: (x1 - x0) as f32,
        h: (y1 - y0) as f32,
        label: b.label,
    }
}

/// PNG (any bit depth, palette, gray, alpha) -> packed 8-bit RGB in `rgb`.
fn decode_png(bytes: &[u8], rgb: &mut Vec<u8>) -> Result<(u32, u32), String> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("PNG header: {e}"))?;
    let size = reader
        .output_buffer_size()
        .ok_or("PNG too large for this machine")?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("PNG data: {e}"))?;
    let (w, h) = (info.width, info.height);
    let pixels = w as usize * h as usize;
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Indexed => return Err("palette PNG was not expanded".into()),
    };
    let data = buf
        .get(..pixels * channels)
        .ok_or("PNG frame shorter than its size")?;
    rgb.clear();
    rgb.reserve(pixels * 3);
    match channels {
        3 => rgb.extend_from_slice(data),
        4 => data
            .chunks_exact(4)
            .for_each(|p| rgb.extend_from_slice(&p[..3])),
        _ => data
            .chunks_exact(channels)
            .for_each(|p| rgb.extend_from_slice(&[p[0], p[0], p[0]])),
    }
    Ok((w, h))
}

thread_local! {
    static PREPARER: RefCell<Option<Preparer>> = const { RefCell::new(None) };
}

fn prepare_one(item: &SourceItem, opts: &PrepareOptions) -> Result<Prepared, Error> {
    PREPARER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Preparer::new()?);
        }
        match slot.as_mut() {
            Some(preparer) => preparer.prepare(item, opts),
            None => Err(Error::internal("preparer missing")),
        }
    })
}

/// Prepare `items` on `threads` threads (0: every core); results in input order, one
/// error per bad item (a panic on one item becomes its error).
pub fn prepare_many(
    items: &[SourceItem],
    opts: &PrepareOptions,
    threads: usize,
) -> Result<Vec<Result<Prepared, Error>>, Error> {
    let pool = threads::pool(threads, "pack")?;
    Ok(pool.install(|| {
        items
            .par_iter()
            .map(|item| {
                panic::catch_unwind(AssertUnwindSafe(|| prepare_one(item, opts)))
                    .unwrap_or_else(|p| Err(Error::from_panic("preparing a pack record", p)))
            })
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn write_png(path: &Path, w: u32, h: u32, color: png::ColorType) -> TestResult {
        let channels = match color {
            png::ColorType::Rgba => 4,
            png::ColorType::Grayscale => 1,
            _ => 3,
        };
        let data: Vec<u8> = (0..w * h * channels).map(|i| (i % 251) as u8).collect();
        let file = fs::File::create(path)?;
        let mut enc = png::Encoder::new(file, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&data)?;
        Ok(())
    }

    fn opts(storage: Storage) -> PrepareOptions {
        PrepareOptions {
            short_side: 60,
            quality: 90,
            storage,
        }
    }

    #[test]
    fn stored_size_shrinks_the_short_side_and_never_enlarges() {
        assert_eq!(stored_size(976.0, 1280.0, 480), (480, 630));
        assert_eq!(stored_size(200.0, 100.0, 480), (200, 100));
    }

    #[test]
    fn png_crop_becomes_a_jpeg_with_boxes_in_stored_pixels() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("a.png");
        write_png(&path, 200, 300, png::ColorType::Rgb)?;
        let item = SourceItem {
            path,
            crop: Some([50.0, 100.0, 120.0, 120.0]),
            boxes: vec![BoxLabel {
                x: 12.0,
                y: 12.0,
                w: 96.0,
                h: 96.0,
                label: 3,
            }],
        };
        let out = Preparer::new()?.prepare(&item, &opts(Storage::Jpeg))?;
        assert_eq!((out.width, out.height), (60, 60));
        assert!(out.payload.starts_with(&[0xFF, 0xD8]));
        let b = out.boxes[0];
        assert_eq!((b.x, b.y, b.w, b.h, b.label), (6.0, 6.0, 48.0, 48.0, 3));
        let (_, w, h) = JpegDecoder::new()?.decode_rgb(&out.payload)?;
        assert_eq!((w, h), (60, 60));
        Ok(())
    }

    #[test]
    fn raw_storage_keeps_exact_pixels_when_no_resize_is_needed() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("g.png");
        write_png(&path, 40, 30, png::ColorType::Grayscale)?;
        let item = SourceItem {
            path,
            crop: None,
            boxes: vec![],
        };
        let out = Preparer::new()?.prepare(&item, &opts(Storage::RawRgb))?;
        assert_eq!((out.width, out.height), (40, 30));
        assert_eq!(out.payload.len(), 40 * 30 * 3);
        assert_eq!(&out.payload[..6], &[0, 0, 0, 1, 1, 1]); // gray replicated to RGB
        Ok(())
    }

    #[test]
    fn bad_items_fail_alone_and_in_order() -> TestResult {
        let dir = tempfile::tempdir()?;
        let good = dir.path().join("ok.png");
        write_png(&good, 64, 64, png::ColorType::Rgba)?;
        let truncated = dir.path().join("cut.png");
        let bytes = fs::read(&good)?;
        fs::File::create(&truncated)?.write_all(&bytes[..bytes.len() / 2])?;
        let text = dir.path().join("x.png");
        fs::write(&text, b"not an image")?;
        let item = |p: &Path| SourceItem {
            path: p.to_path_buf(),
            crop: None,
            boxes: vec![],
        };
        let items = [
            item(&good),
            item(&truncated),
            item(&dir.path().join("missing.png")),
            item(&text),
        ];
        let got = prepare_many(&items, &opts(Storage::Jpeg), 2)?;
        assert!(got[0].is_ok());
        assert!(matches!(got[1], Err(Error::CorruptImage { .. })));
        assert!(matches!(got[2], Err(Error::Io { .. })));
        assert!(matches!(got[3], Err(Error::UnsupportedFormat { .. })));
        Ok(())
    }
}
