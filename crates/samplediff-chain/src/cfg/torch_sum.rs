//! `torch.sum` of a contiguous float32 row on the CPU, in torch's exact accumulation order.
//!
//! ATen's `sum` kernel (`aten/src/ATen/native/cpu/SumKernel.cpp`) is registered without an AVX-512
//! variant, so on every x86-64 CPU with AVX2 it runs with 8-lane float vectors
//! (`Vectorized<float>`), whatever `torch.backends.cpu.get_cpu_capability()` reports. For a row of
//! `n` elements it
//!
//! 1. views the first `8 * (n / 8)` elements as vectors and sums them with `row_sum`: four
//!    interleaved vector accumulators (`ilp_factor = 4`) fed through `multi_row_sum`'s cascade of
//!    four levels (chunks of `2^max(4, ceil(log2(rows)) / 4)` rows), the leftover vectors added to
//!    the first accumulator, then accumulators 1..3 added to it;
//! 2. starts a scalar at 0, adds the `n % 8` tail elements in order, then the 8 lanes in order.
//!
//! That is reproduced here on the host, so the result is the same on every backend. It is torch's
//! result for a single-threaded reduction: below `at::internal::GRAIN_SIZE` (32768) elements, or
//! with `torch.set_num_threads(1)`. Larger reductions are split across torch's threads, which
//! changes the order with the thread count. Verified against ComfyUI's CFGZeroStar on 480-element
//! latents (`tests/sampler_refs.rs`), where float64 or naive sequential sums miss by 1–6 ulp.

/// Lanes of `at::vec::Vectorized<float>` in the AVX2 kernels torch dispatches `sum` to.
pub const LANES: usize = 8;

/// `torch.sum(values)` for a contiguous float32 row, single-threaded, as torch's CPU kernel sums.
pub fn torch_cpu_sum(values: &[f32]) -> f32 {
    let vectors = values.len() / LANES;
    let lanes = row_sum(vectors, |i| lane_vector(values, i));
    let mut total = 0.0f32;
    for &v in &values[vectors * LANES..] {
        total += v;
    }
    for lane in lanes {
        total += lane;
    }
    total
}

type Vector = [f32; LANES];

fn lane_vector(values: &[f32], index: usize) -> Vector {
    let mut v = [0.0f32; LANES];
    v.copy_from_slice(&values[index * LANES..(index + 1) * LANES]);
    v
}

fn add(a: &mut Vector, b: &Vector) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += *y;
    }
}

/// `row_sum<Vectorized<float>>` over `size` vectors.
// Index loops mirror ATen's summation order statement for statement.
#[allow(clippy::needless_range_loop)]
fn row_sum(size: usize, load: impl Fn(usize) -> Vector) -> Vector {
    const ILP: usize = 4;
    let size_ilp = size / ILP;
    let mut partial = multi_row_sum(size_ilp, |row, k| load(row * ILP + k));
    for i in size_ilp * ILP..size {
        let v = load(i);
        add(&mut partial[0], &v);
    }
    for k in 1..ILP {
        let v = partial[k];
        add(&mut partial[0], &v);
    }
    partial[0]
}

/// `multi_row_sum<Vectorized<float>, 4>`: four columns summed over `size` rows with the cascade.
// Index loops mirror ATen's cascade (levels x rows) statement for statement.
#[allow(clippy::needless_range_loop)]
fn multi_row_sum(size: usize, load: impl Fn(usize, usize) -> Vector) -> [Vector; 4] {
    const LEVELS: usize = 4;
    const ROWS: usize = 4;
    let level_power = 4usize.max(ceil_log2(size) / LEVELS);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = [[[0.0f32; LANES]; ROWS]; LEVELS];
    let mut i = 0;
    while i + level_step <= size {
        for _ in 0..level_step {
            for (k, a) in acc[0].iter_mut().enumerate() {
                add(a, &load(i, k));
            }
            i += 1;
        }
        for j in 1..LEVELS {
            for k in 0..ROWS {
                let lower = acc[j - 1][k];
                add(&mut acc[j][k], &lower);
                acc[j - 1][k] = [0.0; LANES];
            }
            let mask = level_mask << (j * level_power);
            if i & mask != 0 {
                break;
            }
        }
    }
    while i < size {
        for (k, a) in acc[0].iter_mut().enumerate() {
            add(a, &load(i, k));
        }
        i += 1;
    }
    for j in 1..LEVELS {
        for k in 0..ROWS {
            let upper = acc[j][k];
            add(&mut acc[0][k], &upper);
        }
    }
    acc[0]
}

/// `c10::utils::CeilLog2` (0 for 0 and 1).
fn ceil_log2(x: usize) -> usize {
    if x <= 1 { 0 } else { (usize::BITS - (x - 1).leading_zeros()) as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_rows_are_a_plain_running_sum() {
        // Fewer than 8 elements: no vectors, the tail loop alone.
        let v = [1.0e8f32, 1.0, -1.0e8, 1.0];
        assert_eq!(torch_cpu_sum(&v), ((1.0e8f32 + 1.0) + -1.0e8) + 1.0);
    }

    #[test]
    fn lanes_are_summed_separately_before_the_tail() {
        // 8 lanes hold 1e8 and seven 1s, the tail holds -1e8: lanes first would lose the ones,
        // but torch adds the tail first (0 + -1e8), then the lanes in order.
        let mut v = vec![1.0f32; 9];
        v[0] = 1.0e8;
        v[8] = -1.0e8;
        let expected = {
            let mut t = 0.0f32 + -1.0e8;
            for lane in &v[..8] {
                t += lane;
            }
            t
        };
        assert_eq!(torch_cpu_sum(&v), expected);
    }

    #[test]
    fn exact_on_integers_for_every_length() {
        for n in [0usize, 1, 7, 8, 31, 32, 33, 480, 1000, 4097, 70_000] {
            let v: Vec<f32> = (0..n).map(|i| (i % 17) as f32).collect();
            let exact: f64 = v.iter().map(|&x| x as f64).sum();
            assert_eq!(torch_cpu_sum(&v) as f64, exact, "n = {n}");
        }
    }

    #[test]
    fn ceil_log2_matches_c10() {
        assert_eq!([0, 1, 2, 3, 4, 5, 8, 9].map(ceil_log2), [0, 0, 1, 2, 2, 3, 3, 4]);
    }
}
