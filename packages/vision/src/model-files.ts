// TensorFlow.js layers models as files: reading `model.json` and its weight shards through any reader (a folder
// on disk, an HTTP base, an in-memory map), and saving a model to in-memory `model.json` + `weights.bin`.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';

/** Reads a file by its path relative to the model's folder (`model.json`, `group1-shard1of1`, ...). */
export type FileReader = (relativePath: string) => Promise<Uint8Array>;

export interface ModelJson {
  modelTopology: any;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  [k: string]: unknown;
}

export function parseJsonFile<T = any>(bytes: Uint8Array, name: string): T {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as T;
  } catch (err) {
    throw new Error(`${name} is not valid JSON: ${(err as Error).message}`);
  }
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** A reader of files under a folder path or a file:// URL. */
export function folderReader(dirOrFileUrl: string): FileReader {
  const dir = dirOrFileUrl.startsWith('file://') ? fileURLToPath(dirOrFileUrl) : dirOrFileUrl;
  return async (p) => new Uint8Array(await readFile(join(dir, p)));
}

/** A reader of files under an http(s) URL base. */
export function httpReader(base: string, fetchImpl: typeof fetch = fetch): FileReader {
  const root = base.endsWith('/') ? base : `${base}/`;
  return async (p) => {
    const url = new URL(p, root).toString();
    const res = await fetchImpl(url);
    if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  };
}

/** A reader for a folder path, file:// URL or http(s):// URL base. */
export function readerFor(location: string): FileReader {
  return /^https?:\/\//i.test(location) ? httpReader(location) : folderReader(location);
}

/** A reader of an in-memory map of files, or of a function that fetches them by name. */
export function memoryReader(files: Record<string, Uint8Array> | ((name: string) => Promise<Uint8Array>)): FileReader {
  if (typeof files === 'function') return files;
  return async (p) => {
    const f = files[p];
    if (!f) throw new Error(`file '${p}' is missing`);
    return f;
  };
}

/**
 * An IOHandler that loads `model.json` and its weight shards through read. `patchTopology` may rewrite the
 * topology before the model is built (for example to change the input size).
 */
export function readerHandler(
  read: FileReader,
  opts: { modelJson?: string; patchTopology?: (topology: any) => any } = {},
): tf.io.IOHandler {
  const name = opts.modelJson ?? 'model.json';
  return {
    load: async (): Promise<tf.io.ModelArtifacts> => {
      const json = parseJsonFile<ModelJson>(await read(name), name);
      if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
        throw new Error(`${name} is not a TensorFlow.js layers model (modelTopology and weightsManifest expected)`);
      }
      const weightSpecs: tf.io.WeightsManifestEntry[] = [];
      const buffers: Uint8Array[] = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) buffers.push(await read(p));
      }
      const weightData = toArrayBuffer(Buffer.concat(buffers));
      const topology = opts.patchTopology ? opts.patchTopology(structuredClone(json.modelTopology)) : json.modelTopology;
      return {
        modelTopology: topology,
        weightSpecs,
        weightData,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy ?? undefined,
      };
    },
  };
}

/** Reads a layers model (`<location>/model.json` and shards). */
export async function loadLayersModelFrom(
  read: FileReader,
  opts: { modelJson?: string; patchTopology?: (topology: any) => any } = {},
): Promise<tf.LayersModel> {
  return tf.loadLayersModel(readerHandler(read, opts));
}

/**
 * Saves a layers model into two in-memory files in the standard TensorFlow.js layers format:
 * `model.json` (topology + weights manifest) and one weights file.
 */
export async function saveLayersModelToFiles(
  model: tf.LayersModel,
  names: { modelJson?: string; weights?: string } = {},
): Promise<Record<string, Uint8Array>> {
  const modelJson = names.modelJson ?? 'model.json';
  const weightsName = names.weights ?? 'weights.bin';
  let files: Record<string, Uint8Array> = {};
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const joined = data == null ? new ArrayBuffer(0) : Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
      const json: ModelJson = {
        format: 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [weightsName], weights: artifacts.weightSpecs ?? [] }],
      };
      files = {
        [modelJson]: new Uint8Array(Buffer.from(JSON.stringify(json))),
        [weightsName]: new Uint8Array(joined),
      };
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  return files;
}

/** Loads a model saved by saveLayersModelToFiles (or any layers model) from in-memory files. */
export async function loadLayersModelFromFiles(
  files: Record<string, Uint8Array> | ((name: string) => Promise<Uint8Array>),
  modelJson = 'model.json',
): Promise<tf.LayersModel> {
  return tf.loadLayersModel(readerHandler(memoryReader(files), { modelJson }));
}
