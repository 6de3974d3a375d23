// A job's likely label errors, for review: each image's photo, its given label and the label the out-of-sample
// predictions suggest, most suspicious first (GET /v1/jobs/:id/label-issues).
import { useState } from 'preact/hooks';
import { get } from '../api';
import { useResource } from '../use-resource';
import { Link, paths } from '../router';
import { pct } from '../format';
import type { LabelIssue, LabelIssues } from '../types';
import { Card, Empty, ErrorBox, Loading, Meter, Mono, PageHead } from '../components/ui';
import { Thumbnail } from '../components/thumbnail';

/** Images drawn at first, and added by each "show more". */
const PAGE = 48;
const THUMB_SIZE = 160;

function IssueCard({ datasetId, issue, rank }: { datasetId: string; issue: LabelIssue; rank: number }) {
  return (
    <figure class="dup-image label-issue" data-image={issue.imageId} data-path={issue.path} data-label={issue.label} data-suggested={issue.suggestedLabel}>
      <Thumbnail datasetId={datasetId} imageId={issue.imageId} size={THUMB_SIZE} alt={issue.path ?? issue.imageId ?? ''} class="thumb thumb-lg" />
      <figcaption>
        <span class="issue-labels">
          <span class="issue-given" title="the label it was given">{issue.label}</span>
          <span aria-hidden="true"> → </span>
          <strong class="issue-suggested" title="the label the predictions suggest">{issue.suggestedLabel}</strong>
        </span>
        <Meter value={issue.score} text={pct(issue.score, 0)} tone={issue.score >= 0.75 ? 'orange' : 'gray'} />
        <Mono>{issue.path ?? issue.imageId}</Mono>
        <span class="muted small">
          #{rank} · {issue.split}
        </span>
      </figcaption>
    </figure>
  );
}

export function LabelIssuesPage({ id }: { id: string }) {
  const res = useResource((s) => get<LabelIssues>(`/v1/jobs/${id}/label-issues`, s), [id]);
  const [shown, setShown] = useState(PAGE);
  const [split, setSplit] = useState<string>('all');
  const head = (
    <PageHead
      title={
        <>
          Label issues of <Mono>{id}</Mono>
        </>
      }
      sub={<Link href={paths.job(id)}>back to the job</Link>}
    />
  );
  if (res.error) {
    return (
      <>
        {head}
        <ErrorBox error={res.error} what="the label issues" />
      </>
    );
  }
  const r = res.data;
  if (!r) return <Loading what="the label issues" />;
  const splits = ['all', ...new Set(r.items.map((i) => i.split))];
  const items = split === 'all' ? r.items : r.items.filter((i) => i.split === split);
  const scored = r.scored.train + r.scored.validation;
  return (
    <div class="label-issues-page" data-job={id}>
      {head}
      <Card
        title={`${r.total} of ${scored} images may be mislabelled`}
        actions={
          splits.length > 2 ? (
            <span class="segmented">
              {splits.map((s) => (
                <button type="button" class={`btn ${s === split ? 'btn-primary' : ''}`} onClick={() => setSplit(s)}>
                  {s}
                </button>
              ))}
            </span>
          ) : undefined
        }
      >
        <p class="muted small">
          Each training image was classified by a model that did not see it ({r.method.folds}-fold cross-validation over the frozen
          features), each validation image by those models together. Listed are the images the models place confidently in another
          class than their label, most suspicious first; a score near 100% means the predictions all but rule the given label out.
          Check each photo and fix its label in your data where it is wrong.
        </p>
        {items.length === 0 ? (
          <Empty>No image looks mislabelled.</Empty>
        ) : (
          <>
            <div class="dup-group label-issue-list">
              {items.slice(0, shown).map((it, i) => (
                <IssueCard datasetId={r.datasetId} issue={it} rank={i + 1} />
              ))}
            </div>
            {items.length > shown && (
              <button type="button" class="btn" onClick={() => setShown(shown + PAGE)}>
                Show {Math.min(PAGE, items.length - shown)} more of {items.length - shown}
              </button>
            )}
          </>
        )}
      </Card>
    </div>
  );
}
