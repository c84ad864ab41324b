//! Serving's image work: an uploaded photo -> the detector's letterbox and the classifier's
//! crops, the same geometry as `pillsnap.contract.ops` (`letterbox`, `classifier_crops`)
//! computes with Pillow, but decoding only what each output needs.
//!
//! [`Photo::open`] reads the container only (format, size, EXIF orientation, the pixel
//! limit). Then, for a JPEG:
//! - [`Photo::letterbox`] decodes the whole photo DCT-scaled to the smallest power-of-two
//!   reduction still at least the letterbox size (a 976x1280 photo and a 640 letterbox: 1/2,
//!   so the IDCT does the shrinking), turns it upright and resizes it onto the grey canvas,
//!   written as float32 CHW in [0, 1];
//! - [`Photo::crops`] decodes each crop's window (plus the resampling filter's reach) at
//!   full resolution, turns it upright and applies Pillow's two resizes (the pack writer's
//!   shrink, then the eval centre crop); when the windows would cover most of the photo it
//!   decodes the photo once instead.
//!
//! A PNG is decoded once, and both outputs are resized from it. Resizing is
//! `fast_image_resize`'s bilinear-with-antialias over fractional boxes, Pillow's algorithm
//! (within one level of rounding).
//!
//! Anything this module does not read (other formats, CMYK or 12-bit JPEGs, 16-bit PNGs, an
//! orientation outside the EXIF block, damaged data, libjpeg-turbo warnings) is an error; the
//! Python caller (`pillsnap.contract.photo`) then runs Pillow's path, whose answer and error
//! messages stay the reference. Test: `cargo test --quiet photo`.

mod meta;
mod orient;
mod png;
#[cfg(test)]
mod tests;

use crate::augment;
use crate::error::Error;
use crate::jpeg::{CropRect, JpegDecoder, ScalePolicy, ScalingFactor, Window, MAX_PIXELS};
use crate::prepare::stored_size;
use crate::resize::{Layout, Resizer};

pub use meta::Format;
pub use orient::Orientation;

/// The grey ultralytics pads the letterbox with (`ops.LETTERBOX_FILL`).
pub const LETTERBOX_FILL: u8 = 114;

/// The share of a full JPEG decode spent entropy-decoding (measured on AIHub-size q90
/// photos: 976x1280 in 3.2 ms, of which 1.8 ms remain at 1/4 DCT scale). A window decode
/// pays it for every row above and inside the window (for a progressive JPEG: for the
/// whole photo), the rest only for the window's area; see [`CropPlan::cost`].
const ENTROPY_SHARE: f64 = 0.5;

/// Per-thread decoders and scratch buffers, reused across photos. `Send`, not `Sync`.
pub struct PhotoDecoder {
    /// Powers-of-two DCT scaling: the letterbox.
    scaled: JpegDecoder,
    /// Never scales: crops keep full resolution, as Pillow's path sees them.
    exact: JpegDecoder,
    resizer: Resizer,
    /// A decoded block turned upright.
    upright: Vec<u8>,
    /// The letterbox's resized photo, or a crop's first (shrink) resize.
    stage: Vec<u8>,
}

impl PhotoDecoder {
    pub fn new() -> Result<Self, Error> {
        Ok(PhotoDecoder {
            scaled: JpegDecoder::with_policy(ScalePolicy::PowersOfTwo)?,
            exact: JpegDecoder::with_policy(ScalePolicy::Off)?,
            resizer: Resizer::new(),
            upright: Vec::new(),
            stage: Vec::new(),
        })
    }
}

/// Where [`Photo::letterbox`] put the photo: `x_in = x * scale + pad_x` (`ops.Letterbox`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub scale: f64,
    pub pad_x: u32,
    pub pad_y: u32,
    /// The resized photo's size inside the square.
    pub width: u32,
    pub height: u32,
}

impl Placement {
    /// `ops.letterbox`'s geometry: the long side fills `size`, Python's `round` (half to
    /// even) for the short side, the padding split with the odd pixel on the far side.
    pub fn new(width: u32, height: u32, size: u32) -> Placement {
        let scale = f64::from(size) / f64::from(width.max(height));
        let side = |v: u32| ((f64::from(v) * scale).round_ties_even() as u32).clamp(1, size);
        let (w, h) = (side(width), side(height));
        Placement {
            scale,
            pad_x: (size - w) / 2,
            pad_y: (size - h) / 2,
            width: w,
            height: h,
        }
    }
}

/// The whole photo decoded, upright, at full resolution.
struct Rgb {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
}

/// One uploaded photo (JPEG or PNG bytes held as `D`), opened from its header.
pub struct Photo<D> {
    data: D,
    format: Format,
    /// Size as stored, before the orientation is applied.
    stored: (u32, u32),
    /// A progressive JPEG: any window decode entropy-decodes every scan of the whole photo.
    progressive: bool,
    orientation: Orientation,
    full: Option<Rgb>,
}

