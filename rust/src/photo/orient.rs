//! EXIF orientation: the eight ways a camera stores a photo relative to how it is shown.
//!
//! Serving works in *upright* coordinates (what Pillow's `ImageOps.exif_transpose` yields and
//! the detector's boxes refer to) while libjpeg-turbo decodes *stored* pixels. Every
//! orientation is a transpose and/or a mirror on each axis, so an upright rectangle maps to
//! one stored rectangle (decode only that window) and a decoded block turns upright by
//! permuting pixels: exact, no resampling.

use crate::jpeg::CropRect;

/// How stored pixels become upright; EXIF values 1-8 (any other value: as stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Orientation {
    /// Upright x runs along stored y (values 5-8): the upright size is the stored one swapped.
    transpose: bool,
    /// After the transpose, mirror the stored x / y axis.
    flip_x: bool,
    flip_y: bool,
}

impl Orientation {
    /// Pixels as stored (EXIF 1, or no tag).
    pub const UPRIGHT: Orientation = Orientation {
        transpose: false,
        flip_x: false,
        flip_y: false,
    };

    /// The orientation of EXIF tag 0x0112's `value`, as Pillow's `exif_transpose` applies it
    /// (2: FLIP_LEFT_RIGHT, 3: ROTATE_180, 4: FLIP_TOP_BOTTOM, 5: TRANSPOSE, 6: ROTATE_270,
    /// 7: TRANSVERSE, 8: ROTATE_90); values outside 2-8 leave the photo as stored.
    pub fn from_exif(value: u32) -> Orientation {
        let (transpose, flip_x, flip_y) = match value {
            2 => (false, true, false),
            3 => (false, true, true),
            4 => (false, false, true),
            5 => (true, false, false),
            6 => (true, false, true),
            7 => (true, true, true),
            8 => (true, true, false),
            _ => (false, false, false),
        };
        Orientation {
            transpose,
            flip_x,
            flip_y,
        }
    }

    /// True when stored pixels are already upright.
    pub fn is_upright(self) -> bool {
        self == Self::UPRIGHT
    }

    /// The upright size of a `width` x `height` stored image (or block).
    pub fn upright_size(self, width: u32, height: u32) -> (u32, u32) {
        if self.transpose {
            (height, width)
        } else {
            (width, height)
        }
    }

    /// The stored rectangle under upright rectangle `r` of an image (or block) stored as
    /// `width` x `height`. Edges, not pixel centres: a mirror maps x to `width - x` (at
    /// least 0: a box flush with the far edge would otherwise start at -1e-14).
    pub fn to_stored(self, r: CropRect, width: u32, height: u32) -> CropRect {
        let (x, y, w, h) = if self.transpose {
            (r.y, r.x, r.h, r.w)
        } else {
            (r.x, r.y, r.w, r.h)
        };
        let x = if self.flip_x {
            (f64::from(width) - x - w).max(0.0)
        } else {
            x
        };
        let y = if self.flip_y {
            (f64::from(height) - y - h).max(0.0)
        } else {
            y
        };
        CropRect::new(x, y, w, h)
    }

    /// The upright rectangle over stored rectangle `r` of an image (or block) stored as
    /// `width` x `height`: the inverse of [`Orientation::to_stored`].
    pub fn to_upright(self, r: CropRect, width: u32, height: u32) -> CropRect {
        let x = if self.flip_x {
            (f64::from(width) - r.x - r.w).max(0.0)
        } else {
            r.x
        };
        let y = if self.flip_y {
            (f64::from(height) - r.y - r.h).max(0.0)
        } else {
            r.y
        };
        if self.transpose {
            CropRect::new(y, x, r.h, r.w)
        } else {
            CropRect::new(x, y, r.w, r.h)
        }
    }

