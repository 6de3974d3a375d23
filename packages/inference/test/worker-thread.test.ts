// WorkerRpc: the one request/response channel to Graft's worker threads.
import { afterEach, describe, expect, it } from 'vitest';
import { WorkerRpc } from '../src/worker-thread';

type Request = { type: 'echo'; id: number; value: number } | { type: 'slow'; id: number; ms: number } | { type: 'fail'; id: number } | { type: 'fatal'; id: number } | { type: 'exit'; id: number };
const ENTRY = new URL('./rpc-worker.ts', import.meta.url);
const opened: WorkerRpc<Request>[] = [];
const start = async () => {
  const rpc = await WorkerRpc.start<Request>(ENTRY, 'the test worker thread');
  opened.push(rpc);
  return rpc;
};
afterEach(async () => {
  await Promise.all(opened.splice(0).map((r) => r.close()));
});

describe('WorkerRpc', () => {
  it('settles each request with the reply of its id; an error reply rejects with its name and message', async () => {
    const rpc = await start();
    const replies = await Promise.all([1, 2, 3].map((value) => rpc.request<{ value: number }>({ type: 'echo', value })));
    expect(replies.map((r) => r.value)).toEqual([1, 2, 3]);
    await expect(rpc.request({ type: 'fail' })).rejects.toMatchObject({ name: 'RangeError', message: 'out of range' });
    expect(rpc.load).toBe(0);
    expect(rpc.failure).toBeNull();
  });

  it('fails pending and later requests when the thread reports a fatal error', async () => {
    const rpc = await start();
    await expect(rpc.request({ type: 'fatal' })).rejects.toThrow('the test worker thread failed: state lost');
    await expect(rpc.request({ type: 'echo', value: 1 })).rejects.toThrow(/state lost/);
  });

  it('fails pending requests when the thread exits, and rejects once closed', async () => {
    const rpc = await start();
    await expect(rpc.request({ type: 'exit' })).rejects.toThrow('the test worker thread exited (code 3)');
    const other = await start();
    await other.close();
    await other.close();
    await expect(other.request({ type: 'echo', value: 1 })).rejects.toThrow('the test worker thread was closed');
  });

  it('lets a request in progress finish before the thread stops (a native call cut off mid-way aborts the process)', async () => {
    const rpc = await start();
    const slow = rpc.request<{ type: string }>({ type: 'slow', ms: 300 });
    await rpc.close();
    await expect(slow).resolves.toMatchObject({ type: 'done' });
    await expect(rpc.request({ type: 'echo', value: 1 })).rejects.toThrow('the test worker thread was closed');
  });

  it('stops the thread anyway when a request in progress outlasts the grace period', async () => {
    const rpc = await WorkerRpc.start<Request>(ENTRY, 'the test worker thread', { closeGraceMs: 100 });
    const slow = expect(rpc.request({ type: 'slow', ms: 5_000 })).rejects.toThrow('the test worker thread was closed');
    await rpc.close();
    await slow;
  });
});
