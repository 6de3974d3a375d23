// Start a training job: dataset, method, backbone, epochs; anything else as JSON.
import { useEffect, useState } from 'preact/hooks';
import { get, postJson } from '../api';
import { useResource } from '../use-resource';
import { navigate, paths, Link } from '../router';
import { count } from '../format';
import type { Backbone, Dataset, DatasetList, Job } from '../types';
import { Card, ErrorBox, Loading, PageHead } from '../components/ui';

const METHODS = [
  { value: 'fine_tuning', label: 'Fine-tuning', help: 'train a new head on the frozen backbone, then fine-tune its top block (the full recipe)' },
  { value: 'feature_extraction', label: 'Feature extraction', help: 'train only a new head on the frozen backbone (fast)' },
  { value: 'scratch', label: 'From scratch', help: 'a small network trained from random weights (no backbone)' },
];

/** Merges b into a, recursively for plain objects. */
function merge(a: Record<string, any>, b: Record<string, any>): Record<string, any> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? merge(out[k], v) : v;
  }
  return out;
}

export function NewJobPage({ datasetId }: { datasetId?: string }) {
  const datasets = useResource((s) => get<DatasetList>('/v1/datasets', s), []);
  const backbones = useResource((s) => get<Backbone[]>('/v1/backbones', s), []);
  const [dataset, setDataset] = useState(datasetId ?? '');
  const [method, setMethod] = useState('fine_tuning');
  const [backbone, setBackbone] = useState('');
  const [headEpochs, setHeadEpochs] = useState('');
  const [ftEpochs, setFtEpochs] = useState('');
  const [inputSize, setInputSize] = useState('');
  const [extra, setExtra] = useState('');
  const [dropLeaked, setDropLeaked] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);

  useEffect(() => {
    if (!dataset && datasets.data?.items.length) setDataset(datasets.data.items[0]!.id);
  }, [datasets.data]);
  useEffect(() => {
    if (!backbone && backbones.data?.length) setBackbone((backbones.data.find((b) => b.weights?.available !== false) ?? backbones.data[0]!).name);
  }, [backbones.data]);

  const chosen = datasets.data?.items.find((d) => d.id === dataset);
  const chosenBackbone = backbones.data?.find((b) => b.name === backbone);
  const leaked = chosen?.health?.leakedImages ?? 0;
  // The size a job trains at when the form leaves it empty (the API resolves the same); scratch has its own.
  const defaultSize = method === 'scratch' ? null : (chosenBackbone?.trainingInputSize ?? chosenBackbone?.inputSize);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    let config: Record<string, any> = { method };
    if (method !== 'scratch' && backbone) config.backbone = backbone;
    if (inputSize) config.inputSize = Number(inputSize);
    if (headEpochs) config.featureExtraction = { epochs: Number(headEpochs) };
    if (method === 'fine_tuning' && ftEpochs) config.fineTuning = { epochs: Number(ftEpochs) };
    if (dropLeaked && leaked > 0) config.dropLeaked = true;
    if (extra.trim()) {
      try {
        const parsed = JSON.parse(extra);
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('it must be a JSON object');
        config = merge(config, parsed);
      } catch (err) {
        setError(new Error(`More settings: not valid JSON (${(err as Error).message})`));
        return;
      }
    }
    setBusy(true);
    try {
      const job = await postJson<Job>('/v1/jobs', { datasetId: dataset, config });
      navigate(paths.job(job.id));
    } catch (err) {
      setError(err as Error);
      setBusy(false);
    }
  };

  return (
    <>
      <PageHead title="New training job" sub="Every field left empty takes the classic small-data recipe's default." />
      <Card>
        {datasets.error && <ErrorBox error={datasets.error} what="the datasets" />}
        {backbones.error && <ErrorBox error={backbones.error} what="the backbones" />}
        {!datasets.data && !datasets.error && <Loading what="datasets" />}
        {datasets.data && !datasets.data.items.length && (
          <div class="callout">
            There is no dataset yet. <Link href={paths.datasets}>Upload one first.</Link>
          </div>
        )}
        <form class="form" onSubmit={submit} aria-label="New job">
          <div class="field">
            <label for="job-dataset">Dataset</label>
            <select id="job-dataset" name="dataset" value={dataset} required onChange={(e) => setDataset((e.target as HTMLSelectElement).value)}>
              {(datasets.data?.items ?? []).map((d) => (
                <option value={d.id}>
                  {d.name} ({d.classes.length} classes, {count(d.imageCount)} images)
                </option>
              ))}
            </select>
            {chosen && (
              <div class="help">
                splits: {Object.entries(chosen.splits).map(([s, c]) => `${s} ${Object.values(c).reduce((a, b) => a + b, 0)}`).join(', ')}
                {!chosen.splits.test && ' · no test split: add "split": {"test": 0.2} below to hold some images out'}
              </div>
            )}
          </div>
          <div class="field">
            <label for="job-method">Method</label>
            <select id="job-method" name="method" value={method} onChange={(e) => setMethod((e.target as HTMLSelectElement).value)}>
              {METHODS.map((m) => (
                <option value={m.value}>{m.label}</option>
              ))}
            </select>
            <div class="help">{METHODS.find((m) => m.value === method)?.help}</div>
          </div>
          <div class="field">
            <label for="job-backbone">Backbone</label>
            <select id="job-backbone" name="backbone" value={backbone} disabled={method === 'scratch'} onChange={(e) => setBackbone((e.target as HTMLSelectElement).value)}>
              {(backbones.data ?? []).map((b) => (
                <option value={b.name} disabled={b.weights?.available === false}>
                  {b.name} · trains at {b.trainingInputSize ?? b.inputSize}px{b.params ? ` · ${count(b.params)} params` : ''}
                  {b.weights?.available === false ? ' (weights unavailable)' : ''}
                </option>
              ))}
            </select>
          </div>
          <div class="field-row">
            <div class="field">
              <label for="job-head-epochs">{method === 'scratch' ? 'Epochs' : 'Head epochs'}</label>
              <input id="job-head-epochs" name="headEpochs" type="number" min={1} max={1000} placeholder="30" value={headEpochs} onInput={(e) => setHeadEpochs((e.target as HTMLInputElement).value)} />
            </div>
            <div class="field">
              <label for="job-ft-epochs">Fine-tuning epochs</label>
              <input id="job-ft-epochs" name="fineTuningEpochs" type="number" min={1} max={1000} placeholder="20" disabled={method !== 'fine_tuning'} value={ftEpochs} onInput={(e) => setFtEpochs((e.target as HTMLInputElement).value)} />
            </div>
            <div class="field">
              <label for="job-input-size">Input size (px)</label>
              <input id="job-input-size" name="inputSize" type="number" min={32} max={1024} placeholder={defaultSize ? String(defaultSize) : 'default'} value={inputSize} onInput={(e) => setInputSize((e.target as HTMLInputElement).value)} />
            </div>
          </div>
          {leaked > 0 && (
            <div class="field">
              <label class="check" for="job-drop-leaked">
                <input id="job-drop-leaked" name="dropLeaked" type="checkbox" checked={dropLeaked} onChange={(e) => setDropLeaked((e.target as HTMLInputElement).checked)} />
                Leave out {leaked === 1 ? 'the leaked validation or test image' : `the ${count(leaked)} leaked validation and test images`} (near-copies of images in an earlier split)
              </label>
              <div class="help">the dataset's health report lists them; left in, they make the scores look better than they are</div>
            </div>
          )}
          <div class="field">
            <label for="job-extra">More settings (JSON, merged into the config)</label>
            <textarea id="job-extra" name="extra" rows={3} spellcheck={false} placeholder='{"batchSize": 16, "featureExtraction": {"learningRate": 0.0001}, "split": {"test": 0.2}}' value={extra} onInput={(e) => setExtra((e.target as HTMLTextAreaElement).value)} />
          </div>
          {error && <ErrorBox error={error} />}
          <div class="form-actions">
            <button type="submit" class="btn btn-primary" disabled={busy || !dataset}>
              {busy ? 'Starting…' : 'Start training'}
            </button>
          </div>
        </form>
      </Card>
    </>
  );
}