    /// The `w` x `h` block at (`x`, `y`) of packed RGB `src` (`stride` pixels a row), turned
    /// upright into `dst` (resized to fit; see [`Orientation::upright_size`] for its size).
    pub fn apply(
        self,
        src: &[u8],
        stride: u32,
        (x, y, w, h): (u32, u32, u32, u32),
        dst: &mut Vec<u8>,
    ) {
        let (uw, uh) = self.upright_size(w, h);
        let (stride, x0, y0) = (stride as usize, x as usize, y as usize);
        let (w, h) = (w as usize, h as usize);
        dst.clear();
        dst.reserve(w * h * 3);
        for uy in 0..uh as usize {
            for ux in 0..uw as usize {
                let (u, v) = if self.transpose { (uy, ux) } else { (ux, uy) };
                let sx = if self.flip_x { w - 1 - u } else { u };
                let sy = if self.flip_y { h - 1 - v } else { v };
                let at = ((y0 + sy) * stride + x0 + sx) * 3;
                dst.extend_from_slice(src.get(at..at + 3).unwrap_or(&[0, 0, 0]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 image whose pixel value is its stored index.
    fn numbered(w: u32, h: u32) -> Vec<u8> {
        (0..w * h).flat_map(|i| [i as u8; 3]).collect()
    }

    #[test]
    fn rotate_270_is_a_clockwise_quarter_turn() {
        // Stored 3x2:  0 1 2      EXIF 6 shows it turned clockwise:  3 0
        //              3 4 5                                          4 1
        //                                                             5 2
        let mut out = Vec::new();
        Orientation::from_exif(6).apply(&numbered(3, 2), 3, (0, 0, 3, 2), &mut out);
        let values: Vec<u8> = out.chunks_exact(3).map(|p| p[0]).collect();
        assert_eq!(values, [3, 0, 4, 1, 5, 2]);
        let mut out = Vec::new();
        Orientation::from_exif(8).apply(&numbered(3, 2), 3, (0, 0, 3, 2), &mut out);
        let values: Vec<u8> = out.chunks_exact(3).map(|p| p[0]).collect();
        assert_eq!(values, [2, 5, 1, 4, 0, 3]);
    }

    #[test]
    fn rectangles_follow_the_pixels_for_every_orientation() {
        let (w, h) = (7u32, 5u32);
        let src = numbered(w, h);
        for value in 1..=8 {
            let o = Orientation::from_exif(value);
            let mut upright = Vec::new();
            o.apply(&src, w, (0, 0, w, h), &mut upright);
            let (uw, _) = o.upright_size(w, h);
            // upright pixel (2, 1) is stored where its unit square maps to
            let s = o.to_stored(CropRect::new(2.0, 1.0, 1.0, 1.0), w, h);
            let stored = src[((s.y as u32 * w + s.x as u32) * 3) as usize];
            assert_eq!(
                upright[((uw + 2) * 3) as usize],
                stored,
                "orientation {value}"
            );
            let back = o.to_upright(s, w, h);
            assert_eq!(
                back,
                CropRect::new(2.0, 1.0, 1.0, 1.0),
                "orientation {value}"
            );
        }
    }

    #[test]
    fn a_block_turns_like_the_whole_image_cut_the_same_way() {
        let (w, h) = (9u32, 6u32);
        let src = numbered(w, h);
        let block = (2u32, 1u32, 5u32, 4u32);
        for value in 1..=8 {
            let o = Orientation::from_exif(value);
            let (mut whole, mut part) = (Vec::new(), Vec::new());
            o.apply(&src, w, (0, 0, w, h), &mut whole);
            o.apply(&src, w, block, &mut part);
            let r = CropRect::new(2.0, 1.0, 5.0, 4.0);
            let u = o.to_upright(r, w, h);
            let (uw, _) = o.upright_size(w, h);
            let (pw, ph) = o.upright_size(block.2, block.3);
            for py in 0..ph {
                for px in 0..pw {
                    let a = ((py * pw + px) * 3) as usize;
                    let b = (((u.y as u32 + py) * uw + u.x as u32 + px) * 3) as usize;
                    assert_eq!(part[a], whole[b], "orientation {value} at {px},{py}");
                }
            }
        }
    }
}