impl<D: AsRef<[u8]>> Photo<D> {
    /// Reads the container and checks the pixel count (`max_pixels`) from the header alone.
    pub fn open(data: D, max_pixels: Option<u64>, dec: &mut PhotoDecoder) -> Result<Self, Error> {
        let bytes = data.as_ref();
        let meta = meta::read(bytes)?;
        let (stored, progressive) = match meta.png {
            Some(header) => {
                png::supported(&header)?;
                ((header.width, header.height), false)
            }
            None => {
                let header = dec.scaled.supported_header(bytes)?;
                ((header.width, header.height), header.progressive)
            }
        };
        let pixels = u64::from(stored.0) * u64::from(stored.1);
        if let Some(limit) = max_pixels.filter(|limit| pixels > *limit) {
            return Err(Error::TooManyPixels {
                width: stored.0,
                height: stored.1,
                limit,
            });
        }
        if pixels == 0 || pixels > MAX_PIXELS {
            return Err(Error::UnsupportedImage {
                reason: format!("{}x{} pixels (left to Pillow)", stored.0, stored.1),
            });
        }
        Ok(Photo {
            data,
            format: meta.format,
            stored,
            progressive,
            orientation: meta.orientation,
            full: None,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn orientation(&self) -> Orientation {
        self.orientation
    }

    /// The upright `(width, height)`, as the answer reports it and boxes refer to it.
    pub fn size(&self) -> (u32, u32) {
        self.orientation.upright_size(self.stored.0, self.stored.1)
    }

    /// The detector input into `out` (`3 * size * size` float32, CHW, RGB in [0, 1], the
    /// rest grey 114): the photo resized so its long side is `size`, centred.
    pub fn letterbox(
        &mut self,
        size: u32,
        dec: &mut PhotoDecoder,
        out: &mut [f32],
    ) -> Result<Placement, Error> {
        let plane = size as usize * size as usize;
        if size == 0 || out.len() != 3 * plane {
            return Err(Error::invalid(format!(
                "letterbox buffer has {} floats, 3 x {size} x {size} needed",
                out.len()
            )));
        }
        let (width, height) = self.size();
        let place = Placement::new(width, height, size);
        let (w, h) = (place.width, place.height);
        let (tw, th) = self.orientation.upright_size(w, h);
        let (sw, sh) = (f64::from(self.stored.0), f64::from(self.stored.1));
        // Without a DCT reduction, decode in full: the crops can use that decode too.
        let reduce = dec.scaled.choose_scale(sw, sh, tw, th) != ScalingFactor::ONE;
        if self.format == Format::Jpeg && self.full.is_none() && reduce {
            let whole = CropRect::full(self.stored.0, self.stored.1);
            let window = dec
                .scaled
                .decode_window(self.data.as_ref(), whole, 0.0, tw, th)?;
            let source = upright(window, self.orientation, &mut dec.upright);
            place_photo(&source, place, size, &mut dec.resizer, &mut dec.stage, out)?;
            return Ok(place);
        }
        let full = self.full(dec)?;
        let source = Window::whole(&full.pixels, full.width, full.height, full_rect(full));
        place_photo(&source, place, size, &mut dec.resizer, &mut dec.stage, out)?;
        Ok(place)
    }

    /// Classifier crops into `out` (`n * size * size * 3` uint8, NHWC): for each upright
    /// `regions` box (`None`: the whole photo) what `ops.classifier_crop` computes.
    pub fn crops(
        &mut self,
        regions: Option<&[CropRect]>,
        size: u32,
        short_side: Option<u32>,
        dec: &mut PhotoDecoder,
        out: &mut [u8],
    ) -> Result<(), Error> {
        let (width, height) = self.size();
        let whole = [CropRect::full(width, height)];
        let regions = regions.unwrap_or(&whole);
        let slot = size as usize * size as usize * 3;
        if size == 0 || out.len() != regions.len() * slot {
            return Err(Error::invalid(format!(
                "crops buffer has {} bytes, {} x {size} x {size} x 3 needed",
                out.len(),
                regions.len()
            )));
        }
        let mut plans = Vec::with_capacity(regions.len());
        for region in regions {
            region.check_inside(width, height)?;
            plans.push(CropPlan::new(*region, size, short_side));
        }
        let progressive = self.progressive;
        let windows: f64 = plans
            .iter()
            .map(|p| p.cost(width, height, progressive))
            .sum();
        let from_full = self.format == Format::Png || self.full.is_some() || windows > 1.0;
        for (plan, dst) in plans.iter().zip(out.chunks_exact_mut(slot)) {
            if from_full {
                let full = self.full(dec)?;
                let source = Window::whole(&full.pixels, full.width, full.height, plan.source);
                plan.render(&source, &mut dec.resizer, &mut dec.stage, dst)?;
            } else {
                let stored = self
                    .orientation
                    .to_stored(plan.source, self.stored.0, self.stored.1);
                let window =
                    dec.exact
                        .decode_window(self.data.as_ref(), stored, plan.halo(), 1, 1)?;
                let source = upright(window, self.orientation, &mut dec.upright);
                plan.render(&source, &mut dec.resizer, &mut dec.stage, dst)?;
            }
        }
        Ok(())
    }

    /// The whole photo, upright, into `out` (`width * height * 3` uint8, HWC).
    pub fn decode(&mut self, dec: &mut PhotoDecoder, out: &mut [u8]) -> Result<(), Error> {
        let full = self.full(dec)?;
        if out.len() != full.pixels.len() {
            return Err(Error::invalid(format!(
                "image buffer has {} bytes, {}x{}x3 needed",
                out.len(),
                full.width,
                full.height
            )));
        }
        out.copy_from_slice(&full.pixels);
        Ok(())
    }

    /// The full decode, made once and kept for later outputs.
    fn full(&mut self, dec: &mut PhotoDecoder) -> Result<&Rgb, Error> {
        if self.full.is_none() {
            let mut pixels = Vec::new();
            let (w, h) = match self.format {
                Format::Jpeg => dec.exact.decode_rgb_into(self.data.as_ref(), &mut pixels)?,
                Format::Png => png::decode(self.data.as_ref(), &mut pixels)?,
            };
            if (w, h) != self.stored {
                return Err(Error::UnsupportedImage {
                    reason: format!("decoded {w}x{h}, header said {:?}", self.stored),
                });
            }
            if !self.orientation.is_upright() {
                self.orientation
                    .apply(&pixels, w, (0, 0, w, h), &mut dec.upright);
                std::mem::swap(&mut pixels, &mut dec.upright);
            }
            let (width, height) = self.size();
            self.full = Some(Rgb {
                pixels,
                width,
                height,
            });
        }
        self.full
            .as_ref()
            .ok_or_else(|| Error::internal("full decode missing"))
    }
}

fn full_rect(rgb: &Rgb) -> CropRect {
    CropRect::full(rgb.width, rgb.height)
}

/// A decoded window turned upright: the window itself when the photo is stored upright,
/// else its view permuted into `buf`.
fn upright<'a>(window: Window<'a>, orientation: Orientation, buf: &'a mut Vec<u8>) -> Window<'a> {
    if orientation.is_upright() {
        return window;
    }
    let view = (window.view_x, window.view_y, window.view_w, window.view_h);
    orientation.apply(window.pixels, window.width, view, buf);
    let (w, h) = orientation.upright_size(window.view_w, window.view_h);
    let crop = orientation.to_upright(window.crop, window.view_w, window.view_h);
    Window::whole(buf, w, h, crop)
}

/// The letterbox: `source`'s crop resized to the placement's size (no resize when the DCT
/// scaling already made it that size) and written onto the canvas.
fn place_photo(
    source: &Window<'_>,
    place: Placement,
    size: u32,
    resizer: &mut Resizer,
    stage: &mut Vec<u8>,
    out: &mut [f32],
) -> Result<(), Error> {
    let c = source.crop;
    let exact =
        c.x == 0.0 && c.y == 0.0 && c.w == f64::from(place.width) && c.h == f64::from(place.height);
    if exact && (source.view_w, source.view_h) == (place.width, place.height) {
        let rows = source.pixels.chunks_exact(source.width as usize * 3);
        let view_rows = rows
            .skip(source.view_y as usize)
            .take(source.view_h as usize);
        let x0 = source.view_x as usize * 3;
        let row_bytes = source.view_w as usize * 3;
        write_canvas(view_rows.map(|r| &r[x0..x0 + row_bytes]), place, size, out);
        return Ok(());
    }
    resize(resizer, source, (place.width, place.height), stage)?;
    write_canvas(
        stage.chunks_exact(place.width as usize * 3),
        place,
        size,
        out,
    );
    Ok(())
}

/// `source`'s crop resized to `w` x `h` packed RGB in `dst`.
fn resize(
    resizer: &mut Resizer,
    source: &Window<'_>,
    (w, h): (u32, u32),
    dst: &mut Vec<u8>,
) -> Result<(), Error> {
    dst.resize(w as usize * h as usize * 3, 0);
    resizer.resize_window(source, w, h, false, Layout::Hwc, dst)
}

/// The resized photo (`rows` of `place.width` packed RGB pixels) centred on the grey
/// square, as float32 CHW in [0, 1]: `uint8 as f32 / 255` in float32, exactly numpy's
/// `astype(float32) / 255.0`. One plane at a time, so each row's loop is a strided load,
/// a conversion and a division that the compiler vectorises (a lookup table does not).
fn write_canvas<'a>(
    rows: impl Iterator<Item = &'a [u8]> + Clone,
    place: Placement,
    size: u32,
    out: &mut [f32],
) {
    let fill = f32::from(LETTERBOX_FILL) / 255.0;
    let (size, w) = (size as usize, place.width as usize);
    let (x0, y0) = (place.pad_x as usize, place.pad_y as usize);
    let plane = size * size;
    for (c, p) in out.chunks_exact_mut(plane).enumerate().take(3) {
        p[..y0 * size].fill(fill);
        p[((y0 + place.height as usize) * size).min(plane)..].fill(fill);
        let lines = p.chunks_exact_mut(size).skip(y0);
        for (row, line) in rows.clone().zip(lines) {
            line[..x0].fill(fill);
            line[(x0 + w).min(size)..].fill(fill);
            let dst = line[x0..].iter_mut();
            match c {
                0 => convert::<0>(row, dst),
                1 => convert::<1>(row, dst),
                _ => convert::<2>(row, dst),
            }
        }
    }
}

/// Channel `C` of packed RGB `row` into `dst`, scaled to [0, 1].
fn convert<'a, const C: usize>(row: &[u8], dst: impl Iterator<Item = &'a mut f32>) {
    for (d, px) in dst.zip(row.chunks_exact(3)) {
        *d = f32::from(px[C]) / 255.0;
    }
}

/// Source pixels beyond a box's edge that the antialiased bilinear filter reaches when it
/// shrinks `from` pixels to `to`: its support, plus one for rounding (as `sample.rs`).
fn filter_halo(from: f64, to: u32) -> f64 {
    (from / f64::from(to)).max(1.0).ceil() + 1.0
}

/// One classifier crop as `ops.classifier_crop` computes it: `source` (upright photo pixels)
/// resized to `first`, then, when the pack writer's shrink applies, the eval centre crop
/// `second` of that resized to the output.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CropPlan {
    source: CropRect,
    first: (u32, u32),
    second: Option<CropRect>,
    size: u32,
}

