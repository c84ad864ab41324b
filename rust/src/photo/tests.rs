//! Tests of the serving photo path on synthetic photos: windowed crops equal crops of the
//! full decode, orientations, the letterbox geometry, PNG, and what is left to Pillow.

use std::io::Cursor;

use super::*;
use crate::jpeg::{EncodeOptions, JpegEncoder, Subsampling};
use crate::testutil::{mae, synthetic_rgb};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const W: u32 = 488;
const H: u32 = 640;

fn jpeg(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, Error> {
    let options = EncodeOptions {
        quality: 90,
        subsampling: Subsampling::S420,
        progressive: false,
    };
    JpegEncoder::new()?.encode(rgb, w, h, &options)
}

fn png_bytes(
    rgb: &[u8],
    w: u32,
    h: u32,
    exif: Option<Vec<u8>>,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    {
        let mut enc = ::png::Encoder::new(Cursor::new(&mut out), w, h);
        enc.set_color(::png::ColorType::Rgb);
        enc.set_depth(::png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        if let Some(exif) = exif {
            writer.write_chunk(::png::chunk::ChunkType(*b"eXIf"), &exif)?;
        }
        writer.write_image_data(rgb)?;
    }
    Ok(out)
}

/// A big-endian TIFF block whose IFD0 holds only the orientation `value`.
fn exif_block(value: u16) -> Vec<u8> {
    let mut t = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    t.extend(value.to_be_bytes());
    t.extend([0, 0, 0, 0, 0, 0]);
    t
}

/// `jpeg` with an APP1 Exif segment carrying `value`, right after SOI.
fn with_orientation(jpeg: &[u8], value: u16) -> Vec<u8> {
    let body = [b"Exif\0\0".to_vec(), exif_block(value)].concat();
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((body.len() + 2) as u16).to_be_bytes());
    out.extend(body);
    out.extend(&jpeg[2..]);
    out
}

fn open<D: AsRef<[u8]>>(data: D, dec: &mut PhotoDecoder) -> Result<Photo<D>, Error> {
    Photo::open(data, None, dec)
}

fn crops_of(
    photo: &mut Photo<&[u8]>,
    regions: Option<&[CropRect]>,
    size: u32,
    short_side: Option<u32>,
    dec: &mut PhotoDecoder,
) -> Result<Vec<u8>, Error> {
    let n = regions.map_or(1, <[CropRect]>::len);
    let mut out = vec![0u8; n * size as usize * size as usize * 3];
    photo.crops(regions, size, short_side, dec, &mut out)?;
    Ok(out)
}

#[test]
fn window_crops_equal_crops_of_the_full_decode() -> TestResult {
    let rgb = synthetic_rgb(W, H, 3);
    let data = jpeg(&rgb, W, H)?;
    let mut dec = PhotoDecoder::new()?;
    let regions = [
        CropRect::new(100.3, 200.7, 150.0, 150.0),
        CropRect::new(0.0, 0.0, 90.5, 90.5),
        CropRect::new(W as f64 - 60.0, H as f64 - 60.0, 60.0, 60.0),
    ];
    for short_side in [Some(64), None] {
        let mut windows = open(&data[..], &mut dec)?;
        let a = crops_of(&mut windows, Some(&regions), 48, short_side, &mut dec)?;
        assert!(windows.full.is_none(), "small crops decode windows only");
        let mut full = open(&data[..], &mut dec)?;
        let mut image = vec![0u8; (W * H * 3) as usize];
        full.decode(&mut dec, &mut image)?;
        let b = crops_of(&mut full, Some(&regions), 48, short_side, &mut dec)?;
        // libjpeg-turbo's fancy upsampling sees no neighbour at a window's first column
        assert!(mae(&a, &b) < 0.05, "{short_side:?}: {}", mae(&a, &b));
        let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max();
        assert!(worst <= Some(2), "{short_side:?}: {worst:?}");
    }
    Ok(())
}

#[test]
fn crops_read_the_cheapest_source_and_it_does_not_change_them() -> TestResult {
    let rgb = synthetic_rgb(W, H, 4);
    let data = jpeg(&rgb, W, H)?;
    let mut dec = PhotoDecoder::new()?;
    let pill = |x: f64, y: f64| CropRect::new(x, y, 70.0, 70.0);
    let cluster = [pill(150.0, 250.0), pill(240.0, 260.0), pill(190.0, 340.0)];
    let apart = [pill(10.0, 10.0), pill(400.0, 560.0)];
    // flush with the corners: a shared window would be the whole photo
    let everywhere = [
        pill(0.0, 0.0),
        pill(418.0, 0.0),
        pill(0.0, 570.0),
        pill(418.0, 570.0),
    ];
    let cases: [(&[CropRect], &str); 3] = [
        (&cluster, "shared"),
        (&apart, "windows"),
        (&everywhere, "full"),
    ];
    for (regions, expected) in cases {
        let mut photo = open(&data[..], &mut dec)?;
        let plans: Vec<CropPlan> = regions
            .iter()
            .map(|r| CropPlan::new(*r, 48, Some(64)))
            .collect();
        let source = match photo.crop_source(&plans, W, H) {
            CropSource::Shared(_) => "shared",
            CropSource::Windows => "windows",
            CropSource::Full => "full",
        };
        assert_eq!(source, expected);
        let a = crops_of(&mut photo, Some(regions), 48, Some(64), &mut dec)?;
        let mut full = open(&data[..], &mut dec)?;
        full.decode(&mut dec, &mut vec![0u8; (W * H * 3) as usize])?;
        let b = crops_of(&mut full, Some(regions), 48, Some(64), &mut dec)?;
        let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max();
        assert!(
            mae(&a, &b) < 0.05 && worst <= Some(2),
            "{expected}: {}",
            mae(&a, &b)
        );
    }
    Ok(())
}

#[test]
fn every_orientation_gives_the_same_upright_crops_and_letterbox() -> TestResult {
    let rgb = synthetic_rgb(W, H, 5);
    let mut dec = PhotoDecoder::new()?;
    let region = [CropRect::new(150.0, 300.0, 120.0, 120.0)];
    let (mut letterboxes, mut crops) = (Vec::new(), Vec::new());
    for value in 1..=8u16 {
        // store the upright photo turned the other way, and say so in EXIF
        let o = Orientation::from_exif(u32::from(value));
        let inverse = (0..=8)
            .map(Orientation::from_exif)
            .find(|i| {
                let mut once = Vec::new();
                let mut twice = Vec::new();
                o.apply(&rgb, W, (0, 0, W, H), &mut once);
                let (w, h) = o.upright_size(W, H);
                i.apply(&once, w, (0, 0, w, h), &mut twice);
                twice == rgb
            })
            .ok_or("no inverse")?;
        let mut stored = Vec::new();
        inverse.apply(&rgb, W, (0, 0, W, H), &mut stored);
        let (sw, sh) = inverse.upright_size(W, H);
        // 4:4:4 at high quality: the turn happens in pixels, not in the JPEG
        let options = EncodeOptions {
            quality: 98,
            subsampling: Subsampling::S444,
            progressive: false,
        };
        let data = with_orientation(
            &JpegEncoder::new()?.encode(&stored, sw, sh, &options)?,
            value,
        );
        let mut photo = open(&data[..], &mut dec)?;
        assert_eq!(photo.size(), (W, H), "orientation {value}");
        crops.push(crops_of(&mut photo, Some(&region), 64, Some(96), &mut dec)?);
        let mut tensor = vec![0f32; 3 * 160 * 160];
        photo.letterbox(160, &mut dec, &mut tensor)?;
        letterboxes.push(tensor);
    }
    for (value, crop) in crops.iter().enumerate().skip(1) {
        assert!(
            mae(crop, &crops[0]) < 1.5,
            "crop, orientation {}",
            value + 1
        );
    }
    for (value, tensor) in letterboxes.iter().enumerate().skip(1) {
        let diff: f32 = tensor
            .iter()
            .zip(&letterboxes[0])
            .map(|(a, b)| (a - b).abs())
            .sum();
        assert!(
            diff / (tensor.len() as f32) < 1.5 / 255.0,
            "letterbox {}",
            value + 1
        );
    }
    Ok(())
}

#[test]
fn letterbox_places_the_photo_like_ops_letterbox() -> TestResult {
    // ops.letterbox: 976x1280 into 640 -> 488x640 at pad_x 76; Python rounds half to even
    let p = Placement::new(976, 1280, 640);
    assert_eq!((p.width, p.height, p.pad_x, p.pad_y), (488, 640, 76, 0));
    assert_eq!(Placement::new(5, 2, 4).height, 2); // 1.6 -> 2
    assert_eq!(Placement::new(8, 5, 4).height, 2); // 2.5 -> 2 (half to even)
    let rgb = vec![200u8; (W * H * 3) as usize];
    let data = jpeg(&rgb, W, H)?;
    let mut dec = PhotoDecoder::new()?;
    let mut photo = open(&data[..], &mut dec)?;
    let mut out = vec![0f32; 3 * 320 * 320];
    let place = photo.letterbox(320, &mut dec, &mut out)?;
    assert_eq!((place.width, place.height, place.pad_x), (244, 320, 38));
    assert_eq!(out[0], 114.0 / 255.0); // padding
    let inside = out[160 * 320 + 160];
    assert!((inside * 255.0 - 200.0).abs() <= 1.0, "{inside}");
    assert!(
        photo.full.is_none(),
        "a reduced decode is not the full photo"
    );
    Ok(())
}

#[test]
fn png_is_decoded_once_and_upright() -> TestResult {
    let rgb = synthetic_rgb(64, 48, 7);
    let mut dec = PhotoDecoder::new()?;
    let data = png_bytes(&rgb, 64, 48, Some(exif_block(6)))?;
    let mut photo = open(&data[..], &mut dec)?;
    assert_eq!((photo.format(), photo.size()), (Format::Png, (48, 64)));
    let mut image = vec![0u8; 64 * 48 * 3];
    photo.decode(&mut dec, &mut image)?;
    let mut expected = Vec::new();
    Orientation::from_exif(6).apply(&rgb, 64, (0, 0, 64, 48), &mut expected);
    assert_eq!(image, expected);
    let crop = crops_of(&mut photo, None, 32, Some(40), &mut dec)?;
    assert_eq!(crop.len(), 32 * 32 * 3);
    Ok(())
}

#[test]
fn what_the_native_path_does_not_read_is_an_error() -> TestResult {
    let mut dec = PhotoDecoder::new()?;
    let rgb = synthetic_rgb(32, 32, 1);
    let good = png_bytes(&rgb, 32, 32, None)?;
    let too_big = Photo::open(&good[..], Some(1000), &mut dec);
    assert!(matches!(
        too_big,
        Err(Error::TooManyPixels { limit: 1000, .. })
    ));
    let gif = open(&b"GIF89a\x01\x00\x01\x00"[..], &mut dec);
    assert!(matches!(gif, Err(Error::UnsupportedImage { .. })));
    // truncated pixel data: the header opens, the decode fails
    let mut cut = open(&good[..good.len() - 40], &mut dec)?;
    let mut out = vec![0u8; 32 * 32 * 3];
    assert!(matches!(
        cut.decode(&mut dec, &mut out),
        Err(Error::CorruptPng { .. })
    ));
    let data = jpeg(&rgb, 32, 32)?;
    let mut cut = open(&data[..data.len() - 100], &mut dec)?;
    assert!(matches!(
        cut.decode(&mut dec, &mut out),
        Err(Error::CorruptJpeg { .. })
    ));
    let mut photo = open(&data[..], &mut dec)?;
    let outside = [CropRect::new(10.0, 10.0, 30.0, 30.0)];
    let result = photo.crops(Some(&outside), 8, None, &mut dec, &mut [0u8; 8 * 8 * 3]);
    assert!(matches!(result, Err(Error::InvalidArgument { .. })));
    Ok(())
}

#[test]
fn a_region_ending_at_the_edge_by_float_noise_still_crops() -> TestResult {
    // a pill_crop region flush with the corner: in the decoded window's coordinates
    // (373.6 - 370) + 114.4 passes the window's edge by float noise
    let rgb = synthetic_rgb(W, H, 9);
    let data = jpeg(&rgb, W, H)?;
    let mut dec = PhotoDecoder::new()?;
    let region = [CropRect::new(373.6, 525.6, 114.4, 114.4)];
    let mut photo = open(&data[..], &mut dec)?;
    crops_of(&mut photo, Some(&region), 64, Some(480), &mut dec)?;
    // mirrored (EXIF 3), it starts at 488 - 373.6 - 114.4 = -2.8e-14 unless clamped
    let mut turned = open(with_orientation(&data, 3), &mut dec)?;
    let mut out = vec![0u8; 64 * 64 * 3];
    turned.crops(Some(&region), 64, Some(480), &mut dec, &mut out)?;
    Ok(())
}

#[test]
fn trim_frees_only_what_a_large_photo_grew() -> TestResult {
    let mut dec = PhotoDecoder::new()?;
    dec.stage.reserve(KEEP_BYTES + 1);
    dec.upright.reserve(1024);
    dec.trim();
    assert_eq!(dec.stage.capacity(), 0);
    assert!(dec.upright.capacity() >= 1024);
    Ok(())
}
