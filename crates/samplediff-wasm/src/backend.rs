//! The burn devices of the browser build.
//!
//! The compare report is always computed on burn's flex CPU backend in float64: the same
//! device and precision as the CLI, so the browser's JSON is the CLI's, bit for bit. WebGPU
//! (burn-wgpu, where the browser has it) computes the pictures: it is initialised once,
//! asynchronously (browsers cannot block), and reused; float32 is plenty for a heatmap.

use burn::tensor::Device;

/// The CPU device: every report is computed here.
pub fn cpu() -> Device {
    Device::flex()
}

#[cfg(target_arch = "wasm32")]
pub use webgpu::{gpu, init_webgpu};

#[cfg(target_arch = "wasm32")]
mod webgpu {
    use std::cell::RefCell;

    use burn::tensor::Device;
    use burn::tensor::wgpu::WgpuBackend;

    enum State {
        Untried,
        Ready(Device),
        Unavailable(String),
    }

    thread_local! {
        // wasm32 without threads: one state per instance.
        static STATE: RefCell<State> = const { RefCell::new(State::Untried) };
    }

    /// The WebGPU device when initialised.
    pub fn gpu() -> Option<Device> {
        STATE.with(|s| match &*s.borrow() {
            State::Ready(d) => Some(d.clone()),
            _ => None,
        })
    }

    /// Initialise WebGPU once; later calls return the first outcome. `Err` says why there is no
    /// WebGPU (no `navigator.gpu`, no adapter, device lost), which is not a failure of the viewer.
    pub async fn init_webgpu() -> Result<Device, String> {
        let known = STATE.with(|s| match &*s.borrow() {
            State::Untried => None,
            State::Ready(d) => Some(Ok(d.clone())),
            State::Unavailable(why) => Some(Err(why.clone())),
        });
        if let Some(outcome) = known {
            return outcome;
        }
        let has_gpu = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
            .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()))
            .is_ok_and(|g| !g.is_undefined() && !g.is_null());
        let outcome = if has_gpu {
            Device::wgpu_options()
                .graphics_api(WgpuBackend::WebGpu)
                .init_async()
                .await
                .map_err(|e| format!("WebGPU initialisation failed: {e}"))
        } else {
            Err("this browser has no WebGPU (navigator.gpu is missing)".to_string())
        };
        STATE.with(|s| {
            *s.borrow_mut() = match &outcome {
                Ok(d) => State::Ready(d.clone()),
                Err(why) => State::Unavailable(why.clone()),
            }
        });
        outcome
    }
}
