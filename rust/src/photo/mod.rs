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

mod canvas;
mod meta;
mod orient;
mod plan;
mod png;
#[cfg(test)]
mod tests;

use crate::error::Error;
use crate::jpeg::{CropRect, JpegDecoder, ScalePolicy, ScalingFactor, Window, MAX_PIXELS};
use crate::resize::{Layout, Resizer};

use canvas::place_photo;
use plan::{bounding_box, window_cost, within, CropPlan, CropSource};

pub use canvas::{Placement, LETTERBOX_FILL};
pub use meta::Format;
pub use orient::Orientation;

/// Scratch kept between photos: the windows and letterboxes of AIHub-size photos fit.
const KEEP_BYTES: usize = 16 << 20;

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

    /// Frees scratch buffers that a large photo grew past [`KEEP_BYTES`]; call it between
    /// photos (the Python binding does after every call), so that threads which once served
    /// a 40 MP upload do not each keep its buffers.
    pub fn trim(&mut self) {
        for buf in [&mut self.upright, &mut self.stage] {
            if buf.capacity() > KEEP_BYTES {
                *buf = Vec::new();
            }
        }
        self.scaled.shrink_scratch(KEEP_BYTES);
        self.exact.shrink_scratch(KEEP_BYTES);
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
        let outs = out.chunks_exact_mut(slot);
        match self.crop_source(&plans, width, height) {
            CropSource::Full => {
                let full = self.full(dec)?;
                for (plan, dst) in plans.iter().zip(outs) {
                    let source = Window::whole(&full.pixels, full.width, full.height, plan.source);
                    plan.render(&source, &mut dec.resizer, &mut dec.stage, dst)?;
                }
            }
            CropSource::Shared(span) => {
                let base = self.decode_area(span, &mut dec.exact, &mut dec.upright)?;
                for (plan, dst) in plans.iter().zip(outs) {
                    let source = within(&base, span, plan.source);
                    plan.render(&source, &mut dec.resizer, &mut dec.stage, dst)?;
                }
            }
            CropSource::Windows => {
                for (plan, dst) in plans.iter().zip(outs) {
                    let reach = plan.reach(width, height);
                    let base = self.decode_area(reach, &mut dec.exact, &mut dec.upright)?;
                    let source = within(&base, reach, plan.source);
                    plan.render(&source, &mut dec.resizer, &mut dec.stage, dst)?;
                }
            }
        }
        Ok(())
    }

    /// The JPEG's pixels under `area` (upright photo pixels) at full resolution, upright;
    /// the window's crop is `area`.
    fn decode_area<'a>(
        &self,
        area: CropRect,
        exact: &'a mut JpegDecoder,
        buf: &'a mut Vec<u8>,
    ) -> Result<Window<'a>, Error> {
        let stored = self
            .orientation
            .to_stored(area, self.stored.0, self.stored.1);
        let window = exact.decode_window(self.data.as_ref(), stored, 0.0, 1, 1)?;
        Ok(upright(window, self.orientation, buf))
    }

    /// Where the crops come from, whichever is cheapest (in full decodes, see
    /// [`window_cost`]): the full decode (a PNG, one already made, or windows that would
    /// cost more), one window spanning every crop's reach, or a window per crop (crops far
    /// apart, where the span would cover most of the photo).
    fn crop_source(&self, plans: &[CropPlan], width: u32, height: u32) -> CropSource {
        if self.format == Format::Png || self.full.is_some() {
            return CropSource::Full;
        }
        let cost = |r: CropRect| window_cost(r, width, height, self.progressive);
        let reaches: Vec<CropRect> = plans.iter().map(|p| p.reach(width, height)).collect();
        let windows: f64 = reaches.iter().map(|r| cost(*r)).sum();
        let Some(span) = reaches.iter().copied().reduce(bounding_box) else {
            return CropSource::Windows; // no crops: nothing to decode
        };
        let shared = cost(span);
        if windows.min(shared) >= 1.0 {
            CropSource::Full
        } else if shared <= windows {
            CropSource::Shared(span)
        } else {
            CropSource::Windows
        }
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
                // a fresh buffer: the stored-orientation one is freed, not kept as scratch
                let mut turned = Vec::new();
                self.orientation
                    .apply(&pixels, w, (0, 0, w, h), &mut turned);
                pixels = turned;
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
