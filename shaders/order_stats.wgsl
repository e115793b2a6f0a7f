// The order statistics of `compare` on the GPU (issue 8): percentiles, the decade histogram,
// the worst elements and the ULP median, found by radix selection over integer keys so that
// the host settles every one of them exactly (crates/samplediff-gpu/src: order.rs runs the
// passes, select.rs settles the ranks).
//
// Keys. An error's key is the bits of |a - b| computed in f32. Rounding is monotone, so a
// smaller key means a smaller exact (f64) error, and only pairs with equal keys need the host:
// of those, the ones whose f32 difference is exact (`exact_diff`) have the key's value
// itself, and the others are few and gathered by index. Monotonicity needs IEEE arithmetic,
// which a GPU flushing denormals does not give: pairs with a tiny input (values.wgsl) are
// "special", left out of every error count here and gathered for the host.
// Above that bound every difference is zero or a normal float. A ULP distance is an integer
// and is its own key.
//
// Passes (`KIND`, a constant the host puts before this file: one pipeline per pass, so that
// each compiles to its own work alone), each over the whole input, one workgroup a tile of
// TILE_WORDS words:
//   0 level 1: the keys' top bits counted, specials gathered, errors counted between the decade
//     edges (ties with an edge: exact ones counted, others gathered), zeros counted, the ULP
//     maximum, and per tile the floored relative error's partial sums;
//   1 refine: for up to MAX_TARGETS key prefixes per stream, the next bits counted;
//   2 gather: the pairs whose error key lies in given ranges (index and bits of each).
// Refine and gather first test a bitmap of the level-1 bins their targets can hold: most pairs
// leave after one bit test.

const WG: u32 = 256u;
const TILE_WORDS: u32 = 16384u;

const DT_F32: u32 = 0u;
const DT_F16: u32 = 1u;


// Level 1: errors by key >> 21 (bit 31 is clear), ULP distances by key >> 22.
const L1_BINS: u32 = 1024u;
const MAX_EDGES: u32 = 48u;
const MAX_TARGETS: u32 = 16u;
const REFINE_BINS: u32 = 2048u;

// Words of `counts` (atomics; the host zeroes them).
const C_E1: u32 = 0u;
const C_U1: u32 = 1024u;
const C_BETWEEN: u32 = 2048u; // MAX_EDGES + 1: errors with no edge tie, by edges below them
const C_TIE: u32 = 2112u; // MAX_EDGES: errors whose key is an edge and whose difference is exact
const C_GATHERED: u32 = 2176u; // entries appended (more than the capacity: overflow)
const C_ULP_MAX: u32 = 2177u;
const C_SPECIAL: u32 = 2178u;
const C_ZERO: u32 = 2179u; // errors exactly zero (specials left out)
const C_REFINE: u32 = 2240u; // 2 * MAX_TARGETS * REFINE_BINS: errors' targets, then ULP's

// Words of `keys`.
const K_TARGET_E: u32 = 0u;
const K_TARGET_U: u32 = 16u;
const K_EDGES: u32 = 32u;
const K_GROUPS: u32 = 80u; // (lo, hi, mode) per group; mode 1: only pairs whose difference is inexact
const K_WANTED: u32 = 176u; // 1024 bits: the level-1 bins (key >> 21) a refine target or group may hold
const K_OCTAVES: u32 = 208u; // per exponent e (key >> 23): the edges below 2^(e - 127)
const KEY_WORDS: u32 = 464u;

// Tags of gathered entries.
const TAG_SPECIAL: u32 = 0u;
const TAG_EDGE: u32 = 1u;
const TAG_GROUP: u32 = 2u; // + group

