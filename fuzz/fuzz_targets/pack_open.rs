//! Opens arbitrary bytes as a pack and reads every record, box and checksum.
//!
//! The first input byte chooses whether the pack's checksums are recomputed first: random
//! bytes almost never carry a valid CRC, and without resealing the fuzzer would stop at the
//! header checksum instead of reaching the index and bounds checks behind it.

#![no_main]

use _native::pack::fuzzing::{exercise, reseal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((flag, rest)) if flag & 1 == 1 => {
            let mut bytes = rest.to_vec();
            reseal(&mut bytes);
            exercise(&bytes);
        }
        Some((_, rest)) => {
            exercise(rest);
        }
        None => {}
    }
});
