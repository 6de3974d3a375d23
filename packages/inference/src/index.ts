export {
  convertToOnnx,
  exportOnnx,
  UnsupportedLayerError,
  type OnnxExport,
  type OnnxExportOptions,
  type OnnxTensorInfo,
  type TfjsModelJson,
} from './onnx-export';
export { createSession, isOnnxRuntimeAvailable, type ExecutionProvider, type OrtModel, type SessionOptions } from './session';
export { decodeModel } from './onnx-proto';
export type { WeightBytes, WeightSpec, WeightsManifestGroup } from './tfjs-weights';
