// What the fused kernels share about values, put before fused_metrics.wgsl and order_stats.wgsl
// by crates/samplediff-gpu (WGSL has no includes).
//
// A tiny value is finite, not zero and below 2^-100 in magnitude. GPUs may flush such inputs,
// or differences of them, to zero (an H100 through Vulkan does), and no shader language asks
// for denormals to be kept; above the bound every difference of two values is zero or normal.
// Both kernels leave the pairs with a tiny input to the host.

const EXP_MASK: u32 = 0x7f800000u;
const MAG_MASK: u32 = 0x7fffffffu;
// 2^-100 as f32 bits.
const TINY: u32 = 0x0d800000u;

// Whether f32 bits are a finite value.
fn finite(bits: u32) -> bool {
    return (bits & EXP_MASK) != EXP_MASK;
}

// Whether f32 bits are a tiny value.
fn tiny(bits: u32) -> bool {
    let m = bits & MAG_MASK;
    return m != 0u && m < TINY;
}

// The same per lane.
fn tiny4(v: vec4<u32>) -> vec4<bool> {
    return (v & vec4<u32>(MAG_MASK)) - vec4<u32>(1u) < vec4<u32>(TINY - 1u);
}

// f16 bits to the f32 bits of the same value, exactly: a subnormal f16 is a normal f32, and
// a hardware conversion might flush it.
fn f16_bits(h: u32) -> u32 {
    let s = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if e == 0x1fu {
        return s | EXP_MASK | (m << 13u);
    }
    if e != 0u {
        return s | ((e + 112u) << 23u) | (m << 13u);
    }
    if m == 0u {
        return s;
    }
    return s | bitcast<u32>(f32(m) * 5.9604644775390625e-8);
}
