// One dataset: class counts per split, a few images of each class, its health report, and what the upload warned
// about or rejected.
import { useState } from 'preact/hooks';
import { del, get } from '../api';
import { useResource } from '../use-resource';
import { Link, navigate, paths } from '../router';
import { bytes, count, dateTime } from '../format';
import type { Dataset, Thumbnail } from '../types';
import { Card, Empty, ErrorBox, Loading, Meter, Mono, PageHead, Stat } from '../components/ui';
import { HealthCard } from './dataset-health';

const SPLIT_ORDER = ['train', 'validation', 'test'];
const THUMBS_PER_CLASS = 8;

function ClassCounts({ d }: { d: Dataset }) {
  const splits = Object.keys(d.splits).sort((a, b) => SPLIT_ORDER.indexOf(a) - SPLIT_ORDER.indexOf(b));
  const totals = new Map(d.classes.map((c) => [c, splits.reduce((a, s) => a + (d.splits[s]?.[c] ?? 0), 0)]));
  const most = Math.max(1, ...totals.values());
  return (
    <div class="table-scroll">
      <table class="table class-counts">
        <thead>
          <tr>
            <th>Class</th>
            {splits.map((s) => (
              <th class="num">{s}</th>
            ))}
            <th class="num">Total</th>
            <th class="bar-col" />
          </tr>
        </thead>
        <tbody>
          {d.classes.map((c) => (
            <tr data-class={c}>
              <td class="strong">{c}</td>
              {splits.map((s) => (
                <td class="num" data-split={s}>
                  {d.splits[s]?.[c] ?? 0}
                </td>
              ))}
              <td class="num strong">{totals.get(c)}</td>
              <td class="bar-col">
                <Meter value={totals.get(c)! / most} tone="gray" />
              </td>
            </tr>
          ))}
        </tbody>
        <tfoot>
          <tr>
            <th>All</th>
            {splits.map((s) => (
              <th class="num">{Object.values(d.splits[s] ?? {}).reduce((a, b) => a + b, 0)}</th>
            ))}
            <th class="num">{d.imageCount}</th>
            <th />
          </tr>
        </tfoot>
      </table>
    </div>
  );
}

function Thumbnails({ d }: { d: Dataset }) {
  const res = useResource(
    (s) => get<{ items: Thumbnail[] }>(`/v1/datasets/${d.id}/thumbnails?limit=${THUMBS_PER_CLASS}`, s),
    [d.id],
  );
  if (res.error) return <ErrorBox error={res.error} what="the thumbnails" />;
  if (!res.data) return <Loading what="images" />;
  const byClass = new Map<string, Thumbnail[]>();
  for (const t of res.data.items) byClass.set(t.class, [...(byClass.get(t.class) ?? []), t]);
  return (
    <div class="thumb-classes">
      {d.classes.map((c) => (
        <div class="thumb-class" data-class={c}>
          <div class="thumb-class-name">
            {c}
          </div>
          <div class="thumbs">
            {(byClass.get(c) ?? []).map((t) => (
              <img class="thumb" src={t.image} alt={`${c} (${t.split})`} title={`${t.path ?? t.split} · ${t.width}×${t.height}`} loading="lazy" />
            ))}
          </div>
        </div>
      ))}
    </div>
  );
}

export function DatasetPage({ id }: { id: string }) {
  const res = useResource((s) => get<Dataset>(`/v1/datasets/${id}`, s), [id]);
  const [deleteError, setDeleteError] = useState<Error | null>(null);
  if (res.error) {
    return (
      <>
        <PageHead title={<Mono>{id}</Mono>} />
        <ErrorBox error={res.error} what="the dataset" />
      </>
    );
  }
  const d = res.data;
  if (!d) return <Loading what="the dataset" />;

  const remove = async () => {
    if (!confirm(`Delete the dataset "${d.name}" and all its images? Models trained on it stay.`)) return;
    try {
      await del(`/v1/datasets/${d.id}`);
      navigate(paths.datasets);
    } catch (err) {
      setDeleteError(err as Error);
    }
  };

  return (
    <div class="dataset-page" data-dataset={d.id}>
      <PageHead
        title={d.name}
        sub={
          <>
            <Mono>{d.id}</Mono> · uploaded {dateTime(d.createdAt)}
          </>
        }
        actions={
          <>
            <button type="button" class="btn btn-ghost-danger" onClick={remove}>
              Delete
            </button>
            <Link href={paths.newJob(d.id)} class="btn btn-primary">
              Train on it
            </Link>
          </>
        }
      />
      {deleteError && <ErrorBox error={deleteError} />}
      <div class="stats card-like">
        <Stat label="Classes" value={d.classes.length} />
        <Stat label="Images" value={count(d.imageCount)} />
        <Stat label="Size" value={bytes(d.bytes)} />
        <Stat label="Rejected" value={d.rejected.length} />
        {d.duplicates !== undefined && <Stat label="Duplicates" value={d.duplicates} hint="identical images, kept once" />}
        {d.health && <Stat label="Near-copies" value={d.health.nearDuplicateImages} hint="in groups within a split" />}
        {d.health && <Stat label="Leaked" value={d.health.leakedImages} hint="validation or test images also in an earlier split" />}
      </div>
      {d.warnings.length > 0 && (
        <div class="callout callout-warn" role="note">
          <strong>Warnings</strong>
          <ul>
            {d.warnings.map((w) => (
              <li>{w}</li>
            ))}
          </ul>
        </div>
      )}
      <Card title="Images per class and split">
        <ClassCounts d={d} />
      </Card>
      <Card title="Examples" actions={<span class="muted small">a few images of each class</span>}>
        <Thumbnails d={d} />
      </Card>
      {d.health && <HealthCard d={d} />}
      <Card title={`Rejected files (${d.rejected.length})`}>
        {!d.rejected.length ? (
          <Empty>Every file in the archive was a usable image.</Empty>
        ) : (
          <div class="table-scroll">
            <table class="table compact">
              <thead>
                <tr>
                  <th>Path</th>
                  <th>Reason</th>
                </tr>
              </thead>
              <tbody>
                {d.rejected.map((r) => (
                  <tr>
                    <td>
                      <Mono>{r.path}</Mono>
                    </td>
                    <td>{r.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </div>
  );
}
