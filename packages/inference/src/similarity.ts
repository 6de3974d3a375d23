// Cosine similarity, the measure of how close int8 outputs stay to fp32's: the frozen parts' switch to int8
// (@graft/vision's frozen-int8.ts), the benches and the tests.

/** The cosine of the angle between two vectors given in chunks: `add` each pair of chunks, then read `value`. */
export class Cosine {
  private dot = 0;
  private normA = 0;
  private normB = 0;

  add(a: ArrayLike<number>, b: ArrayLike<number>): this {
    if (a.length !== b.length) throw new RangeError(`vectors of ${a.length} and ${b.length} values`);
    for (let i = 0; i < a.length; i++) {
      this.dot += a[i]! * b[i]!;
      this.normA += a[i]! * a[i]!;
      this.normB += b[i]! * b[i]!;
    }
    return this;
  }

  /** The cosine of what was added (0 where either side is all zeros). */
  get value(): number {
    return this.normA > 0 && this.normB > 0 ? this.dot / Math.sqrt(this.normA * this.normB) : 0;
  }
}

/** The cosine of the angle between `a` and `b` (0 where either is all zeros). */
export const cosineSimilarity = (a: ArrayLike<number>, b: ArrayLike<number>): number => new Cosine().add(a, b).value;
