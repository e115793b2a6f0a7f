//! The progress bar of long comparisons (stderr, only on a terminal, only for big inputs).

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use samplediff_formats::TensorFile;
use samplediff_metrics::Engine;

/// Below this many bytes per pass a comparison takes well under a second: no bar.
const MIN_BYTES: u64 = 256 << 20;

/// The engine with a bar attached when it is the host kernel and the inputs are big. The bar
/// counts bytes read; a comparison usually reads its inputs twice (the main pass, then the
/// values around the percentiles), so that is the length it starts with.
pub fn attach(engine: Engine, a: &TensorFile, b: &TensorFile) -> (Engine, Option<ProgressBar>) {
    let Engine::Host(mut host) = engine else { return (engine, None) };
    let bytes = |f: &TensorFile| f.tensors.iter().map(|t| t.data.len() as u64).sum::<u64>();
    let per_pass = bytes(a) + bytes(b);
    if per_pass < MIN_BYTES {
        return (Engine::Host(host), None);
    }
    let bar = ProgressBar::new(2 * per_pass).with_style(
        ProgressStyle::with_template("{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    let b2 = bar.clone();
    host.progress = Some(Arc::new(move |n| {
        if b2.position() + n > b2.length().unwrap_or(0) {
            b2.inc_length(per_pass);
        }
        b2.inc(n);
    }));
    (Engine::Host(host), Some(bar))
}
