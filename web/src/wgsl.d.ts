// WGSL shaders are bundled as text (esbuild's text loader).
declare module "*.wgsl" {
  const source: string;
  export default source;
}
