// The fused main pass of `compare` (issue 8): every count, extreme and sum of two tensors
// from one read of both, written as one partial per tile; the host adds the partials in f64
// (crates/samplediff-gpu).
//
// The input is cut into tiles of TILE_WORDS 32-bit words (one f32, or two f16/bf16, a word).
// A workgroup owns one tile; its partial depends on the tile's bytes alone, never on how the
// input was split into bindings and dispatches or on the GPU's size, so the result is
// deterministic. Full tiles are read as vec4<u32> (16-byte loads, coalesced across the
// workgroup); the last, partial tile goes word by word through a u32 view of the same range.
//
// Definitions follow samplediff-metrics' Moments: value metrics over pairs where both sides are
// finite; close = torch.isclose(a, b, rtol, atol, equal_nan=True); rel = |a-b|/|b| for b != 0.
// NaN and Inf are told apart by their bits; the one float test of finiteness, |v| <= the
// largest float, is an ordered compare, false for NaN (no fast-math flags let a driver fold it).
// The host puts values.wgsl (tiny values, exact f16 decoding) before this module and appends
// one of: fused_metrics_f64.wgsl (exact tolerance test in f64) or fused_metrics_f32.wgsl (f32
// test, counting the pairs it could not decide).

const WG: u32 = 256u;
const ITERS: u32 = 16u;
const TILE_VEC4: u32 = 4096u; // WG * ITERS
const TILE_WORDS: u32 = 16384u; // TILE_VEC4 * 4
const PARTIAL_WORDS: u32 = 24u;

const DT_F32: u32 = 0u;
const DT_F16: u32 = 1u;
const DT_BF16: u32 = 2u;

const F32_MAX: f32 = 3.4028234663852886e38;

// A pair is sent to close_exact when |d - tol| is within this fraction of tol: far more than
// the f32 rounding of d and tol (a few 2^-24), so every other decision equals the f64 one.
const EDGE: f32 = 9.5367431640625e-7; // 2^-20
const EDGE_ABS: f32 = 1e-30;

struct Params {
    // Words and elements of the tensor in this binding.
    words: u32,
    numel: u32,
    // Index of this binding's first tile among the tensor's tiles, and its tile count.
    first_tile: u32,
    tiles: u32,
    dtype: u32,
    rtol: f32,
    atol: f32,
    // Entries `specials` holds.
    cap: u32,
}

@group(0) @binding(0) var<storage, read> a4: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> a1: array<u32>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> b1: array<u32>;
@group(0) @binding(4) var<storage, read_write> partials: array<u32>;
@group(0) @binding(5) var<uniform> params: Params;
// Pairs left to the host (word 0: how many; then (first_tile, element in binding) each).
@group(0) @binding(7) var<storage, read_write> specials: array<atomic<u32>>;

// One invocation's accumulators. Counts are packed two to a word (low | high << 16): a tile
// holds at most 32768 elements, so neither half can overflow.
var<private> n_fin_close: u32; // finite | close << 16
var<private> n_nan: u32; // nan_a | nan_b << 16
var<private> n_inf: u32; // inf_a | inf_b << 16
var<private> n_mis: u32; // nan_xor | inf_mismatch << 16
var<private> n_zero: u32; // b_zero | undecided << 16
var<private> s_ad: f32;
var<private> s_ad2: f32;
var<private> s_rel: f32;
// Sums of a - ka, b - kb, and their squares and product: the tile's first pair is the shift,
// which keeps the centred moments free of cancellation (the host un-shifts in f64).
var<private> s_a: f32;
var<private> s_b: f32;
var<private> s_aa: f32;
var<private> s_bb: f32;
var<private> s_ab: f32;
var<private> ka: f32;
var<private> kb: f32;
// Extremes with the pair that gave them: the host recomputes each in f64 from the pair, so
// max |a-b| equals the CPU's exactly, not its f32 rounding.
var<private> max_ad: f32 = -1.0;
var<private> max_ad_a: f32;
var<private> max_ad_b: f32;
var<private> min_nz: f32 = F32_MAX;
var<private> min_nz_a: f32;
var<private> min_nz_b: f32;
var<private> max_rel: f32 = -1.0;
var<private> max_rel_a: f32;
var<private> max_rel_b: f32;

