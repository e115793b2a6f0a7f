//! `torch.linspace` for float32 on the CPU, bit for bit.
//!
//! The kernel (`aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp`) rounds start and end to f32,
//! computes `step = (end − start) / (steps − 1)` in f32 and fills the first half forwards from
//! `start` and the second half backwards from `end`; the compiler fuses `start + step·i` and
//! `end − step·(steps−1−i)` into FMAs, which is what makes the last bits come out as they do
//! (the non-fused formula matched torch in only ~28% of random cases).

/// `torch.linspace(start, end, steps, dtype=torch.float32)` (CPU).
pub fn linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    match steps {
        0 => Vec::new(),
        1 => vec![start], // `linspace_out` fills with start when steps == 1
        _ => {
            let step = (end - start) / (steps - 1) as f32;
            let halfway = steps / 2;
            (0..steps)
                .map(|i| {
                    if i < halfway {
                        step.mul_add(i as f32, start)
                    } else {
                        (-step).mul_add((steps - i - 1) as f32, end)
                    }
                })
                .collect()
        }
    }
}

/// `numpy.linspace(start, stop, num, endpoint=False)` in float64: `start + k·((stop−start)/num)`.
pub fn numpy_linspace_no_endpoint(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    let step = (stop - start) / num as f64;
    (0..num).map(|k| k as f64 * step + start).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_exact_and_sizes_are_right() {
        let v = linspace_f32(1.0, 0.003_093_503_6, 21);
        assert_eq!(v.len(), 21);
        assert_eq!(v[0], 1.0);
        assert_eq!(v[20], 0.003_093_503_6f32);
        assert_eq!(linspace_f32(3.0, 5.0, 1), vec![3.0]);
        assert!(linspace_f32(3.0, 5.0, 0).is_empty());
    }

    #[test]
    fn second_half_is_anchored_at_the_end() {
        // With an inexact step, the middle values differ depending on the anchor: check that the
        // upper half is computed from `end`.
        let v = linspace_f32(0.0, 1.0, 7);
        let step = 1.0f32 / 6.0;
        assert_eq!(v[2], step.mul_add(2.0, 0.0));
        assert_eq!(v[4], (-step).mul_add(2.0, 1.0));
    }

    #[test]
    fn numpy_linspace_without_endpoint() {
        assert_eq!(numpy_linspace_no_endpoint(0.0, 1.0, 4), vec![0.0, 0.25, 0.5, 0.75]);
        let v = numpy_linspace_no_endpoint(0.0, 1.0, 3);
        assert_eq!(v[2], 2.0 * (1.0 / 3.0));
    }
}
