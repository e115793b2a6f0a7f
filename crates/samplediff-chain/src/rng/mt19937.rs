//! The Mersenne Twister exactly as PyTorch's CPU generator runs it
//! (`aten/src/ATen/core/MT19937RNGEngine.h`).
//!
//! Its 32-bit output stream is the reference MT19937 `genrand_int32`; what is torch-specific is
//! the seeding: `torch.manual_seed` accepts any `u64`, but only the **low 32 bits** reach
//! `init_genrand`, so seeds that differ only above bit 31 give identical CPU noise.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_B0DF;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7FFF_FFFF;

/// MT19937 state: 624 words plus torch's `left`/`next` cursor.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; N],
    /// Words left before the next twist, counted torch's way (starts at 1, so the first draw twists).
    left: usize,
    next: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mt19937").field("left", &self.left).field("next", &self.next).finish_non_exhaustive()
    }
}

impl Mt19937 {
    /// Seeds like `at::mt19937(seed)`: `init_genrand(seed & 0xFFFF_FFFF)`.
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; N];
        state[0] = seed as u32; // the low 32 bits: torch's documented-by-code truncation
        for j in 1..N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(j as u32);
        }
        Self { state, left: 1, next: 0 }
    }

    /// One tempered 32-bit output (`mt19937::operator()`).
    pub fn next_u32(&mut self) -> u32 {
        self.left -= 1;
        if self.left == 0 {
            self.twist();
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C_5680;
        y ^= (y << 15) & 0xEFC6_0000;
        y ^= y >> 18;
        y
    }

    /// `CPUGeneratorImpl::random64`: the first draw is the high word.
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        let lo = self.next_u32() as u64;
        (hi << 32) | lo
    }

    /// Regenerates all 624 words in place (sequentially, so later words see updated earlier ones).
    fn twist(&mut self) {
        let s = &mut self.state;
        for k in 0..N {
            let y = (s[k] & UPPER_MASK) | (s[(k + 1) % N] & LOWER_MASK);
            let mag = if s[(k + 1) % N] & 1 != 0 { MATRIX_A } else { 0 };
            s[k] = s[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.left = N;
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C++ [rand.predef]: the 10000th output of `std::mt19937` default-constructed (seed 5489)
    /// is 4123659995 — the standard's own conformance value.
    #[test]
    fn matches_the_cpp_standard_conformance_value() {
        let mut mt = Mt19937::new(5489);
        let first = mt.next_u32();
        assert_eq!(first, 3_499_211_612);
        let mut last = first;
        for _ in 1..10_000 {
            last = mt.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn only_the_low_32_bits_of_the_seed_count() {
        let mut a = Mt19937::new(42);
        let mut b = Mt19937::new((1u64 << 32) + 42);
        let mut c = Mt19937::new(u64::MAX);
        let mut d = Mt19937::new(0xFFFF_FFFF);
        for _ in 0..2000 {
            assert_eq!(a.next_u32(), b.next_u32());
            assert_eq!(c.next_u32(), d.next_u32());
        }
    }

    #[test]
    fn random64_is_high_word_first() {
        let mut a = Mt19937::new(7);
        let mut b = Mt19937::new(7);
        let hi = a.next_u32() as u64;
        let lo = a.next_u32() as u64;
        assert_eq!(b.next_u64(), (hi << 32) | lo);
    }
}
