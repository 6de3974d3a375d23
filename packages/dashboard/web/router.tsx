// Client-side routes under /ui/ (the API serves index.html for every /ui/ path), with the History API.
import type { ComponentChildren } from 'preact';
import { signal, useSignal } from './signal';

const here = () => ({ path: location.pathname, query: new URLSearchParams(location.search) });

const location$ = signal(here());

addEventListener('popstate', () => location$.set(here()));

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (opts.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  location$.set(here());
  if (!opts.replace) scrollTo(0, 0);
}

export function useLocation() {
  return useSignal(location$);
}

interface LinkProps {
  href: string;
  class?: string;
  title?: string;
  'aria-current'?: 'page';
  children?: ComponentChildren;
}

/** An anchor that navigates in place on a plain left click and behaves as a link otherwise. */
export function Link({ href, children, ...rest }: LinkProps) {
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}

export const paths = {
  jobs: '/ui/jobs',
  job: (id: string) => `/ui/jobs/${id}`,
  labelIssues: (id: string) => `/ui/jobs/${id}/label-issues`,
  newJob: (datasetId?: string) => `/ui/jobs/new${datasetId ? `?dataset=${encodeURIComponent(datasetId)}` : ''}`,
  datasets: '/ui/datasets',
  dataset: (id: string) => `/ui/datasets/${id}`,
  models: '/ui/models',
  model: (id: string) => `/ui/models/${id}`,
};
