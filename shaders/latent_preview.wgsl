// ComfyUI's Latent2RGB preview of one latent (batch 0, frame 0), the same formula as
// `LatentFormat::preview` in the chain crate:
//   rgb = sum_c latent[c] * factors[c] + bias;  pixel = trunc(clamp((rgb + 1) / 2, 0, 1) * 255)
// `latent` is `channels*height*width` floats, channel-major; `factors` one rgb row per channel.

struct Params {
    width: u32,
    height: u32,
    channels: u32,
    _pad: u32,
    bias: vec4<f32>,   // zero when the format has no bias
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> latent: array<f32>;
@group(0) @binding(2) var<storage, read> factors: array<vec4<f32>>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VertexOut {
    let xy = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var out: VertexOut;
    out.position = vec4<f32>(xy * 2.0 - 1.0, 0.0, 1.0);
    out.uv = vec2<f32>(xy.x, 1.0 - xy.y);
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let x = min(u32(in.uv.x * f32(params.width)), params.width - 1u);
    let y = min(u32(in.uv.y * f32(params.height)), params.height - 1u);
    let plane = params.width * params.height;
    var rgb = params.bias.xyz;
    for (var c = 0u; c < params.channels; c = c + 1u) {
        rgb = rgb + latent[c * plane + y * params.width + x] * factors[c].xyz;
    }
    let level = floor(clamp((rgb + 1.0) / 2.0, vec3<f32>(0.0), vec3<f32>(1.0)) * 255.0);
    return vec4<f32>(level / 255.0, 1.0);
}