fn bit(c: bool) -> u32 {
    return select(0u, 1u, c);
}

// Element `e` of this binding goes to the host.
fn leave(e: u32) {
    let i = atomicAdd(&specials[0], 1u);
    if i < params.cap {
        atomicStore(&specials[1u + 2u * i], params.first_tile);
        atomicStore(&specials[2u + 2u * i], e);
    }
}

// A pair of element `e`: left to the host when finite with a tiny input (values.wgsl), else
// counted.
fn pair_at(x: f32, y: f32, e: u32) {
    let bx = bitcast<u32>(x);
    let by = bitcast<u32>(y);
    if finite(bx) && finite(by) && (tiny(bx) || tiny(by)) {
        leave(e);
    } else {
        pair(x, y);
    }
}

// Both f16 of a word, exactly.
fn f16x2_exact(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(f16_bits(w & 0xffffu)), bitcast<f32>(f16_bits(w >> 16u)));
}

// Whether any of the eight f16 in four words is subnormal.
fn f16_subnormal(v: vec4<u32>) -> bool {
    let lo = (v & vec4<u32>(0x7c00u)) == vec4<u32>(0u) & (v & vec4<u32>(0x3ffu)) != vec4<u32>(0u);
    let hi = (v & vec4<u32>(0x7c000000u)) == vec4<u32>(0u) & (v & vec4<u32>(0x03ff0000u)) != vec4<u32>(0u);
    return any(lo) || any(hi);
}

// One pair of elements.
fn pair(x: f32, y: f32) {
    let bx = bitcast<u32>(x);
    let by = bitcast<u32>(y);
    let fx = (bx & EXP_MASK) != EXP_MASK;
    let fy = (by & EXP_MASK) != EXP_MASK;
    if fx && fy {
        let d = abs(x - y);
        let ay = abs(y);
        let tol = ay * params.rtol + params.atol;
        var close = d <= tol;
        if abs(d - tol) <= tol * EDGE + EDGE_ABS {
            close = close_exact(x, y);
        }
        let bz = (by & 0x7fffffffu) == 0u;
        n_fin_close += 1u + (bit(close) << 16u);
        n_zero += bit(bz);
        s_ad += d;
        s_ad2 += d * d;
        let rel = select(d / ay, 0.0, bz);
        s_rel += rel;
        if d > max_ad {
            max_ad = d;
            max_ad_a = x;
            max_ad_b = y;
        }
        if x != y && d < min_nz {
            min_nz = d;
            min_nz_a = x;
            min_nz_b = y;
        }
        if !bz && rel > max_rel {
            max_rel = rel;
            max_rel_a = x;
            max_rel_b = y;
        }
        let xa = x - ka;
        let yb = y - kb;
        s_a += xa;
        s_b += yb;
        s_aa += xa * xa;
        s_bb += yb * yb;
        s_ab += xa * yb;
    } else {
        // A NaN or an Inf on either side: counted, never summed.
        let nx = !fx && (bx & 0x007fffffu) != 0u;
        let ny = !fy && (by & 0x007fffffu) != 0u;
        let ix = !fx && !nx;
        let iy = !fy && !ny;
        let same_inf = ix && iy && bx == by;
        n_nan += bit(nx) + (bit(ny) << 16u);
        n_inf += bit(ix) + (bit(iy) << 16u);
        n_mis += bit(nx != ny) + (bit((ix || iy) && !same_inf) << 16u);
        n_fin_close += bit((nx && ny) || same_inf) << 16u;
    }
}

// Both elements of a word of f16 or bf16, the low one element `e` (`hi`: whether the high
// element is in the tensor).
fn pair_word16(wa: u32, wb: u32, hi: bool, e: u32) {
    if params.dtype == DT_BF16 {
        pair_at(bitcast<f32>(wa << 16u), bitcast<f32>(wb << 16u), e);
        if hi {
            pair_at(bitcast<f32>(wa & 0xffff0000u), bitcast<f32>(wb & 0xffff0000u), e + 1u);
        }
    } else {
        let fa = f16x2_exact(wa);
        let fb = f16x2_exact(wb);
        pair(fa.x, fb.x);
        if hi {
            pair(fa.y, fb.y);
        }
    }
}

