import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { heapGrowthFlag, setHeapGrowth } from '../src/heap';
import { loadConfig } from '../src/index';

describe('setHeapGrowth', () => {
  it('sets the growth unless it is 0 or the process was started with one of its own', () => {
    expect(setHeapGrowth(0, [])).toBe(false);
    expect(setHeapGrowth(100, ['--heap-growing-percent=50'])).toBe(false);
    expect(setHeapGrowth(100, ['--heap_growing_percent=50'])).toBe(false);
    expect(setHeapGrowth(100, ['--max-old-space-size=4096'])).toBe(true);
    expect(() => setHeapGrowth(-1, [])).toThrow(RangeError);
    expect(() => setHeapGrowth(1.5, [])).toThrow(RangeError);
  });

  it('names a flag that V8 knows (node refuses an unknown one at start; setFlagsFromString would ignore it)', () => {
    expect(() => execFileSync(process.execPath, [heapGrowthFlag(100), '-e', '0'], { stdio: 'pipe' })).not.toThrow();
    expect(() => execFileSync(process.execPath, ['--heap-growing-percnt=100', '-e', '0'], { stdio: 'pipe' })).toThrow(/bad option/);
  });

  it('is configured by GRAFT_HEAP_GROWTH_PERCENT, 100 by default', () => {
    expect(loadConfig({}).heapGrowthPercent).toBe(100);
    expect(loadConfig({ GRAFT_HEAP_GROWTH_PERCENT: '0' }).heapGrowthPercent).toBe(0);
    expect(() => loadConfig({ GRAFT_HEAP_GROWTH_PERCENT: '-5' })).toThrow(/GRAFT_HEAP_GROWTH_PERCENT/);
  });
});
