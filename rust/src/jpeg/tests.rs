//! Tests of the decoder and encoder, on synthetic images.

use super::*;
use crate::testutil::{crop_rgb, mae, synthetic_rgb};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const W: u32 = 480;
const H: u32 = 629;

fn encode(sub: Subsampling, progressive: bool) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let rgb = synthetic_rgb(W, H, 1);
    let options = EncodeOptions {
        quality: 92,
        subsampling: sub,
        progressive,
    };
    let jpeg = JpegEncoder::new()?.encode(&rgb, W, H, &options)?;
    Ok((rgb, jpeg))
}

const KINDS: [(Subsampling, bool); 5] = [
    (Subsampling::S420, false),
    (Subsampling::S422, false),
    (Subsampling::S444, false),
    (Subsampling::Gray, false),
    (Subsampling::S420, true),
];

#[test]
fn header_reports_what_was_encoded() -> TestResult {
    let mut dec = JpegDecoder::new()?;
    for (sub, progressive) in KINDS {
        let (_, jpeg) = encode(sub, progressive)?;
        let header = dec.header(&jpeg)?;
        assert_eq!((header.width, header.height), (W, H));
        assert_eq!(header.subsampling, sub);
        assert_eq!(header.progressive, progressive);
        let cs = if sub == Subsampling::Gray {
            ColorSpace::Gray
        } else {
            ColorSpace::YCbCr
        };
        assert_eq!(header.colorspace, cs);
    }
    Ok(())
}

#[test]
fn full_decode_round_trips_every_kind() -> TestResult {
    let mut dec = JpegDecoder::new()?;
    for (sub, progressive) in KINDS {
        let (rgb, jpeg) = encode(sub, progressive)?;
        let (pixels, w, h) = dec.decode_rgb(&jpeg)?;
        assert_eq!((w, h), (W, H));
        if sub == Subsampling::Gray {
            // Grey comes back as RGB with the three channels equal.
            assert!(pixels.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        } else {
            // Quality 92 on this content: a few levels of error on average.
            let err = mae(&pixels, &rgb);
            assert!(err < 4.0, "{sub:?} progressive={progressive}: MAE {err}");
        }
    }
    Ok(())
}

#[test]
fn unscaled_crop_equals_full_decode_then_crop() -> TestResult {
    let mut dec = JpegDecoder::new()?;
    let crops = [
        (0, 0, W, H),
        (37, 101, 250, 300),
        (200, 0, 280, 17),
        (1, 500, 479, 129),
    ];
    for (sub, progressive) in KINDS {
        let (_, jpeg) = encode(sub, progressive)?;
        let (full, _, _) = dec.decode_rgb(&jpeg)?;
        for (x, y, w, h) in crops {
            let rect = CropRect::new(f64::from(x), f64::from(y), f64::from(w), f64::from(h));
            // A target as large as the crop rules out DCT scaling.
            let win = dec.decode_window(&jpeg, rect, 0.0, w, h)?;
            assert_eq!(win.scale, ScalingFactor::ONE);
            assert_eq!((win.view_w, win.view_h), (w, h));
            assert_eq!(
                (win.crop.x, win.crop.y, win.crop.w, win.crop.h),
                (0.0, 0.0, f64::from(w), f64::from(h))
            );
            let view = crop_rgb(win.pixels, win.width, win.view_x, win.view_y, w, h);
            let expected = crop_rgb(&full, W, x, y, w, h);
            // Fancy chroma upsampling sees an edge at the decoded region's border, so a
            // column or two next to it can differ slightly; everything else is identical.
            let err = mae(&view, &expected);
            assert!(
                err < 0.5,
                "{sub:?} {progressive} crop {x},{y},{w},{h}: MAE {err}"
            );
        }
    }
    Ok(())
}

#[test]
fn scaling_factor_choice() -> TestResult {
    let dec = JpegDecoder::new()?;
    let one = ScalingFactor::ONE;
    let f = |num, denom| ScalingFactor { num, denom };
    assert_eq!(dec.choose_scale(480.0, 629.0, 384, 384), one);
    assert_eq!(dec.choose_scale(767.0, 900.0, 384, 384), one);
    assert_eq!(dec.choose_scale(768.0, 900.0, 384, 384), f(1, 2));
    assert_eq!(dec.choose_scale(1600.0, 1700.0, 384, 384), f(1, 4));
    assert_eq!(dec.choose_scale(4000.0, 3100.0, 384, 384), f(1, 8));
    assert_eq!(
        dec.choose_scale(100.0, 100.0, 384, 384),
        one,
        "upscaling stays 1/1"
    );
    let eighths = JpegDecoder::with_policy(ScalePolicy::Eighths)?;
    assert_eq!(eighths.choose_scale(480.0, 600.0, 384, 384), f(7, 8));
    assert_eq!(eighths.choose_scale(400.0, 400.0, 384, 384), one);
    let off = JpegDecoder::with_policy(ScalePolicy::Off)?;
    assert_eq!(off.choose_scale(4000.0, 4000.0, 384, 384), one);
    Ok(())
}

#[test]
fn scaled_window_keeps_the_crop_geometry() -> TestResult {
    // A 1920x1600 image, crop 1000x900 at (301, 157) to 384: scaled by 1/2.
    let rgb = synthetic_rgb(1920, 1600, 3);
    let jpeg = JpegEncoder::new()?.encode_rgb(&rgb, 1920, 1600, 90, Subsampling::S420)?;
    let mut dec = JpegDecoder::new()?;
    let crop = CropRect::new(301.0, 157.0, 1000.0, 900.0);
    let win = dec.decode_window(&jpeg, crop, 0.0, 384, 384)?;
    assert_eq!(win.scale, ScalingFactor { num: 1, denom: 2 });
    // Scaled crop: x 150.5, y 78.5, 500 x 450; view = pixels 150..651 x 78..529.
    assert_eq!((win.view_w, win.view_h), (501, 451));
    assert_eq!(
        (win.crop.x, win.crop.y, win.crop.w, win.crop.h),
        (0.5, 0.5, 500.0, 450.0)
    );
    // Decoded columns start at a scaled iMCU boundary (16 px * 1/2 = 8).
    assert_eq!((150 - win.view_x) % 8, 0);
    assert_eq!(win.view_y, 0);
    assert_eq!(win.height, 451);
    Ok(())
}

#[test]
fn cmyk_is_unsupported() -> TestResult {
    let cmyk: Vec<u8> = (0..32 * 16 * 4).map(|i| (i * 7 % 251) as u8).collect();
    let jpeg = JpegEncoder::new()?.encode_cmyk(&cmyk, 32, 16)?;
    let mut dec = JpegDecoder::new()?;
    assert_eq!(dec.header(&jpeg)?.colorspace, ColorSpace::Ycck);
    for result in [
        dec.decode_rgb(&jpeg).map(|_| ()),
        dec.decode_window(&jpeg, CropRect::full(32, 16), 0.0, 8, 8)
            .map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(Error::UnsupportedJpeg { .. })),
            "{result:?}"
        );
    }
    Ok(())
}

