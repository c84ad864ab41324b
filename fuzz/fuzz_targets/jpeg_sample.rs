//! Feeds arbitrary bytes to the training and eval sample paths (header, crop-before-decode,
//! DCT scaling, resize, flip): any input must give Ok or an error, never a crash.
//!
//! The first byte picks the output size (8..=71 px) and the epoch, so crops of every
//! geometry reach the decoder's window planning.

#![no_main]

use _native::resize::Layout;
use _native::sample::SampleDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((knob, jpeg)) = data.split_first() else {
        return;
    };
    let Ok(mut decoder) = SampleDecoder::new() else {
        return;
    };
    let size = 8 + u32::from(knob & 0x3F);
    let mut out = vec![0u8; (size * size * 3) as usize];
    let epoch = u64::from(knob >> 6);
    let _ = decoder.load_train_sample(jpeg, size, (1, epoch, 7), Layout::Hwc, &mut out);
    let _ = decoder.load_eval_sample(jpeg, size, Layout::Chw, &mut out);
});
