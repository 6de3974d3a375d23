// A small in-memory ONNX graph: nodes, float/int64 initializers, and the clean-up passes run before
// serialisation (dead-node pruning, folding per-channel Mul/Add into the Conv or Gemm that feeds them).
import { AttributeType, type OnnxAttribute, type OnnxModel, type OnnxNode, TensorDataType } from './onnx-proto';

export interface GraphNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: OnnxAttribute[];
  name: string;
  /** The operator set of a runtime's own op (version 1 of it is imported); absent for ONNX ops. */
  domain?: string;
}

export interface Initializer {
  dims: number[];
  data: Float32Array | BigInt64Array;
}

export interface GraphIo {
  name: string;
  /** Dimensions; null for a dimension only known at run time (the batch). */
  shape: Array<number | null>;
}

export const attr = {
  int: (name: string, i: number): OnnxAttribute => ({ name, type: AttributeType.INT, i }),
  ints: (name: string, ints: number[]): OnnxAttribute => ({ name, type: AttributeType.INTS, ints }),
  float: (name: string, f: number): OnnxAttribute => ({ name, type: AttributeType.FLOAT, f }),
  string: (name: string, s: string): OnnxAttribute => ({ name, type: AttributeType.STRING, s: new TextEncoder().encode(s) }),
};