#[test]
fn corrupt_and_truncated_data_are_errors_not_panics() -> TestResult {
    let (_, jpeg) = encode(Subsampling::S420, false)?;
    let (_, progressive) = encode(Subsampling::S420, true)?;
    let mut flipped = jpeg.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 64] {
        *b ^= 0x5A;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not a jpeg", b"hello, world".to_vec()),
        ("SOI+EOI only", vec![0xFF, 0xD8, 0xFF, 0xD9]),
        ("header only", jpeg[..600].to_vec()),
        ("truncated half", jpeg[..jpeg.len() / 2].to_vec()),
        (
            "truncated progressive",
            progressive[..progressive.len() * 2 / 3].to_vec(),
        ),
        ("bit flips", flipped),
    ];
    let mut dec = JpegDecoder::new()?;
    // Rows below a crop are never read, so damage there goes unseen (by design): only a
    // crop that reaches the last row must see every defect.
    let tall = CropRect::new(10.0, 20.0, 300.0, f64::from(H - 20));
    let small = CropRect::new(10.0, 20.0, 100.0, 50.0);
    for (name, data) in cases {
        let full = dec.decode_rgb(&data);
        assert!(
            matches!(full, Err(Error::CorruptJpeg { .. })),
            "{name}: {full:?}"
        );
        let win = dec.decode_window(&data, tall, 0.0, 224, 224).map(|_| ());
        assert!(
            matches!(win, Err(Error::CorruptJpeg { .. })),
            "{name}: {win:?}"
        );
        let _ = dec.decode_window(&data, small, 0.0, 64, 64).map(|_| ());
    }
    // The decoder is still usable after errors.
    assert_eq!(dec.decode_rgb(&jpeg)?.1, W);
    Ok(())
}

#[test]
fn crop_outside_image_is_invalid_argument() -> TestResult {
    let (_, jpeg) = encode(Subsampling::S420, false)?;
    let mut dec = JpegDecoder::new()?;
    for crop in [
        CropRect::new(400.0, 0.0, 100.0, 10.0),
        CropRect::new(0.0, 0.0, 0.0, 10.0),
        CropRect::new(-1.0, 0.0, 10.0, 10.0),
        CropRect::new(0.0, 0.0, f64::NAN, 10.0),
    ] {
        let result = dec.decode_window(&jpeg, crop, 0.0, 10, 10).map(|_| ());
        assert!(
            matches!(result, Err(Error::InvalidArgument { .. })),
            "{crop:?}"
        );
    }
    Ok(())
}

#[test]
fn encoder_rejects_bad_arguments() -> TestResult {
    let mut enc = JpegEncoder::new()?;
    let rgb = vec![0u8; 8 * 8 * 3];
    assert!(enc.encode_rgb(&rgb, 8, 8, 0, Subsampling::S420).is_err());
    assert!(enc.encode_rgb(&rgb, 8, 9, 90, Subsampling::S420).is_err());
    assert!(enc
        .encode_rgb(&rgb, 8, 8, 90, Subsampling::Unknown)
        .is_err());
    assert!(enc.encode_rgb(&rgb, 8, 8, 90, Subsampling::S444).is_ok());
    Ok(())
}
