// Drawing with WebGPU: heatmaps and latent previews through the WGSL shaders in shaders/.
// One GPUDevice for the page, created once. Each picture is rendered into a texture and copied
// into a 2-D canvas, rather than presented through a "webgpu" canvas context: the pictures are
// small, and presentation is what fails on software adapters (headless Chromium with
// SwiftShader loses every canvas of the page when a WebGPU canvas is presented).

import heatmapWgsl from "../../../shaders/heatmap.wgsl";
import previewWgsl from "../../../shaders/latent_preview.wgsl";
import { lutFloats, type Scale } from "./colors.js";
import type { HeatmapData, LatentFormatInfo, LatentSliceData } from "../lib/types.js";

export class GpuRenderer {
  private heatmapPipeline: GPURenderPipeline;
  private previewPipeline: GPURenderPipeline;
  private lut: GPUBuffer;

  private constructor(private device: GPUDevice, private format: GPUTextureFormat = "rgba8unorm") {
    const pipeline = (code: string, label: string) => {
      const module = device.createShaderModule({ code, label });
      return device.createRenderPipeline({
        label,
        layout: "auto",
        vertex: { module, entryPoint: "vs_main" },
        fragment: { module, entryPoint: "fs_main", targets: [{ format }] },
        primitive: { topology: "triangle-list" },
      });
    };
    this.heatmapPipeline = pipeline(heatmapWgsl, "heatmap");
    this.previewPipeline = pipeline(previewWgsl, "latent preview");
    this.lut = this.buffer(lutFloats(), GPUBufferUsage.STORAGE);
  }

  /** A renderer, or `null` when the browser has no usable WebGPU. */
  static async create(): Promise<GpuRenderer | null> {
    const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
    if (!gpu) return null;
    try {
      const adapter = await gpu.requestAdapter();
      if (!adapter) return null;
      const device = await adapter.requestDevice();
      device.pushErrorScope("validation");
      const r = new GpuRenderer(device);
      const error = await device.popErrorScope();
      if (error) throw new Error(error.message);
      return r;
    } catch (e) {
      console.warn(`samplediff: WebGPU drawing unavailable: ${(e as Error).message}`);
      return null;
    }
  }

  private buffer(data: ArrayBufferView, usage: number): GPUBuffer {
    const size = Math.max(16, Math.ceil(data.byteLength / 4) * 4);
    const b = this.device.createBuffer({ size, usage: usage | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(b, 0, data.buffer, data.byteOffset, data.byteLength);
    return b;
  }

  /** Render a full-screen triangle of `pipeline` into a `width` x `height` image. */
  private async render(pipeline: GPURenderPipeline, entries: GPUBuffer[], width: number, height: number): Promise<ImageData> {
    const texture = this.device.createTexture({ size: [width, height], format: this.format, usage: GPUTextureUsage.RENDER_ATTACHMENT | GPUTextureUsage.COPY_SRC });
    const bytesPerRow = Math.ceil((width * 4) / 256) * 256;
    const readback = this.device.createBuffer({ size: bytesPerRow * height, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: entries.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const encoder = this.device.createCommandEncoder();
    const pass = encoder.beginRenderPass({
      colorAttachments: [{ view: texture.createView(), loadOp: "clear", storeOp: "store", clearValue: [0, 0, 0, 1] }],
    });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.draw(3);
    pass.end();
    encoder.copyTextureToBuffer({ texture }, { buffer: readback, bytesPerRow }, [width, height]);
    this.device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    const rows = new Uint8Array(readback.getMappedRange());
    const pixels = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++) pixels.set(rows.subarray(y * bytesPerRow, y * bytesPerRow + width * 4), y * width * 4);
    readback.unmap();
    readback.destroy();
    texture.destroy();
    return new ImageData(pixels, width, height);
  }

  private static put(canvas: HTMLCanvasElement, image: ImageData): void {
    [canvas.width, canvas.height] = [image.width, image.height];
    const ctx = canvas.getContext("2d");
    if (!ctx) throw new Error("no 2-D canvas context");
    ctx.putImageData(image, 0, 0);
  }

  /** Upload the maps once; the returned function draws one channel into a canvas. */
  heatmaps(maps: HeatmapData, scale: Scale): (canvas: HTMLCanvasElement, channel: number) => Promise<void> {
    const values = this.buffer(maps.values, GPUBufferUsage.STORAGE);
    const bad = this.buffer(Uint32Array.from(maps.bad), GPUBufferUsage.STORAGE);
    return async (canvas, channel) => {
      const params = new ArrayBuffer(32);
      new Uint32Array(params, 0, 4).set([maps.width, maps.height, channel * maps.width * maps.height, scale.log ? 1 : 0]);
      new Float32Array(params, 16, 2).set([scale.min, scale.max]);
      const uniform = this.buffer(new Uint8Array(params), GPUBufferUsage.UNIFORM);
      GpuRenderer.put(canvas, await this.render(this.heatmapPipeline, [uniform, values, bad, this.lut], maps.width, maps.height));
    };
  }

  /** ComfyUI's latent-to-RGB preview of `slice` in `format`. */
  async preview(canvas: HTMLCanvasElement, slice: LatentSliceData, format: LatentFormatInfo): Promise<void> {
    const params = new ArrayBuffer(32);
    new Uint32Array(params, 0, 4).set([slice.width, slice.height, slice.channels, 0]);
    new Float32Array(params, 16, 4).set([...(format.bias ?? [0, 0, 0]), 0]);
    const factors = new Float32Array(format.channels * 4);
    format.factors.forEach((rgb, c) => factors.set([...rgb, 0], c * 4));
    const buffers = [
      this.buffer(new Uint8Array(params), GPUBufferUsage.UNIFORM),
      this.buffer(slice.values, GPUBufferUsage.STORAGE),
      this.buffer(factors, GPUBufferUsage.STORAGE),
    ];
    GpuRenderer.put(canvas, await this.render(this.previewPipeline, buffers, slice.width, slice.height));
  }
}
