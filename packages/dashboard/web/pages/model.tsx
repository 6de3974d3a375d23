// One model and its prediction playground: drop an image, see the top classes, whether it looks like none of
// them, and where the model looks for a class (Grad-CAM).
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, postImage } from '../api';
import { useResource } from '../use-resource';
import { Link, paths } from '../router';
import { dateTime, methodName, num, pct } from '../format';
import type { Model, PredictResponse } from '../types';
import { Card, ErrorBox, Loading, Meter, Mono, PageHead, Stat } from '../components/ui';
import { ExplanationView } from '../components/explanation';

const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp'];
const TOP_K = 5;

const predict = (modelId: string, file: File) => postImage<PredictResponse>(`/v1/models/${modelId}/predict?topK=${TOP_K}`, file);

function Playground({ model }: { model: Model }) {
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [result, setResult] = useState<PredictResponse | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const [over, setOver] = useState(false);
  const [explained, setExplained] = useState<string | null>(null);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => () => void (preview && URL.revokeObjectURL(preview)), [preview]);

  const run = async (f: File | null | undefined) => {
    if (!f) return;
    setError(null);
    setResult(null);
    setExplained(null);
    if (!IMAGE_TYPES.includes(f.type)) {
      setFile(null);
      setPreview(null);
      setError(new Error(`${f.name} is ${f.type || 'not an image'}; drop a JPEG, PNG or WebP image`));
      return;
    }
    setFile(f);
    setPreview(URL.createObjectURL(f));
    setBusy(true);
    try {
      const r = await predict(model.id, f);
      setResult(r);
      setExplained(r.results[0]?.predictions[0]?.label ?? null);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  const predictions = result?.results[0]?.predictions ?? [];
  const ood = result?.results[0]?.outOfDistribution ?? null;
  return (
    <div class="playground">
      <label
        class={`dropzone image-drop ${over ? 'over' : ''} ${preview ? 'has-file' : ''}`}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          void run(e.dataTransfer?.files[0]);
        }}
      >
        <input
          ref={input}
          type="file"
          name="image"
          accept={IMAGE_TYPES.join(',')}
          class="sr-only"
          onChange={(e) => {
            void run((e.target as HTMLInputElement).files?.[0]);
            (e.target as HTMLInputElement).value = '';
          }}
        />
        {preview ? (
          <img src={preview} alt={file?.name ?? 'the image'} class="preview" />
        ) : (
          <span>
            <strong>Drop an image here</strong>
            <br />
            <span class="muted">or click to choose one (JPEG, PNG, WebP)</span>
          </span>
        )}
      </label>
      <div class="predictions" aria-live="polite">
        <h3>Top classes</h3>
        {busy && <Loading what="the prediction" />}
        {error && <ErrorBox error={error} what="a prediction" />}
        {!busy && !error && !result && <p class="muted">The model's top {Math.min(TOP_K, model.labels.length)} classes for your image appear here.</p>}
        {predictions.length > 0 && (
          <ol class="pred-list">
            {predictions.map((p, i) => (
              <li class={`${i === 0 ? 'top' : ''} explainable`} data-label={p.label} onClick={() => setExplained(p.label)} title={`where the model looks for ${p.label}`}>
                <span class="pred-label">{p.label}</span>
                <Meter value={p.probability} text={pct(p.probability)} tone={i === 0 ? 'green' : 'blue'} />
              </li>
            ))}
          </ol>
        )}
        {ood && (
          <p class={`small ${ood.flagged ? 'ood-flag' : 'muted'}`} data-ood={ood.flagged ? 'flagged' : 'ok'}>
            {ood.flagged
              ? `Unlike the training images (distance ${num(ood.score, 2)}): probably none of these classes.`
              : `Like the training images (distance ${num(ood.score, 2)}).`}
          </p>
        )}
        {result && (
          <p class="muted small">
            {file?.name} · answered in {num(result.timing.totalMs, 1)} ms
          </p>
        )}
        {file && explained && (
          <>
            <ExplanationView modelId={model.id} image={file} label={explained} />
            <p class="muted small">Click a class to see where the model looks for it.</p>
          </>
        )}
      </div>
    </div>
  );
}

export function ModelPage({ id }: { id: string }) {
  const res = useResource((s) => get<Model>(`/v1/models/${id}`, s), [id]);
  if (res.error) {
    return (
      <>
        <PageHead title={<Mono>{id}</Mono>} />
        <ErrorBox error={res.error} what="the model" />
      </>
    );
  }
  const m = res.data;
  if (!m) return <Loading what="the model" />;
  const evalm = m.metrics?.test ?? m.metrics?.validation ?? null;
  return (
    <div class="model-page" data-model={m.id}>
      <PageHead
        title={
          <>
            Model <Mono>{m.id}</Mono>
          </>
        }
        sub={
          <>
            trained by <Link href={paths.job(m.jobId)}>{m.jobId}</Link> · {dateTime(m.createdAt)}
          </>
        }
      />
      <div class="stats card-like">
        <Stat label="Classes" value={m.labels.length} hint={m.labels.slice(0, 6).join(', ') + (m.labels.length > 6 ? ', …' : '')} />
        <Stat label="Backbone" value={m.backbone ?? '–'} hint={m.method ? methodName(m.method) : undefined} />
        <Stat label="Input size" value={`${m.inputSize} px`} />
        <Stat label={m.metrics?.test ? 'Test accuracy' : 'Validation accuracy'} value={evalm ? pct(evalm.accuracy) : '–'} />
      </div>
      <Card title="Try it" actions={<span class="muted small">POST /v1/models/{m.id}/predict</span>}>
        <Playground model={m} />
      </Card>
    </div>
  );
}
