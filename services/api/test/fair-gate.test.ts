import { describe, expect, it } from 'vitest';
import { FairGate } from '../src/models/fair-gate';

const tick = () => new Promise((r) => setImmediate(r));

describe('FairGate', () => {
  it("lets another tenant's request in after one of a backlogged tenant's, not after all of them", async () => {
    const gate = new FairGate(10);
    const started: string[] = [];
    const releases = new Map<string, () => void>();
    const request = (name: string, tenant: string, cost: number) =>
      void gate.acquire(tenant, cost).then((release) => {
        started.push(name);
        releases.set(name, release);
      });
    request('a1', 'a', 10);
    await tick();
    for (const n of ['a2', 'a3', 'a4']) request(n, 'a', 10);
    request('b1', 'b', 1);
    await tick();
    expect(started).toEqual(['a1']);
    releases.get('a1')!();
    await tick();
    // a2 was first in line; b1's turn comes right after, before a3 and a4.
    expect(started).toEqual(['a1', 'a2']);
    releases.get('a2')!();
    await tick();
    expect(started).toEqual(['a1', 'a2', 'b1']);
    releases.get('b1')!();
    await tick();
    expect(started).toEqual(['a1', 'a2', 'b1', 'a3']);
  });

  it('runs small requests side by side up to the capacity, and one oversized request alone', async () => {
    const gate = new FairGate(10);
    const r1 = await gate.acquire('a', 4);
    const r2 = await gate.acquire('b', 6);
    expect(gate.used).toBe(10);
    let bigStarted = false;
    const big = gate.acquire('c', 50).then((r) => ((bigStarted = true), r));
    r1();
    await tick();
    expect(bigStarted).toBe(false);
    r2();
    const release = await big;
    expect(gate.used).toBe(50);
    release();
    release();
    expect(gate.used).toBe(0);
  });
});
