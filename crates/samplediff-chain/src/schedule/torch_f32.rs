//! Stand-ins for torch's float32 CPU `pow`, `exp` and `tan`, used by karras, exponential and
//! kl_optimal.
//!
//! ULP policy: torch evaluates these with vectorised approximations (SLEEF or MKL VML, chosen by
//! how the wheel was built, in chunks whose boundaries depend on the CPU's vector width; `pow`'s
//! scalar remainder loop instead calls the f64 `std::pow` and rounds). Their results are within
//! 1 ulp of the true value but not reproducible without the exact library. We return the
//! **correctly rounded** float32 result (the f64 function rounded once, which is within 1 ulp of
//! it), so each value is within 1 ulp of torch's; the golden tests assert exactly that bound for
//! these three schedulers and bit-exactness for all others.

/// float32 `tensor ** exponent` (exponent a Python float other than the special-cased ones).
pub fn pow(base: f32, exponent: f64) -> f32 {
    (base as f64).powf(exponent) as f32
}

/// float32 `tensor.exp()`.
pub fn exp(x: f32) -> f32 {
    (x as f64).exp() as f32
}

/// float32 `tensor.tan()`.
pub fn tan(x: f32) -> f32 {
    (x as f64).tan() as f32
}