export class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  readonly initializers = new Map<string, Initializer>();
  readonly inputs: GraphIo[] = [];
  readonly outputs: GraphIo[] = [];
  private readonly names = new Set<string>();

  /** Returns `base`, or `base_<n>` when `base` is taken, and reserves it. */
  unique(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_./:-]/g, '_') || 'v';
    let name = clean;
    for (let n = 1; this.names.has(name); n++) name = `${clean}_${n}`;
    this.names.add(name);
    return name;
  }

  addInput(name: string, shape: Array<number | null>): string {
    const unique = this.unique(name);
    this.inputs.push({ name: unique, shape });
    return unique;
  }

  /** Adds a node with one output and returns the output's name. */
  add(op: string, inputs: string[], attrs: OnnxAttribute[] = [], outputBase?: string): string {
    const output = this.unique(outputBase ?? `${op}`);
    this.nodes.push({ op, inputs, outputs: [output], attrs, name: this.unique(`${output}/${op}`) });
    return output;
  }

  /** As add(), for an op of another operator set than ONNX's (a runtime's own, such as com.microsoft.nchwc). */
  addIn(domain: string, op: string, inputs: string[], attrs: OnnxAttribute[] = []): string {
    const output = this.add(op, inputs, attrs);
    this.nodes.at(-1)!.domain = domain;
    return output;
  }

  addFloat(base: string, dims: number[], data: Float32Array): string {
    const size = dims.reduce((a, b) => a * b, 1);
    if (size !== data.length) throw new Error(`initializer ${base}: ${data.length} values for dims [${dims}]`);
    const name = this.unique(base);
    this.initializers.set(name, { dims, data });
    return name;
  }

  addInt64(base: string, values: number[]): string {
    const name = this.unique(base);
    this.initializers.set(name, { dims: [values.length], data: BigInt64Array.from(values.map((v) => BigInt(v))) });
    return name;
  }

  addScalar(base: string, value: number): string {
    const name = this.unique(base);
    this.initializers.set(name, { dims: [], data: Float32Array.of(value) });
    return name;
  }

  /** Removes nodes and initializers that no graph output depends on. */
  prune(): void {
    const needed = new Set(this.outputs.map((o) => o.name));
    const kept: GraphNode[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i];
      if (!node.outputs.some((o) => needed.has(o))) continue;
      kept.push(node);
      for (const input of node.inputs) if (input) needed.add(input);
    }
    kept.reverse();
    this.nodes.splice(0, this.nodes.length, ...kept);
    for (const name of [...this.initializers.keys()]) if (!needed.has(name)) this.initializers.delete(name);
  }

  /**
   * Folds `Conv -> Mul(per-channel) -> Add(per-channel)` (an inference-mode batch normalisation) into the Conv's
   * weights and bias, and the same after a Gemm. A step is folded only when the intermediate value has no other
   * reader and is not a graph output, and the weights are read by that node alone.
   */
  foldChannelAffine(): void {
    for (;;) {
      const readers = this.readers();
      const outputs = new Set(this.outputs.map((o) => o.name));
      const producer = new Map<string, GraphNode>();
      for (const node of this.nodes) for (const o of node.outputs) producer.set(o, node);
      let changed = false;
      for (const node of this.nodes) {
        if (node.op !== 'Mul' && node.op !== 'Add') continue;
        const [a, b] = node.inputs;
        const constant = this.initializers.get(b);
        const source = producer.get(a);
        if (!constant || !(constant.data instanceof Float32Array) || !source) continue;
        if (source.op !== 'Conv' && !(source.op === 'Gemm' && isPlainGemm(source))) continue;
        if (outputs.has(a) || (readers.get(a) ?? 0) !== 1) continue;
        const weightName = source.inputs[1];
        const weight = this.initializers.get(weightName);
        if (!weight || !(weight.data instanceof Float32Array) || (readers.get(weightName) ?? 0) !== 1) continue;
        const channels = source.op === 'Conv' ? weight.dims[0] : weight.dims[1];
        const expectedDims = source.op === 'Conv' ? [channels, 1, 1] : [channels];
        if (!sameDims(constant.dims, expectedDims)) continue;
        const biasName = source.inputs[2];
        const bias = biasName ? this.initializers.get(biasName) : undefined;
        if (biasName && (!bias || (readers.get(biasName) ?? 0) !== 1)) continue;
        const newBias = bias ? Float32Array.from(bias.data as Float32Array) : new Float32Array(channels);
        const newWeight = Float32Array.from(weight.data);
        if (node.op === 'Mul') {
          const perChannel = newWeight.length / channels;
          for (let c = 0; c < channels; c++) {
            const s = constant.data[c];
            newBias[c] *= s;
            if (source.op === 'Conv') for (let k = 0; k < perChannel; k++) newWeight[c * perChannel + k] *= s;
            else for (let r = 0; r < perChannel; r++) newWeight[r * channels + c] *= s;
          }
        } else {
          for (let c = 0; c < channels; c++) newBias[c] += constant.data[c];
        }
        this.initializers.set(weightName, { dims: weight.dims, data: newWeight });
        const newBiasName = biasName ?? this.unique(`${weightName}_bias`);
        this.initializers.set(newBiasName, { dims: [channels], data: newBias });
        source.inputs[2] = newBiasName;
        // The folded node now writes the Mul/Add output directly.
        const out = node.outputs[0];
        source.outputs[0] = out;
        this.nodes.splice(this.nodes.indexOf(node), 1);
        changed = true;
        break;
      }
      if (!changed) break;
    }
    this.prune();
  }

  toModel(opset: number, metadata: Record<string, string>, graphName: string): OnnxModel {
    const valueInfo = (io: GraphIo) => ({
      name: io.name,
      type: {
        tensor_type: {
          elem_type: TensorDataType.FLOAT,
          shape: { dim: io.shape.map((d) => (d === null ? { dim_param: 'batch' } : { dim_value: d })) },
        },
      },
    });
    const nodes: OnnxNode[] = this.nodes.map((n) => ({
      input: n.inputs,
      output: n.outputs,
      name: n.name,
      op_type: n.op,
      ...(n.domain ? { domain: n.domain } : {}),
      attribute: n.attrs,
    }));
    const domains = [...new Set(this.nodes.flatMap((n) => (n.domain ? [n.domain] : [])))];
    return {
      ir_version: irVersionFor(opset),
      opset_import: [{ domain: '', version: opset }, ...domains.map((domain) => ({ domain, version: 1 }))],
      producer_name: 'graft',
      producer_version: '0.1.0',
      graph: {
        name: graphName,
        node: nodes,
        initializer: [...this.initializers].map(([name, init]) => ({
          name,
          dims: init.dims,
          data_type: init.data instanceof Float32Array ? TensorDataType.FLOAT : TensorDataType.INT64,
          raw_data: new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength),
        })),
        input: this.inputs.map(valueInfo),
        output: this.outputs.map(valueInfo),
      },
      metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    };
  }

  private readers(): Map<string, number> {
    const count = new Map<string, number>();
    for (const node of this.nodes) for (const i of node.inputs) count.set(i, (count.get(i) ?? 0) + 1);
    return count;
  }
}

function isPlainGemm(node: GraphNode): boolean {
  return node.attrs.every((a) => (a.name === 'transB' || a.name === 'transA' ? !a.i : a.name !== 'alpha' && a.name !== 'beta'));
}

function sameDims(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The lowest IR version that can carry the given default-domain opset. */
function irVersionFor(opset: number): number {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}
