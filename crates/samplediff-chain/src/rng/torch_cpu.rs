//! PyTorch's CPU `torch.randn` (float32), bit for bit.
//!
//! `torch.randn` fills through `normal_kernel` (`aten/src/ATen/native/cpu/DistributionTemplates.h`):
//! * **numel >= 16** (contiguous float32): `normal_fill_AVX2` — the x86-64 kernel even on AVX-512
//!   CPUs, because `normal_stub` is registered without an AVX-512 variant. It writes `numel` float
//!   uniforms, turns each block of 16 into 8 Box–Muller pairs with the Cephes polynomials of
//!   [`super::cephes`], and, when `numel % 16 != 0`, draws 16 *fresh* uniforms for the last 16
//!   slots and transforms those again (the "tail rule").
//! * **numel < 16**: element by element through `normal_distribution<double>`: two 53-bit
//!   uniforms, `log1p`, `sin`/`cos` in f64, the sine cached *in the generator* for the next
//!   element (and the next call), then a cast to f32.
//!
//! The f64 path uses Rust's `ln_1p`/`sin`/`cos`, which on linux-gnu are the same glibc functions
//! torch calls; on other targets (wasm uses a musl-derived libm) they could differ in a rare last
//! f64 bit, which almost never survives the final rounding to f32.

use super::cephes::{log_ps, sincos_ps};
use super::mt19937::Mt19937;

/// `normal_fill_16_AVX2`'s constant: `2.0f * c10::pi<double>` rounded to f32.
const TWO_PI_F32: f32 = std::f32::consts::TAU;

/// The state of `torch.Generator("cpu")` that `randn` touches: the engine and the cached second
/// Box–Muller value of the double path.
#[derive(Clone, Debug)]
pub struct TorchCpuGenerator {
    engine: Mt19937,
    next_double_normal: Option<f64>,
}

impl TorchCpuGenerator {
    /// `torch.manual_seed(seed)` / `Generator.manual_seed(seed)`: a fresh engine seeded with the
    /// low 32 bits, and no cached normal.
    pub fn manual_seed(seed: u64) -> Self {
        Self { engine: Mt19937::new(seed), next_double_normal: None }
    }

    /// `uniform_real_distribution<float>(0, 1)`: the low 24 bits of one draw, times 2^-24.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.engine.next_u32() & 0x00FF_FFFF) as f32 * (1.0 / 16_777_216.0)
    }

    /// `uniform_real_distribution<double>(0, 1)`: the low 53 bits of `random64()`, times 2^-53.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.engine.next_u64() & ((1u64 << 53) - 1)) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// One `normal_distribution<double>(0, 1)` sample, using and refilling the generator's cache.
    pub fn normal_f64(&mut self) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return cached.mul_add(1.0, 0.0); // `cached * stdv + mean`
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_double_normal = Some(r * theta.sin());
        (r * theta.cos()).mul_add(1.0, 0.0)
    }

    /// `torch.randn(numel, dtype=float32, generator=self)` on the CPU.
    pub fn randn(&mut self, numel: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; numel];
        self.randn_into(&mut out);
        out
    }

    /// [`Self::randn`] into a caller's buffer (its length is the element count).
    pub fn randn_into(&mut self, out: &mut [f32]) {
        if out.len() >= 16 {
            self.normal_fill_vectorized(out);
        } else {
            for v in out.iter_mut() {
                *v = self.normal_f64() as f32;
            }
        }
    }

    /// `normal_fill_AVX2`: uniforms first, then Box–Muller per 16-block, then the tail rule.
    fn normal_fill_vectorized(&mut self, data: &mut [f32]) {
        let n = data.len();
        for v in data.iter_mut() {
            *v = self.uniform_f32();
        }
        for block in data.chunks_exact_mut(16) {
            fill16(block);
        }
        if !n.is_multiple_of(16) {
            let tail = &mut data[n - 16..];
            for v in tail.iter_mut() {
                *v = self.uniform_f32();
            }
            fill16(tail);
        }
    }
}

/// `normal_fill_16_AVX2` with mean 0 and std 1: lanes j and j+8 hold one uniform pair and receive
/// `r·cos θ` and `r·sin θ`.
fn fill16(d: &mut [f32]) {
    debug_assert_eq!(d.len(), 16);
    for j in 0..8 {
        let u1 = 1.0 - d[j];
        let u2 = d[j + 8];
        let radius = (-2.0 * log_ps(u1)).sqrt();
        let theta = TWO_PI_F32 * u2;
        let (sin, cos) = sincos_ps(theta);
        // `_mm256_fmadd_ps(n, std, mean)`: also turns -0.0 into +0.0.
        d[j] = (radius * cos).mul_add(1.0, 0.0);
        d[j + 8] = (radius * sin).mul_add(1.0, 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[&str]) -> Vec<f32> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// The spec's §10.5 values (printed by torch as shortest round-trip f32).
    #[test]
    fn seed_zero_scalar_path_matches_the_spec_example() {
        let got = TorchCpuGenerator::manual_seed(0).randn(5);
        assert_eq!(got, f(&["1.5409961", "-0.2934289", "-2.1787894", "0.56843126", "-1.0845224"]));
    }

    #[test]
    fn seed_zero_vector_path_matches_the_spec_example() {
        let got = TorchCpuGenerator::manual_seed(0).randn(16);
        let want = f(&[
            "-1.1258398", "-1.1523602", "-0.25057858", "-0.4338788", "0.84871036", "0.69200915", "-0.31601277",
            "-2.1152194",
        ]);
        assert_eq!(&got[..8], &want[..]);
    }

    #[test]
    fn the_double_path_cache_carries_over_to_the_next_call() {
        let mut one = TorchCpuGenerator::manual_seed(3);
        let mut a = one.randn(3);
        a.extend(one.randn(3));
        let b = TorchCpuGenerator::manual_seed(3).randn(6);
        assert_eq!(a, b);
    }

    #[test]
    fn the_tail_overwrites_the_last_sixteen_with_fresh_uniforms() {
        // 20 elements: the first 4 come from the full block of a 16-element draw; the last 16 are
        // a fill16 of uniforms 20..36 of the stream.
        let full = TorchCpuGenerator::manual_seed(11).randn(20);
        let block = TorchCpuGenerator::manual_seed(11).randn(16);
        assert_eq!(&full[..4], &block[..4]);

        let mut g = TorchCpuGenerator::manual_seed(11);
        for _ in 0..20 {
            g.uniform_f32();
        }
        let mut tail: Vec<f32> = (0..16).map(|_| g.uniform_f32()).collect();
        fill16(&mut tail);
        assert_eq!(&full[4..], &tail[..]);
    }
}
