// Datasets: upload an archive, and the list.
import { useRef, useState } from 'preact/hooks';
import { get, upload } from '../api';
import { useResource } from '../use-resource';
import { Link, navigate, paths } from '../router';
import { ago, bytes, count } from '../format';
import type { Dataset, DatasetList } from '../types';
import { Card, Empty, ErrorBox, Loading, Mono, PageHead, ProgressBar } from '../components/ui';

const ACCEPT = '.zip,.tar,.tar.gz,.tgz,application/zip,application/x-tar,application/gzip';

function UploadForm({ onDone }: { onDone: (d: Dataset) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  const choose = (f: File | null | undefined) => {
    setFile(f ?? null);
    setError(null);
    if (f && !name) setName(f.name.replace(/\.(zip|tar\.gz|tgz|tar)$/i, ''));
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    const form = new FormData();
    if (name.trim()) form.append('name', name.trim());
    form.append('file', file, file.name);
    setError(null);
    setProgress(0);
    try {
      const d = await upload<Dataset>('/v1/datasets', form, setProgress);
      setFile(null);
      setName('');
      if (input.current) input.current.value = '';
      onDone(d);
    } catch (err) {
      setError(err as Error);
    } finally {
      setProgress(null);
    }
  };

  const busy = progress !== null;
  return (
    <form class="form upload" onSubmit={submit} aria-label="Upload a dataset">
      <label
        class={`dropzone ${over ? 'over' : ''} ${file ? 'has-file' : ''}`}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          choose(e.dataTransfer?.files[0]);
        }}
      >
        <input ref={input} type="file" name="file" accept={ACCEPT} class="sr-only" onChange={(e) => choose((e.target as HTMLInputElement).files?.[0])} />
        {file ? (
          <span>
            <strong>{file.name}</strong> <span class="muted">({bytes(file.size)})</span>
          </span>
        ) : (
          <span>
            <strong>Drop a .zip, .tar or .tar.gz here</strong> or click to choose one
          </span>
        )}
        <span class="muted small">
          laid out as <code>&lt;class&gt;/&lt;image&gt;</code> or <code>&lt;split&gt;/&lt;class&gt;/&lt;image&gt;</code> (splits: train, validation, test)
        </span>
      </label>
      <div class="field-row align-end">
        <div class="field grow">
          <label for="dataset-name">Name</label>
          <input id="dataset-name" name="name" placeholder="e.g. cats-vs-dogs" value={name} maxLength={200} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </div>
        <button type="submit" class="btn btn-primary" disabled={!file || busy}>
          {busy ? (progress! < 1 ? `Uploading ${Math.round(progress! * 100)}%` : 'Checking images…') : 'Upload'}
        </button>
      </div>
      {busy && <ProgressBar value={progress!} state="running" label="upload progress" />}
      {error && <ErrorBox error={error} what="the upload" />}
    </form>
  );
}

export function DatasetsPage() {
  const list = useResource((s) => get<DatasetList>('/v1/datasets', s), []);
  return (
    <>
      <PageHead title="Datasets" sub="Labelled image sets to train on. Every image is checked on upload." />
      <Card title="Upload a dataset">
        <UploadForm onDone={(d) => navigate(paths.dataset(d.id))} />
      </Card>
      <Card title="Your datasets">
        {list.error && <ErrorBox error={list.error} what="the datasets" />}
        {!list.data && !list.error && <Loading what="datasets" />}
        {list.data && !list.data.items.length && <Empty>No datasets yet: upload one above.</Empty>}
        {list.data && list.data.items.length > 0 && (
          <div class="table-scroll">
            <table class="table">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Classes</th>
                  <th class="num">Images</th>
                  <th>Splits</th>
                  <th class="num">Size</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((d) => (
                  <tr data-dataset={d.id}>
                    <td>
                      <Link href={paths.dataset(d.id)} class="strong">
                        {d.name}
                      </Link>
                      <div class="muted small">
                        <Mono>{d.id}</Mono>
                        {d.warnings.length > 0 && <span class="warn-tag"> · {d.warnings.length} warning{d.warnings.length > 1 ? 's' : ''}</span>}
                      </div>
                    </td>
                    <td class="ellipsis" title={d.classes.join(', ')}>
                      {d.classes.length}: {d.classes.slice(0, 4).join(', ')}
                      {d.classes.length > 4 ? ', …' : ''}
                    </td>
                    <td class="num">{count(d.imageCount)}</td>
                    <td>{Object.keys(d.splits).join(', ')}</td>
                    <td class="num nowrap">{bytes(d.bytes)}</td>
                    <td class="muted nowrap">{ago(d.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </>
  );
}
