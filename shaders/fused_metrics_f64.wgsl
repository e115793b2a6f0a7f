// close_exact for fused_metrics.wgsl on GPUs with f64 (wgpu's SHADER_F64): the tolerance test
// of the few pairs near the boundary, in f64 as samplediff-metrics does it, so the close count
// equals the CPU's.

// (rtol, atol) as given, in f64.
@group(0) @binding(6) var<uniform> tol64: vec2<f64>;

fn close_exact(x: f32, y: f32) -> bool {
    let d = abs(f64(x) - f64(y));
    return d <= abs(f64(y)) * tol64.x + tol64.y;
}
