//! The classifier crops' geometry (`ops.classifier_crop`'s two resizes) and where their
//! pixels are read from: the full decode, one window spanning them all, or a window each,
//! whichever decodes least (see [`ENTROPY_SHARE`]).

use crate::augment;
use crate::error::Error;
use crate::jpeg::{CropRect, Window};
use crate::prepare::stored_size;
use crate::resize::{Layout, Resizer};

/// The share of a full JPEG decode spent entropy-decoding (measured on AIHub-size q90
/// photos: 976x1280 in 3.2 ms, of which 1.8 ms remain at 1/4 DCT scale). A window decode
/// pays it for every row above and inside the window (for a progressive JPEG: for the
/// whole photo), the rest only for the window's area; see [`window_cost`].
const ENTROPY_SHARE: f64 = 0.5;

/// `base` (a decoded window whose crop is `area`) with its crop moved to `source` (upright
/// photo pixels, inside `area`).
pub(super) fn within<'a>(base: &Window<'a>, area: CropRect, source: CropRect) -> Window<'a> {
    let (dx, dy) = (base.crop.x - area.x, base.crop.y - area.y);
    let crop = CropRect::new(source.x + dx, source.y + dy, source.w, source.h);
    Window { crop, ..*base }
}

/// Where [`super::Photo::crops`] reads the pixels of its crops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum CropSource {
    Full,
    /// One window (upright photo pixels) holding every crop's reach.
    Shared(CropRect),
    Windows,
}

/// What decoding the JPEG window `r` (upright photo pixels) costs, in full decodes: the
/// entropy decoding of every row down to its bottom (of the whole photo when progressive,
/// whose scans all precede the pixels), the rest for its area. Orientation is ignored: a
/// turned photo's rows run another way, but the estimate only has to rank the choices.
pub(super) fn window_cost(r: CropRect, width: u32, height: u32, progressive: bool) -> f64 {
    let (w, h) = (f64::from(width), f64::from(height));
    let bottom = if progressive { h } else { (r.y + r.h).min(h) };
    ENTROPY_SHARE * bottom / h + (1.0 - ENTROPY_SHARE) * r.w * r.h / (w * h)
}

/// The smallest rectangle holding `a` and `b`.
pub(super) fn bounding_box(a: CropRect, b: CropRect) -> CropRect {
    let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
    let (x1, y1) = ((a.x + a.w).max(b.x + b.w), (a.y + a.h).max(b.y + b.h));
    CropRect::new(x0, y0, x1 - x0, y1 - y0)
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
pub(super) struct CropPlan {
    pub(super) source: CropRect,
    pub(super) first: (u32, u32),
    pub(super) second: Option<CropRect>,
    pub(super) size: u32,
}

impl CropPlan {
    pub(super) fn new(region: CropRect, size: u32, short_side: Option<u32>) -> CropPlan {
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
    pub(super) fn halo(&self) -> f64 {
        filter_halo(self.source.w, self.first.0).max(filter_halo(self.source.h, self.first.1))
    }

    /// The photo pixels the first resize reads: `source` plus the filter's reach, inside
    /// the `width` x `height` photo.
    pub(super) fn reach(&self, width: u32, height: u32) -> CropRect {
        let halo = self.halo();
        let s = self.source;
        let (x0, y0) = ((s.x - halo).max(0.0), (s.y - halo).max(0.0));
        let x1 = (s.x + s.w + halo).min(f64::from(width));
        let y1 = (s.y + s.h + halo).min(f64::from(height));
        CropRect::new(x0, y0, x1 - x0, y1 - y0)
    }

    /// The crop from `source` (a window whose crop is this plan's `source` box) into `dst`.
    pub(super) fn render(
        &self,
        source: &Window<'_>,
        resizer: &mut Resizer,
        stage: &mut Vec<u8>,
        dst: &mut [u8],
    ) -> Result<(), Error> {
        let Some(centre) = self.second else {
            return resizer.resize_window(source, self.size, self.size, false, Layout::Hwc, dst);
        };
        super::resize(resizer, source, self.first, stage)?;
        let shrunk = Window::whole(stage, self.first.0, self.first.1, centre);
        resizer.resize_window(&shrunk, self.size, self.size, false, Layout::Hwc, dst)
    }
}
