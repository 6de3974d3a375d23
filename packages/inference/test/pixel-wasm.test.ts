// The committed pixels.wasm is what scripts/build-wasm.sh builds from the C sources beside it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const clang = (() => {
  try {
    execFileSync('clang', ['--version'], { stdio: 'ignore' });
    execFileSync('wasm-ld', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('pixels.wasm', () => {
  it.skipIf(!clang)('is what scripts/build-wasm.sh builds from wasm/*.c (where clang and wasm-ld are installed)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'graft-wasm-'));
    try {
      const out = join(dir, 'pixels.wasm');
      execFileSync('bash', [join(import.meta.dirname, '../../../scripts/build-wasm.sh'), out]);
      expect(Buffer.compare(readFileSync(out), readFileSync(join(import.meta.dirname, '../src/wasm/pixels.wasm')))).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
