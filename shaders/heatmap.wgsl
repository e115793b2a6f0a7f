// One channel's |a-b| map drawn through a colour scale (the viewer's heatmaps).
//
// The map is `width*height` floats, row-major; `bad` marks pixels where one side is non-finite
// and the other does not match it (drawn magenta, outside the scale). The colour scale is a
// 256-entry table shared with the canvas fallback and the colour bar, so every path draws the
// same colours. Scale: linear on [0, vmax], or log10 on [vmin, vmax] (`log_scale` = 1).

struct Params {
    width: u32,
    height: u32,
    offset: u32,     // first element of this channel in `values`/`bad`
    log_scale: u32,
    vmin: f32,
    vmax: f32,
    _pad0: f32,
    _pad1: f32,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> bad: array<u32>;
@group(0) @binding(3) var<storage, read> lut: array<vec4<f32>, 256>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// A triangle covering the canvas; uv (0,0) is the top-left corner.
@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VertexOut {
    let xy = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var out: VertexOut;
    out.position = vec4<f32>(xy * 2.0 - 1.0, 0.0, 1.0);
    out.uv = vec2<f32>(xy.x, 1.0 - xy.y);
    return out;
}

// Position on the scale in [0, 1].
fn scaled(v: f32) -> f32 {
    if (params.vmax <= 0.0) {
        return 0.0;
    }
    if (params.log_scale == 1u) {
        if (v <= params.vmin) {
            return 0.0;
        }
        return clamp(log(v / params.vmin) / log(params.vmax / params.vmin), 0.0, 1.0);
    }
    return clamp(v / params.vmax, 0.0, 1.0);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let x = min(u32(in.uv.x * f32(params.width)), params.width - 1u);
    let y = min(u32(in.uv.y * f32(params.height)), params.height - 1u);
    let i = params.offset + y * params.width + x;
    if (bad[i] != 0u) {
        return vec4<f32>(1.0, 0.0, 1.0, 1.0);
    }
    let t = scaled(values[i]);
    return lut[min(u32(t * 255.0 + 0.5), 255u)];
}
