//! The JavaScript API: every `#[wasm_bindgen]` export, each a thin shell over the modules of
//! this crate. Each returns `Result<_, JsValue>` (an `Error` whose message is one line: a
//! rejected promise or an exception in JavaScript) and runs through [`boundary::guarded`].

use js_sys::{Float32Array, Object, Reflect, Uint8Array, Uint8ClampedArray};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::boundary::{guarded, install_panic_hook};
use crate::files::Loaded;
use crate::heatmaps::Heatmaps;
use crate::previews::{self, LatentSlice, Preview};
use crate::report::{self, Options};
use crate::session::{Session, Side};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of a comparison, as `samplediff compare` takes them (every field optional). */
export interface CompareOptions {
  atol?: number;
  rtol?: number;
  /** Floor of the floored relative error's denominator (default 1e-3 x RMS(b)). */
  relFloor?: number;
  /** How many worst elements to list (default 10). */
  topK?: number;
  /** Explicit pairs, `"nameA=nameB"`, as `--pair`. */
  pairs?: string[];
}
export interface TensorSummary { name: string; dtype: string; shape: number[]; numel: number | null; }
export interface FileSummary {
  name: string;
  format: "safetensors" | "torch" | "npy" | "npz" | "pickle";
  tensors: TensorSummary[];
  metadata: Record<string, string>;
}
/** Per-channel maps of |a-b|, channel-major: `values[c*height*width + y*width + x]`. */
export interface HeatmapData {
  channels: number; height: number; width: number;
  values: Float32Array;
  /** 1 where one side is non-finite and the other does not match it. */
  bad: Uint8Array;
  /** Largest value over all channels (the colour scale's top). */
  max: number;
  device: "cpu" | "webgpu";
}
/** Batch item 0, frame 0 of a latent: `values[c*height*width + y*width + x]`. */
export interface LatentSliceData { channels: number; height: number; width: number; values: Float32Array; }
export interface PreviewData { width: number; height: number; rgba: Uint8ClampedArray; format: string; }
export interface LatentFormatInfo { name: string; channels: number; factors: [number, number, number][]; bias: [number, number, number] | null; }
export interface WebGpuStatus { available: boolean; reason: string | null; }
"#;

/// Run `f` at the boundary: install the panic hook, catch what can be caught, make errors `Error`s.
fn js<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, JsValue> {
    install_panic_hook();
    guarded(f).map_err(|msg| js_sys::Error::new(&msg).into())
}

/// Plain data to a JavaScript value: objects for maps, `null` for none, numbers for counts.
fn to_js<T: Serialize>(v: &T) -> Result<JsValue, String> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| e.to_string())
}

fn object(fields: &[(&str, JsValue)]) -> Result<JsValue, String> {
    let o = Object::new();
    for (k, v) in fields {
        Reflect::set(&o, &JsValue::from_str(k), v).map_err(|_| format!("cannot set field {k}"))?;
    }
    Ok(o.into())
}

fn parse_options(v: JsValue) -> Result<Options, String> {
    if v.is_undefined() || v.is_null() {
        return Ok(Options::default());
    }
    serde_wasm_bindgen::from_value(v).map_err(|e| format!("bad compare options: {e}"))
}

fn heatmaps_js(h: Heatmaps) -> Result<JsValue, String> {
    object(&[
        ("channels", h.channels.into()),
        ("height", h.height.into()),
        ("width", h.width.into()),
        ("values", Float32Array::from(&h.values[..]).into()),
        ("bad", Uint8Array::from(&h.bad[..]).into()),
        ("max", h.max.into()),
        ("device", h.device.into()),
    ])
}

fn slice_js(s: LatentSlice) -> Result<JsValue, String> {
    object(&[
        ("channels", s.channels.into()),
        ("height", s.height.into()),
        ("width", s.width.into()),
        ("values", Float32Array::from(&s.values[..]).into()),
    ])
}