// Four pairs at once (elements `e`): the common case (all eight values finite, none tiny)
// takes one branch-free path whose extremes are compared per quad and updated in a rarely taken
// branch; a quad holding a NaN, an Inf or a tiny value goes pair by pair.
fn quad(x: vec4<f32>, y: vec4<f32>, e: vec4<u32>) {
    // Finite is |v| <= the largest float (false for NaN and Inf): one compare a value.
    let most = vec4<f32>(F32_MAX);
    let small = tiny4(bitcast<vec4<u32>>(x)) | tiny4(bitcast<vec4<u32>>(y));
    if !(all(abs(x) <= most) && all(abs(y) <= most)) || any(small) {
        pair_at(x.x, y.x, e.x);
        pair_at(x.y, y.y, e.y);
        pair_at(x.z, y.z, e.z);
        pair_at(x.w, y.w, e.w);
        return;
    }
    let d = abs(x - y);
    let ay = abs(y);
    let tol = ay * params.rtol + params.atol;
    var close = d <= tol;
    if any(abs(d - tol) <= tol * EDGE + EDGE_ABS) {
        close = vec4<bool>(close_exact(x.x, y.x), close_exact(x.y, y.y), close_exact(x.z, y.z), close_exact(x.w, y.w));
    }
    let bz = (bitcast<vec4<u32>>(y) & vec4<u32>(0x7fffffffu)) == vec4<u32>(0u);
    let c = select(vec4<u32>(0u), vec4<u32>(1u), close);
    let z = select(vec4<u32>(0u), vec4<u32>(1u), bz);
    n_fin_close += 4u + ((c.x + c.y + c.z + c.w) << 16u);
    n_zero += z.x + z.y + z.z + z.w;
    s_ad += (d.x + d.y) + (d.z + d.w);
    s_ad2 += dot(d, d);
    let rel = select(d / ay, vec4<f32>(0.0), bz);
    s_rel += (rel.x + rel.y) + (rel.z + rel.w);

    if max(max(d.x, d.y), max(d.z, d.w)) > max_ad {
        for (var i = 0u; i < 4u; i++) {
            if d[i] > max_ad {
                max_ad = d[i];
                max_ad_a = x[i];
                max_ad_b = y[i];
            }
        }
    }
    let nz = select(vec4<f32>(F32_MAX), d, x != y);
    if min(min(nz.x, nz.y), min(nz.z, nz.w)) < min_nz {
        for (var i = 0u; i < 4u; i++) {
            if nz[i] < min_nz {
                min_nz = nz[i];
                min_nz_a = x[i];
                min_nz_b = y[i];
            }
        }
    }
    let rm = select(rel, vec4<f32>(-1.0), bz);
    if max(max(rm.x, rm.y), max(rm.z, rm.w)) > max_rel {
        for (var i = 0u; i < 4u; i++) {
            if rm[i] > max_rel {
                max_rel = rm[i];
                max_rel_a = x[i];
                max_rel_b = y[i];
            }
        }
    }

    let xa = x - vec4<f32>(ka);
    let yb = y - vec4<f32>(kb);
    s_a += (xa.x + xa.y) + (xa.z + xa.w);
    s_b += (yb.x + yb.y) + (yb.z + yb.w);
    s_aa += dot(xa, xa);
    s_bb += dot(yb, yb);
    s_ab += dot(xa, yb);
}