impl CropPlan {
    fn new(region: CropRect, size: u32, short_side: Option<u32>) -> CropPlan {
        if let Some(short_side) = short_side {
            let (w, h) = stored_size(region.w, region.h, short_side);
            let centre = augment::eval_crop(w, h, size);
            return CropPlan {
                source: region,
                first: (w, h),
                second: Some(centre),
                size,
            };
        }
        // Python's round (half to even) of the region's size, as ops.classifier_crop.
        let side = |v: f64| (v.round_ties_even() as u32).max(1);
        let (rw, rh) = (side(region.w), side(region.h));
        let c = augment::eval_crop(rw, rh, size);
        let (sx, sy) = (region.w / f64::from(rw), region.h / f64::from(rh));
        let centre = CropRect::new(region.x + c.x * sx, region.y + c.y * sy, c.w * sx, c.h * sy);
        CropPlan {
            source: centre,
            first: (size, size),
            second: None,
            size,
        }
    }

    /// How far the first resize's filter reaches past `source`, in source pixels.
    fn halo(&self) -> f64 {
        filter_halo(self.source.w, self.first.0).max(filter_halo(self.source.h, self.first.1))
    }

    /// What decoding this crop's window costs, in full decodes of the photo: the entropy
    /// decoding of every row down to the window's bottom, the rest for its area.
    fn cost(&self, width: u32, height: u32, progressive: bool) -> f64 {
        let halo = self.halo();
        let (w, h) = (f64::from(width), f64::from(height));
        let s = self.source;
        let span = |start: f64, len: f64, dim: f64| {
            (start + len + halo).min(dim) - (start - halo).max(0.0)
        };
        let bottom = if progressive {
            h
        } else {
            (s.y + s.h + halo).min(h)
        };
        ENTROPY_SHARE * bottom / h
            + (1.0 - ENTROPY_SHARE) * span(s.x, s.w, w) * span(s.y, s.h, h) / (w * h)
    }

    /// The crop from `source` (a window whose crop is this plan's `source` box) into `dst`.
    fn render(
        &self,
        source: &Window<'_>,
        resizer: &mut Resizer,
        stage: &mut Vec<u8>,
        dst: &mut [u8],
    ) -> Result<(), Error> {
        let Some(centre) = self.second else {
            return resizer.resize_window(source, self.size, self.size, false, Layout::Hwc, dst);
        };
        resize(resizer, source, self.first, stage)?;
        let shrunk = Window::whole(stage, self.first.0, self.first.1, centre);
        resizer.resize_window(&shrunk, self.size, self.size, false, Layout::Hwc, dst)
    }
}