fn preview_js(p: Preview) -> Result<JsValue, String> {
    object(&[
        ("width", p.width.into()),
        ("height", p.height.into()),
        ("rgba", Uint8ClampedArray::from(&p.rgba[..]).into()),
        ("format", p.format.into()),
    ])
}

/// The crate version.
#[wasm_bindgen]
pub fn version() -> Result<String, JsValue> {
    js(|| Ok(env!("CARGO_PKG_VERSION").to_string()))
}

/// Panics on purpose, so tests can check that a panic reaches JavaScript as an error with its
/// message (and that the wrapper recovers). Not for normal use.
#[wasm_bindgen(js_name = __selfTestPanic)]
pub fn self_test_panic() -> Result<(), JsValue> {
    js(|| -> Result<(), String> { panic!("self-test panic") })
}

/// Read a file and describe it: format, tensors (name, dtype, shape), metadata.
#[wasm_bindgen(unchecked_return_type = "FileSummary")]
pub fn inspect(name: &str, bytes: Vec<u8>, selector: Option<String>) -> Result<JsValue, JsValue> {
    js(|| to_js(&Loaded::read(name, bytes, selector.as_deref())?.summary()))
}

/// Compare two files (B is the reference): the JSON text of `samplediff compare --json`.
#[wasm_bindgen(js_name = compareJson)]
pub fn compare_json(
    name_a: &str,
    bytes_a: Vec<u8>,
    name_b: &str,
    bytes_b: Vec<u8>,
    #[wasm_bindgen(unchecked_param_type = "CompareOptions | undefined")] options: JsValue,
) -> Result<String, JsValue> {
    js(|| {
        let opts = parse_options(options)?;
        let (a, b) = (Loaded::read(name_a, bytes_a, None)?, Loaded::read(name_b, bytes_b, None)?);
        Ok(report::compare(&a.file, &b.file, &opts)?.to_json())
    })
}

/// Every latent format with its preview factors.
#[wasm_bindgen(js_name = latentFormats, unchecked_return_type = "LatentFormatInfo[]")]
pub fn latent_formats() -> Result<JsValue, JsValue> {
    js(|| to_js(&previews::formats()))
}

/// The latent format chosen automatically for a tensor shape (`undefined` when none fits).
#[wasm_bindgen(js_name = autoLatentFormat)]
pub fn auto_latent_format(shape: Vec<usize>) -> Result<Option<String>, JsValue> {
    js(|| Ok(previews::auto_format(&shape).map(|f| f.name().to_string())))
}

/// Replay a run recorded in the golden layout (`wf_*.safetensors`) through the reference chain
/// on the CPU backend, its recorded model predictions standing in for the model: the safetensors
/// bytes `samplediff replay WF -o OUT` writes (`stepNNN.*`, `callNNN.*`, `latent_out`).
/// `name` only labels errors and the output's `replayed_from` metadata.
#[wasm_bindgen]
pub fn replay(bytes: Vec<u8>, name: Option<String>) -> Result<Vec<u8>, JsValue> {
    js(|| crate::workflows::replay(name.as_deref().unwrap_or("workflow"), bytes))
}

/// Run the workflow a golden-layout file describes, from scratch, with the burn Qwen-Image model
/// on the CPU backend in float32: the trace bytes `samplediff run WF -o OUT` writes. `lora` is
/// the LoRA file the workflow names (omit when it names none); `ropeAxes` defaults to
/// Qwen-Image's `[16, 56, 56]`.
#[wasm_bindgen(js_name = runWorkflow)]
pub fn run_workflow(
    workflow: Vec<u8>,
    model: Vec<u8>,
    lora: Option<Vec<u8>>,
    #[wasm_bindgen(js_name = ropeAxes)] rope_axes: Option<Vec<usize>>,
) -> Result<Vec<u8>, JsValue> {
    js(|| crate::workflows::run_workflow(workflow, model, lora, rope_axes))
}

