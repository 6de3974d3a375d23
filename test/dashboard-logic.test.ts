// The dashboard's logic that runs without a browser: the event-stream parser, the curve data built from a
// job's history, and live events merged into a job.
import { describe, expect, it } from 'vitest';
import { SseParser } from '../packages/dashboard/web/sse';
import { curveData } from '../packages/dashboard/web/curves';
import { applyEvent } from '../packages/dashboard/web/live';
import type { HistoryRow, Job } from '../packages/dashboard/web/types';

const row = (phase: HistoryRow['phase'], epoch: number, attempt = 1, loss = 1 / epoch): HistoryRow => ({
  phase,
  epoch,
  attempt,
  loss,
  accuracy: 1 - loss / 2,
  valLoss: loss * 1.1,
  valAccuracy: 1 - loss / 1.5,
  seconds: 1,
});

describe('SseParser', () => {
  it('yields events whole however the text is cut into chunks', () => {
    const text =
      ': keep-alive\n\nevent: state\ndata: {"state":"running"}\n\nevent: epoch\r\ndata: {"epoch":1,\r\ndata: "loss":0.5}\r\n\r\n' +
      'data: plain\n\nid: 7\nevent: progress\ndata:{"progress":0.5}\n\n';
    const expected = [
      { event: 'state', data: '{"state":"running"}' },
      { event: 'epoch', data: '{"epoch":1,\n"loss":0.5}' },
      { event: 'message', data: 'plain' },
      { event: 'progress', data: '{"progress":0.5}', id: '7' },
    ];
    const whole = new SseParser().push(text);
    expect(whole).toEqual(expected);
    for (let cut = 1; cut < text.length; cut++) {
      const p = new SseParser();
      expect([...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))], `cut at ${cut}`).toEqual(expected);
    }
    const one = new SseParser();
    expect([...text].flatMap((c) => one.push(c))).toEqual(expected);
  });

  it('holds back an event until its blank line arrives', () => {
    const p = new SseParser();
    expect(p.push('event: state\ndata: {}\n')).toEqual([]);
    expect(p.push('\n')).toEqual([{ event: 'state', data: '{}' }]);
  });
});

describe('curveData', () => {
  it('orders the head before fine-tuning, one point per epoch, with the phase spans', () => {
    const history = [row('training_head', 1), row('training_head', 2), row('fine_tuning', 1), row('fine_tuning', 2), row('fine_tuning', 3)];
    const d = curveData([history[2]!, history[0]!, history[4]!, history[1]!, history[3]!]);
    expect(d.x).toEqual([1, 2, 3, 4, 5]);
    expect(d.rows.map((r) => `${r.phase}:${r.epoch}`)).toEqual([
      'training_head:1',
      'training_head:2',
      'fine_tuning:1',
      'fine_tuning:2',
      'fine_tuning:3',
    ]);
    expect(d.phases).toEqual([
      { phase: 'training_head', from: 1, to: 2 },
      { phase: 'fine_tuning', from: 3, to: 5 },
    ]);
    expect(d.loss[1]).toBeCloseTo(0.5);
    expect(d.valAccuracy[0]).toBeCloseTo(1 - 1 / 1.5);
  });

  it("keeps the latest attempt's row of an epoch run twice, and gaps where validation is missing", () => {
    const d = curveData([row('training_head', 1, 1, 0.9), row('training_head', 2, 1, 0.8), row('training_head', 2, 2, 0.3), { ...row('training_head', 3, 2), valLoss: null, valAccuracy: null }]);
    expect(d.x).toEqual([1, 2, 3]);
    expect(d.loss[1]).toBeCloseTo(0.3);
    expect(d.valLoss[2]).toBeNull();
    expect(d.valAccuracy[2]).toBeNull();
  });
});

describe('applyEvent', () => {
  const job = {
    id: 'job_x',
    state: 'running',
    phase: 'training_head',
    progress: 0.1,
    epoch: 1,
    epochs: 5,
    history: [row('training_head', 1)],
  } as unknown as Job;

  it('merges progress and state fields, and keeps the history a patch does not carry', () => {
    const a = applyEvent(job, { event: 'progress', data: '{"progress":0.4,"epoch":2,"etaSeconds":12}' });
    expect(a).toMatchObject({ progress: 0.4, epoch: 2, etaSeconds: 12, state: 'running' });
    expect(a.history).toHaveLength(1);
    const b = applyEvent(a, { event: 'state', data: '{"state":"succeeded","progress":1}' });
    expect(b).toMatchObject({ state: 'succeeded', progress: 1, epoch: 2 });
    expect(b.history).toHaveLength(1);
  });

  it('appends epoch rows once, and takes a snapshot with its own history whole', () => {
    const r2 = row('training_head', 2);
    const a = applyEvent(applyEvent(job, { event: 'epoch', data: JSON.stringify(r2) }), { event: 'epoch', data: JSON.stringify(r2) });
    expect(a.history.map((r) => r.epoch)).toEqual([1, 2]);
    const snap = applyEvent(a, { event: 'state', data: JSON.stringify({ state: 'running', history: [row('training_head', 1)] }) });
    expect(snap.history).toHaveLength(1);
    expect(applyEvent(job, { event: 'epoch', data: 'not json' })).toBe(job);
  });
});