// Four words of each side, the first holding element `e`: four pairs of f32, or eight of
// f16/bf16 as two quads.
fn pair_vec4(va: vec4<u32>, vb: vec4<u32>, e: u32) {
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    if params.dtype == DT_F32 {
        quad(bitcast<vec4<f32>>(va), bitcast<vec4<f32>>(vb), e + lanes);
    } else if params.dtype == DT_BF16 {
        let lo = vec4<u32>(0xffffu);
        let even = e + 2u * lanes;
        quad(bitcast<vec4<f32>>(va << vec4<u32>(16u)), bitcast<vec4<f32>>(vb << vec4<u32>(16u)), even);
        quad(bitcast<vec4<f32>>(va & ~lo), bitcast<vec4<f32>>(vb & ~lo), even + 1u);
    } else if f16_subnormal(va) || f16_subnormal(vb) {
        quad(vec4<f32>(f16x2_exact(va.x), f16x2_exact(va.y)), vec4<f32>(f16x2_exact(vb.x), f16x2_exact(vb.y)), e + lanes);
        quad(vec4<f32>(f16x2_exact(va.z), f16x2_exact(va.w)), vec4<f32>(f16x2_exact(vb.z), f16x2_exact(vb.w)), e + 4u + lanes);
    } else {
        let a01 = unpack2x16float(va.x);
        let a23 = unpack2x16float(va.y);
        let a45 = unpack2x16float(va.z);
        let a67 = unpack2x16float(va.w);
        let b01 = unpack2x16float(vb.x);
        let b23 = unpack2x16float(vb.y);
        let b45 = unpack2x16float(vb.z);
        let b67 = unpack2x16float(vb.w);
        quad(vec4<f32>(a01, a23), vec4<f32>(b01, b23), e + lanes);
        quad(vec4<f32>(a45, a67), vec4<f32>(b45, b67), e + 4u + lanes);
    }
}

// The first element of word `w`.
fn first_element(w: u32) -> f32 {
    if params.dtype == DT_F32 {
        return bitcast<f32>(w);
    } else if params.dtype == DT_BF16 {
        return bitcast<f32>(w << 16u);
    }
    return bitcast<f32>(f16_bits(w & 0xffffu));
}

fn finite_or_zero(x: f32) -> f32 {
    return select(0.0, x, (bitcast<u32>(x) & EXP_MASK) != EXP_MASK);
}

// The workgroup's reduction: 5 count words and 17 floats per invocation, struct of arrays.
const NF: u32 = 17u;
var<workgroup> red_u: array<u32, 1280>; // 5 * WG
var<workgroup> red_f: array<f32, 4352>; // NF * WG

fn store(t: u32) {
    red_u[t] = n_fin_close;
    red_u[WG + t] = n_nan;
    red_u[2u * WG + t] = n_inf;
    red_u[3u * WG + t] = n_mis;
    red_u[4u * WG + t] = n_zero;
    red_f[t] = s_ad;
    red_f[WG + t] = s_ad2;
    red_f[2u * WG + t] = s_rel;
    red_f[3u * WG + t] = s_a;
    red_f[4u * WG + t] = s_b;
    red_f[5u * WG + t] = s_aa;
    red_f[6u * WG + t] = s_bb;
    red_f[7u * WG + t] = s_ab;
    red_f[8u * WG + t] = max_ad;
    red_f[9u * WG + t] = max_ad_a;
    red_f[10u * WG + t] = max_ad_b;
    red_f[11u * WG + t] = min_nz;
    red_f[12u * WG + t] = min_nz_a;
    red_f[13u * WG + t] = min_nz_b;
    red_f[14u * WG + t] = max_rel;
    red_f[15u * WG + t] = max_rel_a;
    red_f[16u * WG + t] = max_rel_b;
}

