//! The GPU context: instance, adapter, device, queue and the compiled kernel, made once.

use crate::block::block_on;
use crate::error::{GpuError, Result};

/// What both kernels share (WGSL has no includes: it goes before each).
const VALUES: &str = include_str!("../../../shaders/values.wgsl");
const MAIN: &str = include_str!("../../../shaders/fused_metrics.wgsl");
const CLOSE_F64: &str = include_str!("../../../shaders/fused_metrics_f64.wgsl");
const CLOSE_F32: &str = include_str!("../../../shaders/fused_metrics_f32.wgsl");
const ORDER: &str = include_str!("../../../shaders/order_stats.wgsl");

/// The fused main pass on one GPU. Creating it opens the device and compiles the kernel;
/// keep it for every comparison.
pub struct GpuMetrics {
    // Kept alive with the device (the Vulkan loader dislikes instances coming and going).
    _instance: wgpu::Instance,
    pub(crate) adapter: wgpu::Adapter,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    /// The order-statistics kernel (`shaders/order_stats.wgsl`), one pipeline per pass
    /// (level 1, refine, gather).
    pub(crate) order_pipelines: [wgpu::ComputePipeline; 3],
    pub(crate) order_layout: wgpu::BindGroupLayout,
    /// Pairs at the tolerance boundary are decided in f64 (the device has SHADER_F64).
    pub(crate) exact_close: bool,
    /// Compute passes can be timed with timestamp queries.
    pub(crate) timestamps: bool,
    /// Bytes one storage binding may span.
    pub(crate) max_binding: u64,
    pub(crate) max_groups: u32,
    /// Bound where a vec4 view of a range would be empty (the range has no whole tile).
    pub(crate) empty: wgpu::Buffer,
    /// Wall time of each step of the last [`GpuMetrics::compare`] (for benchmarks).
    pub(crate) phases: std::sync::Mutex<Vec<(&'static str, std::time::Duration)>>,
}

impl GpuMetrics {
    /// Open the first high-performance adapter (wgpu's `WGPU_BACKEND`/`WGPU_ADAPTER_NAME`
    /// variables choose another).
    pub fn new() -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter = match block_on(wgpu::util::initialize_adapter_from_env(&instance, None)) {
            Ok(a) => a,
            Err(_) => block_on(instance.request_adapter(&options)).map_err(|e| GpuError::NoAdapter(e.to_string()))?,
        };
        let wanted = wgpu::Features::SHADER_F64
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        let (device, queue) = block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("samplediff-gpu"),
            required_features: adapter.features() & wanted,
            // All the adapter offers: inputs of several GiB need its largest buffers and bindings.
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        let f64 = device.features().contains(wgpu::Features::SHADER_F64);
        Self::build(instance, adapter, device, queue, f64)
    }

    /// Compile the kernel for the device; `exact_close`: decide boundary pairs in f64 (the
    /// device must have SHADER_F64).
    fn build(
        instance: wgpu::Instance,
        adapter: wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
        exact_close: bool,
    ) -> Result<Self> {
        let features = device.features();
        let source = format!("{VALUES}\n{MAIN}\n{}", if exact_close { CLOSE_F64 } else { CLOSE_F32 });
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut entries =
            vec![storage(0, true), storage(1, true), storage(2, true), storage(3, true), storage(4, false), uniform(5)];
        if exact_close {
            entries.push(uniform(6));
        }
        entries.push(storage(7, false));
        // SAFETY: the kernel's indices stay in bounds by construction: full tiles are read only
        // when the whole tile lies in the binding (whose vec4 view covers every whole 16 bytes),
        // the last tile word by word below `words`, partials are written at indices below the
        // partials buffer's tile count and pairs left to the host below its `cap` entries
        // (plan.rs and pass.rs set up these invariants, and the tests exercise sizes around
        // every tile edge). Bounds checks would add a clamp to every load of a kernel that
        // must run at memory speed.
        let layout = self::layout(&device, "fused_metrics", &entries);
        let pipeline = unsafe { kernel(&device, "fused_metrics", source, &layout) };
        let order_entries = [
            storage(0, true),
            storage(1, true),
            storage(2, false),
            storage(3, false),
            storage(4, false),
            uniform(5),
            storage(6, true),
        ];
        // SAFETY: as above; the order kernel reads words below each binding's `words`, and
        // writes counts, gathered entries (below `cap`) and per-tile results within the
        // buffers order.rs sizes for them.
        let order_layout = self::layout(&device, "order_stats", &order_entries);
        let order = |kind: u32| unsafe {
            // The pass as a constant rather than a parameter: a pipeline compiled for one pass
            // holds none of the others' code and registers.
            kernel(&device, "order_stats", format!("const KIND: u32 = {kind}u;\n{VALUES}\n{ORDER}"), &order_layout)
        };
        let order_pipelines = [0, 1, 2].map(order);
        if let Some(e) = block_on(scope.pop()) {
            return Err(GpuError::Device(format!("the fused kernels did not compile: {e}")));
        }
        let limits = device.limits();
        let empty = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("fused_metrics empty"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(Self {
            _instance: instance,
            adapter,
            device,
            queue,
            pipeline,
            layout,
            order_pipelines,
            order_layout,
            exact_close,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            max_binding: limits.max_storage_buffer_binding_size.min(limits.max_buffer_size),
            max_groups: limits.max_compute_workgroups_per_dimension,
            empty,
            phases: Default::default(),
        })
    }

    /// Read inputs through storage bindings of at most `bytes` (the device's limit otherwise;
    /// smaller ones give the same result, tiles being what define it).
    pub fn with_max_binding(mut self, bytes: u64) -> Self {
        self.max_binding = self.max_binding.min(bytes);
        self
    }

    /// The device, to make buffers for [`GpuMetrics::main_pass_resident`].
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Name, driver and backend of the adapter.
    pub fn adapter_info(&self) -> wgpu::AdapterInfo {
        self.adapter.get_info()
    }

    /// Whether pairs at the tolerance boundary are decided in f64 (else see
    /// [`MainPass::close_undecided`](crate::MainPass::close_undecided)).
    pub fn exact_close(&self) -> bool {
        self.exact_close
    }

    /// Wall time of each step of the last comparison on this GPU (main pass, order passes,
    /// per-run passes, the host settling ranks), for benchmarks.
    pub fn last_phases(&self) -> Vec<(&'static str, std::time::Duration)> {
        self.phases.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Record that step `what` took from `since` to now.
    pub(crate) fn phase(&self, what: &'static str, since: std::time::Instant) {
        if let Ok(mut p) = self.phases.lock() {
            p.push((what, since.elapsed()));
        }
    }

    /// Whether [`GpuMetrics::main_pass_resident_timed`] can report GPU time.
    pub fn has_timestamps(&self) -> bool {
        self.timestamps
    }
}

/// A storage buffer entry of a compute kernel's bind group layout.
fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    buffer_entry(binding, wgpu::BufferBindingType::Storage { read_only })
}

fn uniform(binding: u32) -> wgpu::BindGroupLayoutEntry {
    buffer_entry(binding, wgpu::BufferBindingType::Uniform)
}

fn buffer_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}

