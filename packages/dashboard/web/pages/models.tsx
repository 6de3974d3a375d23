// Trained models.
import { get } from '../api';
import { useResource } from '../use-resource';
import { Link, paths } from '../router';
import { ago, methodName, pct } from '../format';
import type { Model, ModelList } from '../types';
import { Card, Empty, ErrorBox, Loading, Mono, PageHead } from '../components/ui';

export function ModelsPage() {
  const list = useResource((s) => get<ModelList>('/v1/models', s), []);
  return (
    <>
      <PageHead title="Models" sub="Every job that succeeds publishes a model. Open one to try it on your images." />
      <Card>
        {list.error && <ErrorBox error={list.error} what="the models" />}
        {!list.data && !list.error && <Loading what="models" />}
        {list.data && !list.data.items.length && (
          <Empty>
            No models yet: they appear when a <Link href={paths.jobs}>job</Link> succeeds.
          </Empty>
        )}
        {list.data && list.data.items.length > 0 && (
          <div class="table-scroll">
            <table class="table">
              <thead>
                <tr>
                  <th>Model</th>
                  <th>Classes</th>
                  <th>Backbone</th>
                  <th class="num">Accuracy</th>
                  <th>Job</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((m) => {
                  const acc = m.metrics?.test?.accuracy ?? m.metrics?.validation?.accuracy;
                  return (
                    <tr data-model={m.id}>
                      <td>
                        <Link href={paths.model(m.id)} class="strong">
                          <Mono>{m.id}</Mono>
                        </Link>
                        {m.method && <div class="muted small">{methodName(m.method)}</div>}
                      </td>
                      <td class="ellipsis" title={m.labels.join(', ')}>
                        {m.labels.length}: {m.labels.slice(0, 4).join(', ')}
                        {m.labels.length > 4 ? ', …' : ''}
                      </td>
                      <td>
                        {m.backbone ?? '–'} <span class="muted small">{m.inputSize}px</span>
                      </td>
                      <td class="num">
                        {acc !== undefined ? pct(acc) : '–'}
                        {acc !== undefined && <div class="muted small">{m.metrics?.test ? 'test' : 'validation'}</div>}
                      </td>
                      <td>
                        <Link href={paths.job(m.jobId)}>
                          <Mono>{m.jobId}</Mono>
                        </Link>
                      </td>
                      <td class="muted nowrap">{ago(m.createdAt)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </>
  );
}