struct Params {
    // Words and elements of the tensor in this binding, its first tile among the tensor's
    // tiles and its tile count.
    words: u32,
    numel: u32,
    first_tile: u32,
    tiles: u32,
    dtype: u32,
    n_edges: u32,
    // Entries `gathered` holds.
    cap: u32,
    // Refine: a target's prefix is key >> shift_hi; its bin (key >> shift_lo) & (2^(hi-lo) - 1).
    shift_hi_e: u32,
    shift_lo_e: u32,
    shift_hi_u: u32,
    shift_lo_u: u32,
    n_targets_e: u32,
    n_targets_u: u32,
    n_groups: u32,
    // Whether ULP distances are counted (same float dtype on both sides: always, here).
    ulp: u32,
    floor: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<storage, read> a1: array<u32>;
@group(0) @binding(1) var<storage, read> b1: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
// (global word, half | tag << 1, a's bits, b's bits) per entry.
@group(0) @binding(3) var<storage, read_write> gathered: array<u32>;
// Per tile: floored n, sum, max, and the pair that gave the max.
@group(0) @binding(4) var<storage, read_write> floored: array<u32>;
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<storage, read> keys: array<u32>;

// Level 1: errors' bins in [0, 1024), ULP distances' in [1024, 2048). Refine: the first ULP
// target's 2048 bins (every pair can fall under it: all ULP distances below 2^11 share one
// prefix, and as global atomics their counts took 92 of a 137 ms comparison on an H100).
var<workgroup> sh_l1: array<atomic<u32>, 2048>;
var<workgroup> sh_between: array<atomic<u32>, 49>;
var<workgroup> sh_tie: array<atomic<u32>, 48>;
var<workgroup> sh_zero: atomic<u32>;
var<workgroup> sh_ulp_max: atomic<u32>;
var<workgroup> sh_edges: array<u32, 48>;
// The keys buffer, read once per workgroup (refine targets, groups, wanted bins, octaves).
var<workgroup> sh_keys: array<u32, 464>;
var<workgroup> red_sum: array<f32, 256>;
var<workgroup> red_max: array<f32, 256>;
var<workgroup> red_a: array<f32, 256>;
var<workgroup> red_b: array<f32, 256>;
var<workgroup> sh_fl_n: atomic<u32>;

// Each invocation counts runs of one bin privately and adds a run to the shared (or, when
// refining, the global) count when the bin changes: most values of a tensor fall in a few
// bins (every ULP distance below 2^22 in bin 0), and 256 invocations adding to one word one
// at a time would serialise the pass.
var<private> run_e: vec2<u32> = vec2<u32>(0u, 0u); // (bin, count)
var<private> run_u: vec2<u32> = vec2<u32>(0u, 0u);
var<private> run_between: vec2<u32> = vec2<u32>(0u, 0u);
var<private> run_s: vec2<u32> = vec2<u32>(0u, 0u);
var<private> zeros: u32;

var<private> fl_sum: f32;
var<private> fl_max: f32 = -1.0;
var<private> fl_a: f32;
var<private> fl_b: f32;
var<private> fl_n: u32;
var<private> ulp_max: u32;

// The ULP distance of two finite values' bits in their own dtype (`width`: 32 or 16).
fn ulp_distance(x: u32, y: u32) -> u32 {
    var sx: u32;
    var sy: u32;
    var mx: u32;
    var my: u32;
    if params.dtype == DT_F32 {
        sx = x >> 31u;
        sy = y >> 31u;
        mx = x & MAG_MASK;
        my = y & MAG_MASK;
    } else {
        sx = (x >> 15u) & 1u;
        sy = (y >> 15u) & 1u;
        mx = x & 0x7fffu;
        my = y & 0x7fffu;
    }
    if sx == sy {
        return max(mx, my) - min(mx, my);
    }
    return mx + my;
}

// Whether x - y is exact in f32, for finite values that are zero or normal (every pair
// that is not special), decided on integers: a float TwoSum would be folded away by shader
// compilers that treat float arithmetic as associative (Mesa's NIR does). The exact
// difference, as a multiple of the smaller input's unit, must fit 24 significant bits and
// stay below f32's overflow.
fn exact_diff(xb: u32, yb: u32) -> bool {
    let mx = xb & MAG_MASK;
    let my = yb & MAG_MASK;
    if mx == 0u || my == 0u {
        return true;
    }
    var e1 = mx >> 23u;
    var e2 = my >> 23u;
    var m1 = (mx & 0x7fffffu) | 0x800000u;
    var m2 = (my & 0x7fffffu) | 0x800000u;
    if e2 > e1 {
        let e = e1;
        e1 = e2;
        e2 = e;
        let m = m1;
        m1 = m2;
        m2 = m;
    }
    let shift = e1 - e2;
    // The smaller input lies below half a unit of the result: its bits are lost.
    if shift >= 26u {
        return false;
    }
    // m1 << shift as (hi, lo), then minus m2 for equal signs (|x - y| = ||x| - |y||), plus m2
    // for opposite ones.
    let lo = m1 << shift;
    var hi = 0u;
    if shift > 0u {
        hi = m1 >> (32u - shift);
    }
    var rlo: u32;
    var rhi: u32;
    if ((xb ^ yb) >> 31u) == 0u {
        if hi == 0u && lo < m2 {
            rlo = m2 - lo;
            rhi = 0u;
        } else {
            rlo = lo - m2;
            rhi = hi - select(0u, 1u, lo < m2);
        }
    } else {
        rlo = lo + m2;
        rhi = hi + select(0u, 1u, rlo < lo);
    }
    if rhi == 0u && rlo == 0u {
        return true;
    }
    var top: u32;
    var low: u32;
    if rhi != 0u {
        top = 63u - countLeadingZeros(rhi);
    } else {
        top = 31u - countLeadingZeros(rlo);
    }
    if rlo != 0u {
        low = countTrailingZeros(rlo);
    } else {
        low = 32u + countTrailingZeros(rhi);
    }
    // The value is the integer times 2^(e2 - 150): it overflows from 2^128 on.
    return top - low < 24u && top + e2 < 278u;
}

// Add one to `bin` through the run `r`; returns the run to flush (count 0: none).
fn run_add(r: ptr<private, vec2<u32>>, bin: u32) -> vec2<u32> {
    let old = *r;
    if old.y > 0u && old.x == bin {
        (*r).y += 1u;
        return vec2<u32>(0u, 0u);
    }
    *r = vec2<u32>(bin, 1u);
    return old;
}

// Runs of `sh_l1` bins (errors' level 1, ULP level 1 at + 1024, ULP refine).
fn flush_l1(f: vec2<u32>) {
    if f.y > 0u {
        atomicAdd(&sh_l1[f.x], f.y);
    }
}

fn flush_between(f: vec2<u32>) {
    if f.y > 0u {
        atomicAdd(&sh_between[f.x], f.y);
    }
}

// Refine runs: the bin is a word of `counts`.
fn flush_global(f: vec2<u32>) {
    if f.y > 0u {
        atomicAdd(&counts[f.x], f.y);
    }
}

// An entry for the host: the pair's place, why it was gathered, and its own-dtype bits (the
// host computes its exact error from them, without reading the tensors at random).
fn append(word: u32, half: u32, tag: u32, xo: u32, yo: u32) {
    let i = atomicAdd(&counts[C_GATHERED], 1u);
    if i < params.cap {
        gathered[4u * i] = word;
        gathered[4u * i + 1u] = half | (tag << 1u);
        gathered[4u * i + 2u] = xo;
        gathered[4u * i + 3u] = yo;
    }
}

// Level 1 for one pair of finite values (f32 bits `xb`, `yb`; own-dtype bits `xo`, `yo`).
fn level1(xb: u32, yb: u32, xo: u32, yo: u32, word: u32, half: u32) {
    let x = bitcast<f32>(xb);
    let y = bitcast<f32>(yb);
    if params.ulp != 0u {
        let u = ulp_distance(xo, yo);
        flush_l1(run_add(&run_u, L1_BINS + (u >> 22u)));
        ulp_max = max(ulp_max, u);
    }
    // The floored relative error: every finite pair with max(|b|, floor) > 0.
    let den = max(abs(y), params.floor);
    if den > 0.0 {
        let r = abs(x - y) / den;
        fl_n += 1u;
        fl_sum += r;
        if r > fl_max {
            fl_max = r;
            fl_a = x;
            fl_b = y;
        }
    }
    if tiny(xb) || tiny(yb) {
        atomicAdd(&counts[C_SPECIAL], 1u);
        append(word, half, TAG_SPECIAL, xo, yo);
        return;
    }
    let k = bitcast<u32>(abs(x - y));
    flush_l1(run_add(&run_e, k >> 21u));
    zeros += select(0u, 1u, k == 0u);
    // Edges below the key: those below its octave, and the octave's own edge if it lies below
    // the key (decades are over three octaves apart: an octave holds at most one edge).
    var lo = sh_keys[K_OCTAVES + (k >> 23u)];
    if lo < params.n_edges && (sh_edges[lo] >> 23u) == (k >> 23u) && sh_edges[lo] < k {
        lo += 1u;
    }
    if lo < params.n_edges && sh_edges[lo] == k {
        if exact_diff(xb, yb) {
            atomicAdd(&sh_tie[lo], 1u);
        } else {
            append(word, half, TAG_EDGE, xo, yo);
        }
    } else {
        flush_between(run_add(&run_between, lo));
    }
}

// Whether error key `k` lies in a level-1 bin that a refine target or gather group may hold:
// one bit test turns most pairs away before the loop over targets or groups.
fn wanted(k: u32) -> bool {
    let bin = k >> 21u;
    return ((sh_keys[K_WANTED + (bin >> 5u)] >> (bin & 31u)) & 1u) != 0u;
}

fn refine(xb: u32, yb: u32, xo: u32, yo: u32) {
    if params.ulp != 0u && params.n_targets_u > 0u {
        let u = ulp_distance(xo, yo);
        let p = u >> params.shift_hi_u;
        let bin = (u >> params.shift_lo_u) & ((1u << (params.shift_hi_u - params.shift_lo_u)) - 1u);
        for (var t = 0u; t < params.n_targets_u; t++) {
            if p == sh_keys[K_TARGET_U + t] {
                if t == 0u {
                    flush_l1(run_add(&run_s, bin));
                } else {
                    flush_global(run_add(&run_u, C_REFINE + (MAX_TARGETS + t) * REFINE_BINS + bin));
                }
            }
        }
    }
    if tiny(xb) || tiny(yb) || params.n_targets_e == 0u {
        return;
    }
    let k = bitcast<u32>(abs(bitcast<f32>(xb) - bitcast<f32>(yb)));
    if !wanted(k) {
        return;
    }
    let p = k >> params.shift_hi_e;
    let bin = (k >> params.shift_lo_e) & ((1u << (params.shift_hi_e - params.shift_lo_e)) - 1u);
    for (var t = 0u; t < params.n_targets_e; t++) {
        if p == sh_keys[K_TARGET_E + t] {
            flush_global(run_add(&run_e, C_REFINE + t * REFINE_BINS + bin));
        }
    }
}

fn gather(xb: u32, yb: u32, xo: u32, yo: u32, word: u32, half: u32) {
    if tiny(xb) || tiny(yb) {
        return;
    }
    let x = bitcast<f32>(xb);
    let y = bitcast<f32>(yb);
    let k = bitcast<u32>(abs(x - y));
    if !wanted(k) {
        return;
    }
    for (var g = 0u; g < params.n_groups; g++) {
        let at = K_GROUPS + 3u * g;
        if k >= sh_keys[at] && k <= sh_keys[at + 1u] {
            if sh_keys[at + 2u] == 0u || !exact_diff(xb, yb) {
                append(word, half, TAG_GROUP + g, xo, yo);
            }
        }
    }
}

fn visit(xb: u32, yb: u32, xo: u32, yo: u32, word: u32, half: u32) {
    if !(finite(xb) && finite(yb)) {
        return;
    }
    if KIND == 0u {
        level1(xb, yb, xo, yo, word, half);
    } else if KIND == 1u {
        refine(xb, yb, xo, yo);
    } else {
        gather(xb, yb, xo, yo, word, half);
    }
}

// Both elements of a 16-bit word (`hi`: whether the high one is in the tensor).
fn visit_word16(wa: u32, wb: u32, word: u32, hi: bool) {
    let la = wa & 0xffffu;
    let lb = wb & 0xffffu;
    let ha = wa >> 16u;
    let hb = wb >> 16u;
    if params.dtype == DT_F16 {
        visit(f16_bits(la), f16_bits(lb), la, lb, word, 0u);
        if hi {
            visit(f16_bits(ha), f16_bits(hb), ha, hb, word, 1u);
        }
    } else {
        visit(la << 16u, lb << 16u, la, lb, word, 0u);
        if hi {
            visit(ha << 16u, hb << 16u, ha, hb, word, 1u);
        }
    }
}

// The pair or pairs of word `w` of this binding.
fn visit_word(wa: u32, wb: u32, w: u32) {
    let word = params.first_tile * TILE_WORDS + w;
    if params.dtype == DT_F32 {
        visit(wa, wb, wa, wb, word, 0u);
    } else {
        visit_word16(wa, wb, word, 2u * w + 1u < params.numel);
    }
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tile = wg.x + wg.y * nwg.x;
    if tile >= params.tiles {
        return;
    }
    let level = KIND == 0u;
    let refining = KIND == 1u;
    for (var i = t; i < KEY_WORDS; i += WG) {
        sh_keys[i] = keys[i];
    }
    if level || refining {
        for (var i = t; i < 2u * L1_BINS; i += WG) {
            atomicStore(&sh_l1[i], 0u);
        }
    }
    if level {
        if t < MAX_EDGES + 1u {
            atomicStore(&sh_between[t], 0u);
        }
        if t < MAX_EDGES {
            atomicStore(&sh_tie[t], 0u);
            sh_edges[t] = keys[K_EDGES + t];
        }
        if t == 0u {
            atomicStore(&sh_zero, 0u);
            atomicStore(&sh_ulp_max, 0u);
            atomicStore(&sh_fl_n, 0u);
        }
    }
    workgroupBarrier();

    let w0 = tile * TILE_WORDS;
    if w0 + TILE_WORDS <= params.words {
        // A whole tile: the words two steps ahead are loaded while a step works, so that
        // loads overlap the work (the main pass's lesson: fused_metrics.wgsl).
        let v0 = w0 + t;
        var wa = a1[v0];
        var wb = b1[v0];
        var xa = a1[v0 + WG];
        var xb = b1[v0 + WG];
        for (var k = 2u; k < TILE_WORDS / WG; k += 2u) {
            let na = a1[v0 + k * WG];
            let nb = b1[v0 + k * WG];
            let ma = a1[v0 + (k + 1u) * WG];
            let mb = b1[v0 + (k + 1u) * WG];
            visit_word(wa, wb, v0 + (k - 2u) * WG);
            visit_word(xa, xb, v0 + (k - 1u) * WG);
            wa = na;
            wb = nb;
            xa = ma;
            xb = mb;
        }
        visit_word(wa, wb, v0 + (TILE_WORDS / WG - 2u) * WG);
        visit_word(xa, xb, v0 + (TILE_WORDS / WG - 1u) * WG);
    } else {
        for (var w = w0 + t; w < params.words; w += WG) {
            visit_word(a1[w], b1[w], w);
        }
    }
    if refining {
        flush_global(run_e);
        flush_global(run_u);
        flush_l1(run_s);
        workgroupBarrier();
        for (var i = t; i < REFINE_BINS; i += WG) {
            let c = atomicLoad(&sh_l1[i]);
            if c != 0u {
                atomicAdd(&counts[C_REFINE + MAX_TARGETS * REFINE_BINS + i], c);
            }
        }
    }
    if !level {
        return;
    }
    flush_l1(run_e);
    flush_l1(run_u);
    flush_between(run_between);
    atomicAdd(&sh_zero, zeros);

    atomicMax(&sh_ulp_max, ulp_max);
    atomicAdd(&sh_fl_n, fl_n);
    red_sum[t] = fl_sum;
    red_max[t] = fl_max;
    red_a[t] = fl_a;
    red_b[t] = fl_b;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if t < s {
            red_sum[t] += red_sum[t + s];
            if red_max[t + s] > red_max[t] {
                red_max[t] = red_max[t + s];
                red_a[t] = red_a[t + s];
                red_b[t] = red_b[t + s];
            }
        }
        workgroupBarrier();
    }
    for (var i = t; i < L1_BINS; i += WG) {
        let e = atomicLoad(&sh_l1[i]);
        if e != 0u {
            atomicAdd(&counts[C_E1 + i], e);
        }
        let u = atomicLoad(&sh_l1[L1_BINS + i]);
        if u != 0u {
            atomicAdd(&counts[C_U1 + i], u);
        }
    }
    if t < params.n_edges + 1u {
        let c = atomicLoad(&sh_between[t]);
        if c != 0u {
            atomicAdd(&counts[C_BETWEEN + t], c);
        }
    }
    if t < params.n_edges {
        let c = atomicLoad(&sh_tie[t]);
        if c != 0u {
            atomicAdd(&counts[C_TIE + t], c);
        }
    }
    if t == 0u {
        atomicAdd(&counts[C_ZERO], atomicLoad(&sh_zero));
        atomicMax(&counts[C_ULP_MAX], atomicLoad(&sh_ulp_max));
        let p = (params.first_tile + tile) * 5u;
        floored[p] = atomicLoad(&sh_fl_n);
        floored[p + 1u] = bitcast<u32>(red_sum[0]);
        floored[p + 2u] = bitcast<u32>(red_max[0]);
        floored[p + 3u] = bitcast<u32>(red_a[0]);
        floored[p + 4u] = bitcast<u32>(red_b[0]);
    }
}