/// The compute pipeline of `source`'s `main` with one bind group of `entries`.
///
/// # Safety
/// The kernel runs without bounds checks: the caller vouches that it indexes within its
/// bindings.
unsafe fn kernel(
    device: &wgpu::Device,
    label: &str,
    source: String,
    layout: &wgpu::BindGroupLayout,
) -> wgpu::ComputePipeline {
    // SAFETY: the caller's promise (above).
    let module = unsafe {
        device.create_shader_module_trusted(
            wgpu::ShaderModuleDescriptor { label: Some(label), source: wgpu::ShaderSource::Wgsl(source.into()) },
            wgpu::ShaderRuntimeChecks::unchecked(),
        )
    };
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: Some(&device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(layout)],
            immediate_size: 0,
        })),
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

/// The bind group layout of `entries`.
fn layout(device: &wgpu::Device, label: &str, entries: &[wgpu::BindGroupLayoutEntry]) -> wgpu::BindGroupLayout {
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tolerance;
    use samplediff_formats::DType;

    /// The kernel for GPUs without f64 (Metal, most WebGPU) compiles, and counts the pairs at
    /// the tolerance boundary it decided in f32; everything else matches the f64 kernel.
    #[test]
    fn without_f64_boundary_pairs_are_counted_as_undecided() {
        let g = GpuMetrics::new().expect("a wgpu adapter (lavapipe will do)");
        let f32_only =
            GpuMetrics::build(g._instance.clone(), g.adapter.clone(), g.device.clone(), g.queue.clone(), false)
                .unwrap();
        // b = 1.5, a = the f32 nearest b * 1.3 and its neighbours: |a-b| within a few f32 steps of 0.3 |b|.
        let mut a = vec![];
        let mut x = (1.5f64 * 1.3) as f32;
        for _ in 0..8 {
            x = f32::from_bits(x.to_bits() - 1);
        }
        for _ in 0..16 {
            a.push(x);
            x = f32::from_bits(x.to_bits() + 1);
        }
        let b = vec![1.5f32; a.len()];
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let tol = Tolerance { rtol: 0.3, atol: 0.0 };
        let exact = g.main_pass(&bytes(&a), &bytes(&b), DType::F32, tol).unwrap();
        let approx = f32_only.main_pass(&bytes(&a), &bytes(&b), DType::F32, tol).unwrap();
        assert!(!f32_only.exact_close());
        assert_eq!(exact.close_undecided, 0);
        assert!(approx.close_undecided > 0 && approx.close_undecided <= 16, "{}", approx.close_undecided);
        let (exact, approx, undecided) = (exact.moments, approx.moments, approx.close_undecided);
        assert!(exact.c.close.abs_diff(approx.c.close) <= undecided);
        assert_eq!((approx.c.finite, approx.max_ad, approx.sum_ad), (exact.c.finite, exact.max_ad, exact.sum_ad));
    }
}
