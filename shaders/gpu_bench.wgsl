// Kernels of the GPU benchmark (crates/samplediff-gpu/examples/gpu_bench.rs): `fill` makes the
// inputs on the GPU, `read_sum` is the plain-read baseline (the fused kernel's tiling and
// reduction, with a sum for its work).

// ---- fill: a ~ 3 + U(-1, 1) * 2, b = a (1 + 1e-4 U(-1, 1)), one NaN in a per 2^20 --------

struct FillParams {
    // Index of the binding's first element in the tensor (seeds the hash), and its count.
    first: u32,
    words: u32,
}

@group(0) @binding(0) var<storage, read_write> fill_a: array<u32>;
@group(0) @binding(1) var<storage, read_write> fill_b: array<u32>;
@group(0) @binding(2) var<uniform> fill_p: FillParams;

// lowbias32 (Chris Wellons): a well-mixed 32-bit hash.
fn hash(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

fn unit(h: u32) -> f32 {
    return f32(h >> 8u) * (1.0 / 8388608.0) - 1.0;
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= fill_p.words {
        return;
    }
    let g = fill_p.first + i;
    var x = 3.0 + 2.0 * unit(hash(g));
    let y = x * (1.0 + 1e-4 * unit(hash(g ^ 0x9e3779b9u)));
    if (hash(g * 3u + 1u) & 0xfffffu) == 0u {
        x = bitcast<f32>(0x7fc00000u);
    }
    fill_a[i] = bitcast<u32>(x);
    fill_b[i] = bitcast<u32>(y);
}

// ---- read_sum: read both sides once, tile by tile, as the fused kernel does ------------------

struct ReadParams {
    tiles: u32,
    first_tile: u32,
}

@group(0) @binding(10) var<storage, read> read_a: array<vec4<u32>>;
@group(0) @binding(11) var<storage, read> read_b: array<vec4<u32>>;
@group(0) @binding(12) var<storage, read_write> read_out: array<f32>;
@group(0) @binding(13) var<uniform> read_p: ReadParams;

var<workgroup> read_red: array<f32, 256>;

@compute @workgroup_size(256)
fn read_sum(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let tile = wg.x + wg.y * nwg.x;
    if tile >= read_p.tiles {
        return;
    }
    var s = vec4<f32>(0.0);
    for (var k = 0u; k < 16u; k++) {
        let i = tile * 4096u + k * 256u + t;
        s += bitcast<vec4<f32>>(read_a[i]) + bitcast<vec4<f32>>(read_b[i]);
    }
    read_red[t] = s.x + s.y + s.z + s.w;
    workgroupBarrier();
    for (var h = 128u; h > 0u; h >>= 1u) {
        if t < h {
            read_red[t] += read_red[t + h];
        }
        workgroupBarrier();
    }
    if t == 0u {
        read_out[read_p.first_tile + tile] = read_red[0];
    }
}
