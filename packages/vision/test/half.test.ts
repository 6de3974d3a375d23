import { describe, expect, it } from 'vitest';
import { fromHalf, toHalf } from '../src/half';
import { FeatureStore } from '../src/features';

const back = (h: Uint16Array) => {
  const out = new Float32Array(h.length);
  fromHalf(h, out);
  return out;
};

describe('float16', () => {
  it('keeps every value a half can hold, bit for bit, and decodes every half as its float32 value', () => {
    const all = new Uint16Array(0x10000).map((_, i) => i);
    const values = back(all);
    // 1, the largest half, the smallest normal and subnormal, negative zero
    expect([values[0x3c00], values[0x7bff], values[0x0400], values[0x0001], Object.is(values[0x8000], -0)]).toEqual([1, 65504, 2 ** -14, 2 ** -24, true]);
    expect(values[0x7c00]).toBe(Infinity);
    expect(values[0xfc00]).toBe(-Infinity);
    expect(Number.isNaN(values[0x7e00])).toBe(true);
    const again = toHalf(values);
    for (let h = 0; h < 0x10000; h++) {
      const nan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (!nan && again[h] !== h) throw new Error(`half ${h.toString(16)} came back as ${again[h]!.toString(16)}`);
    }
  });

  it('rounds to the nearest half, ties to even, and past the largest to infinity', () => {
    const ulp1 = 2 ** -10; // the step between halves in [1, 2)
    const x = new Float32Array([1 + ulp1 / 2, 1 + (3 * ulp1) / 2, 1 + ulp1 * 0.49, 1 + ulp1 * 0.51, 65520, 65519, 2 ** -25, 2 ** -25 * 1.5, -3.14159]);
    const got = back(toHalf(x));
    expect([...got.slice(0, 4)]).toEqual([1, 1 + 2 * ulp1, 1, 1 + ulp1]);
    expect(got[4]).toBe(Infinity);
    expect(got[5]).toBe(65504);
    expect([got[6], got[7]]).toEqual([0, 2 ** -24]);
    expect(Math.abs(got[8]! + 3.14159)).toBeLessThan(2 ** -9);
  });

  it('picks the nearest half (the even one on a tie) for any float32 in range', () => {
    // Random bit patterns from the subnormal halves to past the largest, both signs, and exact ties.
    const bits = new Uint32Array(200_000);
    let seed = 12345;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < bits.length; i++) {
      const exp = 100 + (rand() % 45); // 2^-27 .. 2^17
      const mant = i % 4 === 0 ? (rand() & 0x7fe000) | 0x1000 : rand() & 0x7fffff; // every 4th a tie in [1, 2) terms
      bits[i] = ((rand() & 1) << 31) | (exp << 23) | mant;
    }
    const x = new Float32Array(bits.buffer);
    const h = toHalf(x);
    const got = back(h);
    const neighbour = new Uint16Array(2);
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (Math.abs(v) >= 65520) {
        // Past the largest half by half a step or more: infinity, as IEEE rounding gives.
        expect(got[i]).toBe(Math.sign(v) * Infinity);
        continue;
      }
      const err = Math.abs(got[i]! - v);
      neighbour[0] = h[i]! - 1;
      neighbour[1] = h[i]! + 1;
      const [down, up] = back(neighbour);
      for (const n of [down!, up!]) {
        if (!Number.isFinite(n) || Math.sign(n) !== Math.sign(v)) continue;
        const other = Math.abs(n - v);
        const ok = err < other || (err === other && (h[i]! & 1) === 0);
        if (!ok) throw new Error(`${v} went to ${got[i]} (half ${h[i]!.toString(16)}), ${n} is at least as near`);
      }
    }
  });

  it('refuses to decode past the end of the output', () => {
    const out = new Float32Array(5);
    fromHalf(new Uint16Array([0x3c00, 0x4000]), out, 3);
    expect([...out]).toEqual([0, 0, 0, 1, 2]);
    expect(() => fromHalf(new Uint16Array(4), out, 2)).toThrow(RangeError);
  });

  it("stays within half a step of float16 for a network's activations (relative error under 2^-11)", () => {
    const x = new Float32Array(10_000).map((_, i) => ((i * 7919) % 10_000) * 0.0006 + 1e-3);
    const got = back(toHalf(x));
    for (let i = 0; i < x.length; i++) expect(Math.abs(got[i]! - x[i]!) / x[i]!).toBeLessThanOrEqual(2 ** -11);
  });
});

describe('FeatureStore in float16', () => {
  it('serves what it keeps as the float32 of the nearest halves, in the same order and batches as a float32 store', async () => {
    const shape = [3, 2];
    const [f32, f16] = (['float32', 'float16'] as const).map((p) => new FeatureStore([shape], 'binary', 2, 4, 1, 'all', p));
    const samples = Array.from({ length: 10 }, (_, i) => new Float32Array(6).map((_, j) => Math.sin(i * 6 + j) * 3));
    samples.forEach((s, i) => {
      f32!.add([s.slice()], i % 2);
      f16!.add([s.slice()], i % 2);
    });
    const rounded = samples.map((s) => back(toHalf(s)));
    expect(f16!.sample(3)).toEqual(rounded[3]);
    expect(f16!.sample(3)).not.toEqual(samples[3]);
    expect(f16!.gather([7, 2])[0]).toEqual(Float32Array.from([...rounded[7]!, ...rounded[2]!]));
    expect(f16!.indices()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(f16!.samples()).toEqual(rounded);
    expect(f32!.samples()).toEqual(samples);
    const order = (s: FeatureStore) => {
      const out: number[][] = [];
      return (async () => {
        for await (const b of s.batches(0, true)) {
          out.push(Array.from(b.host!.ys as ArrayLike<number>));
          b.xs.forEach((t) => t.dispose());
          b.ys.dispose();
        }
        return out;
      })();
    };
    expect(await order(f16!)).toEqual(await order(f32!));
  });
});
