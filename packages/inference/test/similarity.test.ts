import { describe, expect, it } from 'vitest';
import { Cosine, cosineSimilarity } from '../src/similarity';

describe('cosine similarity', () => {
  it('is the cosine of the angle between the vectors, the same whether they are added whole or in chunks', () => {
    expect(cosineSimilarity([1, 0], [0, 2])).toBe(0);
    expect(cosineSimilarity([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(cosineSimilarity([1, 1], [1, 0])).toBeCloseTo(Math.SQRT1_2, 12);
    const a = [0.5, -1, 2, 3, -0.25];
    const b = [1, 1, -2, 0.5, 4];
    expect(new Cosine().add(a.slice(0, 2), b.slice(0, 2)).add(a.slice(2), b.slice(2)).value).toBe(cosineSimilarity(a, b));
  });

  it('is 0 where a side is all zeros, and refuses vectors of different lengths', () => {
    expect(cosineSimilarity([0, 0], [1, 2])).toBe(0);
    expect(new Cosine().value).toBe(0);
    expect(() => cosineSimilarity([1, 2], [1])).toThrow(RangeError);
  });
});
