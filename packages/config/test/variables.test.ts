// The environment variables: every one the configuration reads is on its list and in docs/configuration.md's
// table, and each new kind of bad value is named.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, ENV_VARIABLES, loadConfig, TEST_ONLY_VARIABLES } from '@graft/config';

const DOC = path.resolve(import.meta.dirname, '../../../docs/configuration.md');

/** The names loadConfig looks up in the environment it is given. */
function namesRead(): Set<string> {
  const read = new Set<string>();
  const env = new Proxy({} as Record<string, string | undefined>, {
    get: (_t, name) => {
      if (typeof name === 'string') read.add(name);
      return undefined;
    },
  });
  loadConfig(env);
  return read;
}

/** The table's rows: the variables each row names (its first cell) and the row itself. */
function documentedRows(): { names: string[]; row: string }[] {
  return fs
    .readFileSync(DOC, 'utf8')
    .split('\n')
    .filter((l) => /^\| `/.test(l))
    .map((row) => ({ names: [...row.split('|')[1]!.matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1]!), row }));
}

function problemsOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join('\n');
    throw err;
  }
  return '';
}

describe('environment variables', () => {
  it('loadConfig reads every variable on the list and no other', () => {
    expect([...namesRead()].sort()).toEqual([...ENV_VARIABLES].sort());
  });

  it('docs/configuration.md documents each variable on the list once, and no other', () => {
    const documented = documentedRows().flatMap((r) => r.names);
    expect(documented.filter((n, i) => documented.indexOf(n) !== i), 'documented twice').toEqual([]);
    expect([...documented].sort()).toEqual([...ENV_VARIABLES].sort());
  });

  it('the docs mark the switches for the test suite as such, and only those', () => {
    const marked = documentedRows().filter((r) => r.row.includes('**test only**')).flatMap((r) => r.names);
    expect(marked.sort()).toEqual([...TEST_ONLY_VARIABLES].sort());
  });

  it('names a bad backend, frozen engine, thread count, embedded S3 port and sync-read switch in one error', () => {
    const problems = problemsOf({
      GRAFT_TF_BACKEND: 'nope',
      GRAFT_FROZEN_ENGINE: 'fast',
      GRAFT_TRAIN_THREADS: 'abc',
      GRAFT_S3_PORT: '70000',
      GRAFT_TF_SYNC_READS: 'maybe',
    });
    expect(problems).toContain('GRAFT_TF_BACKEND="nope": expected one of tensorflow-gpu, webgpu, tensorflow, wasm, cpu');
    expect(problems).toContain('GRAFT_FROZEN_ENGINE="fast": expected one of auto, onnxruntime, tfjs');
    expect(problems).toContain('GRAFT_TRAIN_THREADS="abc": expected an integer');
    expect(problems).toContain('GRAFT_S3_PORT="70000": expected an integer from 0 to 65535');
    expect(problems).toContain('GRAFT_TF_SYNC_READS="maybe": expected one of allow, throw');
    expect(problemsOf({ GRAFT_TRAIN_THREADS: '0' })).toContain('GRAFT_TRAIN_THREADS');
  });

  it('reads the training engines as the names the engine uses, aliases included', () => {
    expect(loadConfig({}).training).toEqual({ tfBackend: null, frozenEngine: 'auto', trainEngine: 'auto', frozenPrecision: 'int8', threads: 1 });
    expect(loadConfig({}).int8).toEqual({ enabled: true, calibrationImages: 32, validationImages: 2000 });
    expect(loadConfig({}).testing).toEqual({ syncReads: 'allow' });
    expect(loadConfig({}).embeddedS3Port).toBe(0);
    const c = loadConfig({ GRAFT_TF_BACKEND: 'Node', GRAFT_FROZEN_ENGINE: 'ort', GRAFT_TRAIN_ENGINE: 'tensorflow', GRAFT_FROZEN_PRECISION: 'int8', GRAFT_TRAIN_THREADS: '2', GRAFT_S3_PORT: '9000', GRAFT_TF_SYNC_READS: 'throw', GRAFT_INT8: 'false' });
    expect(c.training).toEqual({ tfBackend: 'tensorflow', frozenEngine: 'onnxruntime', trainEngine: 'tfjs', frozenPrecision: 'int8', threads: 2 });
    expect(problemsOf({ GRAFT_TRAIN_ENGINE: 'gpu' })).toContain('GRAFT_TRAIN_ENGINE');
    expect(c.int8.enabled).toBe(false);
    expect(problemsOf({ GRAFT_FROZEN_PRECISION: 'int4' })).toContain('GRAFT_FROZEN_PRECISION');
    expect(c.embeddedS3Port).toBe(9000);
    expect(c.testing.syncReads).toBe('throw');
    expect(loadConfig({ GRAFT_TF_BACKEND: 'wasm' }).training.tfBackend).toBe('wasm');
  });
});
