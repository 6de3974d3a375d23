// A dataset's health report on its page: findings in words, each group of near-identical images and each pair that
// leaks across splits as thumbnails side by side, and the odd images, each named by its archive path.
import { get } from '../api';
import { useResource } from '../use-resource';
import type { Dataset, DatasetHealth, ImageRef } from '../types';
import { plural } from '../format';
import { Card, Empty, ErrorBox, Loading, Mono } from '../components/ui';
import { Thumbnail } from '../components/thumbnail';

/** Groups and pairs drawn at most; the counts above them cover all. */
const SHOWN = 40;
const THUMB_SIZE = 160;

function ImageCard({ datasetId, image, note }: { datasetId: string; image: ImageRef; note?: string }) {
  return (
    <figure class="dup-image" data-image={image.imageId} data-path={image.path}>
      <Thumbnail datasetId={datasetId} imageId={image.imageId} size={THUMB_SIZE} alt={image.path} class="thumb thumb-lg" />
      <figcaption>
        <Mono>{image.path}</Mono>
        <span class="muted small">
          {image.split} · {image.label} · {image.width}×{image.height}
          {note ? ` · ${note}` : ''}
        </span>
      </figcaption>
    </figure>
  );
}

const more = (n: number) => (n > SHOWN ? <p class="muted small">and {n - SHOWN} more (GET /v1/datasets/:id/health lists them all)</p> : null);

export function HealthCard({ d }: { d: Dataset }) {
  const res = useResource((s) => get<DatasetHealth>(`/v1/datasets/${d.id}/health`, s), [d.id]);
  if (res.error) return <ErrorBox error={res.error} what="the health report" />;
  const h = res.data;
  if (!h) return <Loading what="the health report" />;
  return (
    <>
      <Card title="Health" actions={<span class="muted small">checked at upload in {h.seconds.toFixed(2)} s</span>}>
        {h.findings.length === 0 ? (
          <Empty>No near-copies, leakage between splits or odd images found.</Empty>
        ) : (
          <ul class="findings">
            {h.findings.map((f) => (
              <li data-kind={f.kind}>{f.message}</li>
            ))}
          </ul>
        )}
      </Card>
      {h.leakage.length > 0 && (
        <Card title={`Leakage between splits (${plural(h.summary.leakagePairs, 'pair')})`} actions={<span class="muted small">the same photo in two splits</span>}>
          <div class="dup-groups">
            {h.leakage.slice(0, SHOWN).map((l) => (
              <div class="dup-group leak-pair" data-similarity={l.similarity}>
                <ImageCard datasetId={d.id} image={l.images[0]} />
                <ImageCard datasetId={d.id} image={l.images[1]} note={`similarity ${l.similarity.toFixed(2)}`} />
              </div>
            ))}
          </div>
          {more(h.leakage.length)}
        </Card>
      )}
      {h.nearDuplicates.length > 0 && (
        <Card title={`Near-identical images within a split (${plural(h.summary.nearDuplicateGroups, 'group')})`}>
          <div class="dup-groups">
            {h.nearDuplicates.slice(0, SHOWN).map((g) => (
              <div class={`dup-group${g.mixedLabels ? ' mixed-labels' : ''}`} data-split={g.split}>
                {g.images.map((im) => (
                  <ImageCard datasetId={d.id} image={im} />
                ))}
                {g.mixedLabels && <span class="badge label-conflict">labels differ</span>}
              </div>
            ))}
          </div>
          {more(h.nearDuplicates.length)}
        </Card>
      )}
      {h.tinyImages.length + h.extremeAspectImages.length > 0 && (
        <Card title="Odd images">
          <div class="dup-group odd-images">
            {h.tinyImages.slice(0, SHOWN).map((im) => (
              <ImageCard datasetId={d.id} image={im} note="tiny" />
            ))}
            {h.extremeAspectImages.slice(0, SHOWN).map((im) => (
              <ImageCard datasetId={d.id} image={im} note={`aspect ${im.aspect}:1`} />
            ))}
          </div>
        </Card>
      )}
    </>
  );
}
