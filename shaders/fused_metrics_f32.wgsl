// close_exact for fused_metrics.wgsl on GPUs without f64: the pairs near the tolerance
// boundary are decided in f32 and counted as undecided (the high half of n_zero), so the
// caller knows by how much the close count may differ from an f64 evaluation.

fn close_exact(x: f32, y: f32) -> bool {
    n_zero += 1u << 16u;
    return abs(x - y) <= abs(y) * params.rtol + params.atol;
}
