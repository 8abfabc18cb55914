//! Tests of the whole crate: against a naive RFC 9162 reference, published vectors, the C2SP
//! specifications' examples, and random runs.

mod export;
mod notes;
mod property;
mod reference;
mod tiles;
mod vectors;

use crate::hash::Hash;

/// SplitMix64: a small deterministic generator, so every run tests the same cases.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for tests; `n > 0`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Entry `i` of the test logs.
pub(crate) fn entry(i: u64) -> Vec<u8> {
    format!("{{\"seq\":{i},\"action\":\"user.create\"}}").into_bytes()
}

/// The same hash with one bit flipped.
pub(crate) fn flip(h: &Hash, bit: usize) -> Hash {
    let mut out = *h;
    out.0[(bit / 8) % 32] ^= 1 << (bit % 8);
    out
}

/// Decodes hexadecimal test vectors.
pub(crate) fn h(hex_text: &str) -> Hash {
    Hash::from_hex(hex_text).unwrap()
}