// Fold invocation `o`'s accumulators into `t`'s (a fixed tree: same order on every GPU).
fn combine(t: u32, o: u32) {
    for (var f = 0u; f < 5u; f++) {
        red_u[f * WG + t] += red_u[f * WG + o];
    }
    for (var f = 0u; f < 8u; f++) {
        red_f[f * WG + t] += red_f[f * WG + o];
    }
    // (max, pair) triples: a larger max, or a smaller non-zero minimum, brings its pair.
    if red_f[8u * WG + o] > red_f[8u * WG + t] {
        red_f[8u * WG + t] = red_f[8u * WG + o];
        red_f[9u * WG + t] = red_f[9u * WG + o];
        red_f[10u * WG + t] = red_f[10u * WG + o];
    }
    if red_f[11u * WG + o] < red_f[11u * WG + t] {
        red_f[11u * WG + t] = red_f[11u * WG + o];
        red_f[12u * WG + t] = red_f[12u * WG + o];
        red_f[13u * WG + t] = red_f[13u * WG + o];
    }
    if red_f[14u * WG + o] > red_f[14u * WG + t] {
        red_f[14u * WG + t] = red_f[14u * WG + o];
        red_f[15u * WG + t] = red_f[15u * WG + o];
        red_f[16u * WG + t] = red_f[16u * WG + o];
    }
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    // A 2-D grid (a dimension holds at most 65535 workgroups); the grid's excess exits.
    let tile = wg.x + wg.y * nwg.x;
    if tile >= params.tiles {
        return;
    }
    let w0 = tile * TILE_WORDS;
    // The shift: the tile's first pair when both of its sides are finite (and not tiny: the
    // pair is the host's), else none. One side's value alone can lie far from every pair the
    // sums hold (its partner is NaN), and un-shifting the raw sums in f64 would then cancel
    // away all but their f32 rounding.
    let a0 = first_element(a1[w0]);
    let b0 = first_element(b1[w0]);
    let counted = !(tiny(bitcast<u32>(a0)) || tiny(bitcast<u32>(b0)));
    let both = finite_or_zero(a0) == a0 && finite_or_zero(b0) == b0 && counted;
    ka = select(0.0, a0, both);
    kb = select(0.0, b0, both);

    let per_word = select(2u, 1u, params.dtype == DT_F32);
    if (w0 + TILE_WORDS) * per_word <= params.numel {
        // Each step works on two 16-byte groups of each side while the next two are loaded:
        // with four loads in flight per invocation the kernel is bound by memory, not by
        // latency (H100, 2 x 4 GiB: 4.9 ms with no load ahead, 3.9 with one, 3.5 with two; with
        // four, 6.8: the registers they hold leave too few invocations resident).
        let v0 = tile * TILE_VEC4 + t;
        var va = a4[v0];
        var vb = b4[v0];
        var wa = a4[v0 + WG];
        var wb = b4[v0 + WG];
        for (var k = 2u; k < ITERS; k += 2u) {
            let na = a4[v0 + k * WG];
            let nb = b4[v0 + k * WG];
            let ma = a4[v0 + (k + 1u) * WG];
            let mb = b4[v0 + (k + 1u) * WG];
            pair_vec4(va, vb, 4u * per_word * (v0 + (k - 2u) * WG));
            pair_vec4(wa, wb, 4u * per_word * (v0 + (k - 1u) * WG));
            va = na;
            vb = nb;
            wa = ma;
            wb = mb;
        }
        pair_vec4(va, vb, 4u * per_word * (v0 + (ITERS - 2u) * WG));
        pair_vec4(wa, wb, 4u * per_word * (v0 + (ITERS - 1u) * WG));
    } else {
        // The tensor's last tile: word by word, the high half of a 16-bit word only if it is
        // an element of the tensor.
        for (var w = w0 + t; w < params.words; w += WG) {
            if params.dtype == DT_F32 {
                pair_at(bitcast<f32>(a1[w]), bitcast<f32>(b1[w]), w);
            } else {
                pair_word16(a1[w], b1[w], 2u * w + 1u < params.numel, 2u * w);
            }
        }
    }

    store(t);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if t < s {
            combine(t, t + s);
        }
        workgroupBarrier();
    }
    if t == 0u {
        let p = (params.first_tile + tile) * PARTIAL_WORDS;
        for (var f = 0u; f < 5u; f++) {
            partials[p + f] = red_u[f * WG];
        }
        for (var f = 0u; f < NF; f++) {
            partials[p + 5u + f] = bitcast<u32>(red_f[f * WG]);
        }
        partials[p + 22u] = bitcast<u32>(ka);
        partials[p + 23u] = bitcast<u32>(kb);
    }
}
