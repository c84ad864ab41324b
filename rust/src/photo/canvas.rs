//! The letterbox canvas: the resized photo centred on ultralytics' grey square, written as
//! the detector's float32 CHW input in [0, 1].

use crate::error::Error;
use crate::jpeg::Window;
use crate::resize::Resizer;

/// The grey ultralytics pads the letterbox with (`ops.LETTERBOX_FILL`).
pub const LETTERBOX_FILL: u8 = 114;

/// Where [`super::Photo::letterbox`] put the photo: `x_in = x * scale + pad_x`
/// (`ops.Letterbox`).
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

/// The letterbox: `source`'s crop resized to the placement's size (no resize when the DCT
/// scaling already made it that size) and written onto the canvas.
pub(super) fn place_photo(
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
    super::resize(resizer, source, (place.width, place.height), stage)?;
    write_canvas(
        stage.chunks_exact(place.width as usize * 3),
        place,
        size,
        out,
    );
    Ok(())
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