/// `runWorkflow` on WebGPU (burn-wgpu; WebGPU is initialised on first use): resolves to the same
/// trace layout, rejects with the reason when the browser offers no WebGPU. The LoRA is merged on
/// the CPU; the trace is read back from the GPU once, when the run is over.
#[wasm_bindgen(js_name = runWorkflowWebGpu, unchecked_return_type = "Promise<Uint8Array>")]
pub fn run_workflow_webgpu(
    workflow: Vec<u8>,
    model: Vec<u8>,
    lora: Option<Vec<u8>>,
    #[wasm_bindgen(js_name = ropeAxes)] rope_axes: Option<Vec<usize>>,
) -> js_sys::Promise {
    install_panic_hook();
    #[cfg(target_arch = "wasm32")]
    {
        wasm_bindgen_futures::future_to_promise(async move {
            let bytes = crate::workflows::run_workflow_webgpu(workflow, model, lora, rope_axes)
                .await
                .map_err(|e| js_sys::Error::new(&e))?;
            Ok(Uint8Array::from(bytes.as_slice()).into())
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (workflow, model, lora, rope_axes);
        js_sys::Promise::reject(&js_sys::Error::new("WebGPU exists only in the browser build").into())
    }
}

/// Two files held for one comparison: read once, then report, heatmaps and previews.
#[wasm_bindgen]
pub struct Comparison {
    session: Session,
}

#[wasm_bindgen]
impl Comparison {
    /// Read both files (`selectorA`/`selectorB` pick inside them, as after `:` on the CLI).
    #[wasm_bindgen(constructor)]
    pub fn new(
        name_a: &str,
        bytes_a: Vec<u8>,
        name_b: &str,
        bytes_b: Vec<u8>,
        selector_a: Option<String>,
        selector_b: Option<String>,
    ) -> Result<Comparison, JsValue> {
        js(|| {
            let a = Loaded::read(name_a, bytes_a, selector_a.as_deref())?;
            let b = Loaded::read(name_b, bytes_b, selector_b.as_deref())?;
            Ok(Comparison { session: Session { a, b } })
        })
    }

    /// Describe one side (`"a"` or `"b"`).
    #[wasm_bindgen(unchecked_return_type = "FileSummary")]
    pub fn summary(&self, side: &str) -> Result<JsValue, JsValue> {
        js(|| to_js(&self.session.side(Side::parse(side)?).summary()))
    }

    /// The report as the JSON text of `samplediff compare --json`.
    #[wasm_bindgen(js_name = reportJson)]
    pub fn report_json(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CompareOptions | undefined")] options: JsValue,
    ) -> Result<String, JsValue> {
        js(|| Ok(report::compare(&self.session.a.file, &self.session.b.file, &parse_options(options)?)?.to_json()))
    }

    /// Heatmaps of |a-b| for tensor `nameA` of A against `nameB` of B, on the CPU backend.
    #[wasm_bindgen(unchecked_return_type = "HeatmapData")]
    pub fn heatmaps(&self, name_a: &str, name_b: &str) -> Result<JsValue, JsValue> {
        js(|| {
            let (a, b) = (self.session.a.tensor(name_a)?, self.session.b.tensor(name_b)?);
            heatmaps_js(crate::heatmaps::cpu_heatmaps(a, b)?)
        })
    }

    /// The same heatmaps computed on WebGPU by burn-wgpu (call `initWebGpu` first); rejects
    /// when WebGPU is not available, so callers can fall back to `heatmaps`.
    #[wasm_bindgen(js_name = heatmapsWebGpu, unchecked_return_type = "Promise<HeatmapData>")]
    pub fn heatmaps_webgpu(&self, name_a: &str, name_b: &str) -> Result<js_sys::Promise, JsValue> {
        let (a, b) = js(|| Ok((self.session.a.tensor(name_a)?.clone(), self.session.b.tensor(name_b)?.clone())))?;
        Ok(gpu_heatmaps_promise(a, b))
    }

    /// Batch item 0, frame 0 of a latent on one side, for the WebGPU preview shader.
    #[wasm_bindgen(js_name = latentSlice, unchecked_return_type = "LatentSliceData")]
    pub fn latent_slice(&self, side: &str, name: &str) -> Result<JsValue, JsValue> {
        js(|| slice_js(previews::latent_slice(self.session.side(Side::parse(side)?).tensor(name)?)?))
    }

    /// Whether one side is a recorded sampling run (a trace with model calls).
    #[wasm_bindgen(js_name = isRun)]
    pub fn is_run(&self, side: &str) -> Result<bool, JsValue> {
        js(|| Ok(crate::traces::is_run(self.session.side(Side::parse(side)?))))
    }

    /// The JSON text of `samplediff diff --json A B`: aligned tensors, divergence curve, first
    /// divergence beyond float32 rounding.
    #[wasm_bindgen(js_name = traceDiffJson)]
    pub fn trace_diff_json(&self) -> Result<String, JsValue> {
        js(|| crate::traces::diff_json(&self.session.a, &self.session.b))
    }

    /// The JSON text of `samplediff explain --json A B`: `{"findings": [...]}`.
    #[wasm_bindgen(js_name = explainJson)]
    pub fn explain_json(&self) -> Result<String, JsValue> {
        js(|| crate::traces::explain_json(&self.session.a, &self.session.b))
    }

    /// ComfyUI's latent-to-RGB preview of a tensor on one side; `format` is a latent format's
    /// name, or `"auto"`/absent for the automatic choice.
    #[wasm_bindgen(unchecked_return_type = "PreviewData")]
    pub fn preview(&self, side: &str, name: &str, format: Option<String>) -> Result<JsValue, JsValue> {
        js(|| {
            let t = self.session.side(Side::parse(side)?).tensor(name)?;
            preview_js(previews::preview(t, previews::choose(t, format.as_deref())?)?)
        })
    }
}

#[cfg(target_arch = "wasm32")]
fn gpu_heatmaps_promise(a: samplediff_formats::RawTensor, b: samplediff_formats::RawTensor) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        install_panic_hook();
        let device = crate::backend::gpu().ok_or_else(|| js_sys::Error::new("WebGPU is not initialised"))?;
        let maps = crate::heatmaps::gpu_heatmaps(&a, &b, &device).await.map_err(|e| js_sys::Error::new(&e))?;
        heatmaps_js(maps).map_err(|e| js_sys::Error::new(&e).into())
    })
}

#[cfg(not(target_arch = "wasm32"))]
fn gpu_heatmaps_promise(_: samplediff_formats::RawTensor, _: samplediff_formats::RawTensor) -> js_sys::Promise {
    js_sys::Promise::reject(&js_sys::Error::new("WebGPU exists only in the browser build").into())
}

/// Initialise burn's WebGPU device once (later calls give the first answer). Never rejects for
/// a missing GPU: it resolves `{ available: false, reason }` and everything runs on the CPU.
#[wasm_bindgen(js_name = initWebGpu, unchecked_return_type = "Promise<WebGpuStatus>")]
pub fn init_webgpu() -> Result<js_sys::Promise, JsValue> {
    install_panic_hook();
    #[cfg(target_arch = "wasm32")]
    {
        Ok(wasm_bindgen_futures::future_to_promise(async {
            let status = match crate::backend::init_webgpu().await {
                Ok(_) => object(&[("available", true.into()), ("reason", JsValue::NULL)]),
                Err(why) => object(&[("available", false.into()), ("reason", why.into())]),
            };
            status.map_err(|e| js_sys::Error::new(&e).into())
        }))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(js_sys::Error::new("WebGPU exists only in the browser build").into())
    }
}
