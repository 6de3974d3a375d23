// The train job payload carries the config resolved as the job was accepted; a config left to defaults is refused,
// so the run never fills in defaults of its own (of a later version) that the job record does not show.
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '@graft/contract';
import { parseTrainJobPayload, PayloadError } from '@graft/queue';

const ids = { jobId: 'job_abc123', tenant: 'alpha', datasetId: 'ds_abc123', manifestKey: 'tenants/alpha/datasets/ds_abc123/manifest.json' };
const accepted = { ...resolveConfig({ batchSize: 16, head: { units: 64 } }), inputSize: 224 };

describe('parseTrainJobPayload', () => {
  it('takes a resolved config and gives it back unchanged', () => {
    const payload = { ...ids, config: structuredClone(accepted) };
    expect(parseTrainJobPayload(payload).config).toEqual(accepted);
  });

  it('refuses a config left to defaults, naming the fields the run would fill in', () => {
    const raw = { ...ids, config: { batchSize: 16, head: { units: 64 } } };
    expect(() => parseTrainJobPayload(raw)).toThrow(PayloadError);
    expect(() => parseTrainJobPayload(raw)).toThrow(/config is not resolved \(method, backbone, inputSize, augmentation, head\.dropout, .*dropLeaked, labelIssues left to defaults\)/);
  });

  it('refuses a resolved config whose input size was left to the backbone, or that lacks one nested default', () => {
    const { inputSize: _size, ...noSize } = accepted;
    expect(() => parseTrainJobPayload({ ...ids, config: noSize })).toThrow(/\(inputSize left to defaults\)/);
    const { dropout: _dropout, ...head } = accepted.head;
    expect(() => parseTrainJobPayload({ ...ids, config: { ...accepted, head } })).toThrow(/\(head\.dropout left to defaults\)/);
  });

  it('takes a config accepted before fine-tuning had its own patience, training it as then: on the head\'s patience', () => {
    const before = structuredClone(accepted) as Record<string, any>;
    before.earlyStopping = { patience: 7 };
    expect(parseTrainJobPayload({ ...ids, config: before }).config.earlyStopping).toEqual({ patience: 7, fineTuningPatience: 7 });
    // Only the fields added since: one left out otherwise is still refused.
    const { dropout: _dropout, ...head } = accepted.head;
    expect(() => parseTrainJobPayload({ ...ids, config: { ...before, head } })).toThrow(/\(head\.dropout left to defaults\)/);
  });

  it('takes a config accepted before the refit existed, training it as then: without one', () => {
    const { refit: _refit, ...before } = accepted;
    expect(accepted.refit).toBe(true);
    expect(parseTrainJobPayload({ ...ids, config: before }).config.refit).toBe(false);
    expect(parseTrainJobPayload({ ...ids, config: accepted }).config.refit).toBe(true);
  });
});
