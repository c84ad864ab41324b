//! The engine's random number generators, in one place.
//!
//! Every random draw in the engine must be reproducible from its seed on any thread, in any
//! process and on any rank, so the generators are spelled out here instead of taken from a
//! crate whose streams could change with a version bump. Their output sequences are pinned
//! by the tests below: shuffles and augmentations of existing runs depend on them.
//!
//! - [`SplitMix64`] (Steele, Lea and Flood): a 64-bit counter through a mixing function.
//!   The loader shuffles with it, and it expands seeds for the other generator.
//! - [`Xoshiro256pp`] (Blackman and Vigna): xoshiro256++, a higher-quality stream for the
//!   per-sample augmentation draws, seeded through SplitMix64 as Vigna recommends.

/// SplitMix64's increment (2^64 / golden ratio).
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast, and enough for shuffles that must be identical on every rank.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// Uniform in `0..n` by Lemire's multiply-shift *without* rejection: the bias is below
    /// 2^-32 for the sizes the loader shuffles, and adding rejection now would change every
    /// existing shuffle. (`Xoshiro256pp::below` rejects; its callers need exactness.)
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// xoshiro256++: a 256-bit state, 64-bit outputs.
#[derive(Debug, Clone)]
pub struct Xoshiro256pp {
    s: [u64; 4],
}

impl Xoshiro256pp {
    /// The state expanded from `key` by SplitMix64 (never all zero, as xoshiro requires).
    pub fn from_key(key: u64) -> Self {
        let mut sm = SplitMix64::new(key);
        Xoshiro256pp {
            s: [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi), like `torch.empty(1).uniform_(lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Uniform integer in [0, n) without modulo bias (Lemire's method); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from the generators as they were when they moved here (issue 12): a change
    // to any of these numbers changes every shuffle or augmentation drawn from a seed.

    #[test]
    fn splitmix64_stream_is_pinned() {
        let mut sm = SplitMix64::new(42);
        let words: Vec<u64> = (0..3).map(|_| sm.next_u64()).collect();
        assert_eq!(
            words,
            [
                0xbdd7_3226_2feb_6e95,
                0x28ef_e333_b266_f103,
                0x4752_6757_130f_9f52
            ]
        );
        let draws: Vec<u64> = (0..3).map(|_| sm.below(1000)).collect();
        assert_eq!(draws, [344, 38, 868]);
    }

    #[test]
    fn xoshiro256pp_stream_is_pinned() {
        // The key `augment::sample_rng` derives for (seed, epoch, index) = (1, 2, 3).
        let mut rng = Xoshiro256pp::from_key(0x34a1_cba3_2212_15f6);
        let words: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            words,
            [
                0x34fa_cf3d_6840_b3de,
                0xa80d_60a5_4e95_92f4,
                0x723e_170d_1241_fc3a
            ]
        );
        let draws: Vec<u64> = (0..3).map(|_| rng.below(1000)).collect();
        assert_eq!(draws, [704, 93, 677]);
    }

    #[test]
    fn uniform_and_below_stay_in_range() {
        let mut rng = Xoshiro256pp::from_key(0);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            let u = rng.next_f64();
            assert!((0.0..1.0).contains(&u));
            counts[rng.below(5) as usize] += 1;
        }
        // Each bucket expects 10,000; 5 sigma is about 450.
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }
}
