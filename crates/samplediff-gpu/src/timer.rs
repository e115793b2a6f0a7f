//! GPU time of recorded work, from two timestamp queries: the main pass's own timing, and the
//! benchmark's (copies, plain reads) measured the same way.

use std::time::Duration;

use crate::context::GpuMetrics;
use crate::error::Result;

/// Two timestamps (0: begin, 1: end), resolved into a buffer and read back.
pub struct GpuTimer {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    staging: wgpu::Buffer,
}

impl GpuTimer {
    pub fn new(g: &GpuMetrics) -> Self {
        Self {
            queries: g.device().create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("samplediff-gpu time"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolved: g.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("samplediff-gpu time"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            staging: g.staging(16, "samplediff-gpu time read-back"),
        }
    }

    /// The queries to write (a compute pass's `timestamp_writes`, or `write_timestamp`).
    pub fn query_set(&self) -> &wgpu::QuerySet {
        &self.queries
    }

    /// Record the resolution of both timestamps at the end of `encoder`.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.resolve_query_set(&self.queries, 0..2, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.staging, 0, 16);
    }

    /// The time between the timestamps, once the work is submitted (`None` if the device
    /// wrote none).
    pub fn elapsed(&self, g: &GpuMetrics) -> Result<Option<Duration>> {
        let b = g.with_mapped(&self.staging, |b| b.to_vec())?;
        let (t0, t1) = (
            u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(b[8..].try_into().expect("8 bytes")),
        );
        let ns = t1.saturating_sub(t0) as f64 * g.queue().get_timestamp_period() as f64;
        Ok((t1 > t0).then(|| Duration::from_nanos(ns as u64)))
    }
}
