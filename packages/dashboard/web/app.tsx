// The page frame (top bar, API key, banner) and the routes.
import { useEffect, useState } from 'preact/hooks';
import { apiKey, needsKey, setApiKey } from './api';
import { useSignal } from './signal';
import { Link, paths, useLocation } from './router';
import { JobsPage } from './pages/jobs';
import { JobPage } from './pages/job';
import { LabelIssuesPage } from './pages/label-issues';
import { NewJobPage } from './pages/new-job';
import { DatasetsPage } from './pages/datasets';
import { DatasetPage } from './pages/dataset';
import { ModelsPage } from './pages/models';
import { ModelPage } from './pages/model';
import { Empty, PageHead } from './components/ui';

function KeyForm({ id, onDone, autoFocus }: { id: string; onDone?: () => void; autoFocus?: boolean }) {
  const current = useSignal(apiKey);
  const [value, setValue] = useState(current);
  return (
    <form
      class="key-form"
      onSubmit={(e) => {
        e.preventDefault();
        setApiKey(value);
        onDone?.();
      }}
    >
      <label for={id} class="sr-only">
        API key
      </label>
      <input
        id={id}
        name="apiKey"
        type="password"
        autoComplete="off"
        spellcheck={false}
        placeholder="API key"
        value={value}
        autoFocus={autoFocus}
        onInput={(e) => setValue((e.target as HTMLInputElement).value)}
      />
      <button type="submit" class="btn btn-primary">
        Save key
      </button>
      {current && (
        <button
          type="button"
          class="btn btn-ghost"
          onClick={() => {
            setValue('');
            setApiKey('');
            onDone?.();
          }}
        >
          Forget
        </button>
      )}
    </form>
  );
}

function KeyControl() {
  const key = useSignal(apiKey);
  const missing = useSignal(needsKey);
  const [open, setOpen] = useState(false);
  // The dot warns only when the API asked for a key; a service without keys needs none.
  const tone = key ? 'has-key' : missing ? 'needs-key' : 'no-key';
  return (
    <div class="key-control">
      <button type="button" class={`key-button ${tone}`} onClick={() => setOpen(!open)} aria-expanded={open}>
        <span class="key-dot" aria-hidden="true" />
        {key ? `Key …${key.slice(-4)}` : missing ? 'Set API key' : 'API key'}
      </button>
      {open && (
        <div class="key-popover">
          <p class="muted small">Sent as <code>Authorization: Bearer</code> and kept in this browser only.</p>
          <KeyForm id="api-key-popover" autoFocus onDone={() => setOpen(false)} />
        </div>
      )}
    </div>
  );
}

function KeyBanner() {
  const key = useSignal(apiKey);
  return (
    <div class="banner" role="alert">
      <div class="container banner-inner">
        <div>
          <strong>{key ? 'The API did not accept this key.' : 'This service needs an API key.'}</strong>{' '}
          <span class="muted">Enter one of the keys from GRAFT_API_KEYS.</span>
        </div>
        <KeyForm id="api-key" />
      </div>
    </div>
  );
}

const NAV = [
  { href: paths.jobs, label: 'Jobs', match: (p: string) => p === '/' || p === '/ui/' || p.startsWith('/ui/jobs') },
  { href: paths.datasets, label: 'Datasets', match: (p: string) => p.startsWith('/ui/datasets') },
  { href: paths.models, label: 'Models', match: (p: string) => p.startsWith('/ui/models') },
];

function Logo() {
  return (
    <svg width="22" height="22" viewBox="0 0 24 24" aria-hidden="true">
      <path d="M12 21V11" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" fill="none" />
      <path d="M12 12C12 7 8.5 4 4 4c0 4.5 3 8 8 8Z" fill="#4ade80" />
      <path d="M12 14c0-4.2 3-7 7.5-7 0 4.2-3 7-7.5 7Z" fill="#22c55e" />
    </svg>
  );
}

/** The browser tab's title: the item a page shows, else its section. */
export function pageTitle(path: string): string {
  const item = /^\/ui\/(jobs|datasets|models)\/((?:job|ds|mdl)_[a-z0-9]+)\/?$/.exec(path);
  if (item) return `${{ jobs: 'Job', datasets: 'Dataset', models: 'Model' }[item[1] as 'jobs' | 'datasets' | 'models']} ${item[2]}`;
  if (path === '/ui/jobs/new') return 'New job';
  const issues = /^\/ui\/jobs\/(job_[a-z0-9]+)\/label-issues\/?$/.exec(path);
  if (issues) return `Label issues of ${issues[1]}`;
  return NAV.find((n) => n.match(path))?.label ?? 'Graft';
}

function route(path: string, query: URLSearchParams) {
  let m: RegExpExecArray | null;
  if (path === '/' || path === '/ui/' || path === '/ui/jobs' || path === '/ui/jobs/') return <JobsPage />;
  if (path === '/ui/jobs/new') return <NewJobPage datasetId={query.get('dataset') ?? undefined} />;
  if ((m = /^\/ui\/jobs\/(job_[a-z0-9]+)\/?$/.exec(path))) return <JobPage id={m[1]!} />;
  if ((m = /^\/ui\/jobs\/(job_[a-z0-9]+)\/label-issues\/?$/.exec(path))) return <LabelIssuesPage id={m[1]!} />;
  if (path === '/ui/datasets' || path === '/ui/datasets/') return <DatasetsPage />;
  if ((m = /^\/ui\/datasets\/(ds_[a-z0-9]+)\/?$/.exec(path))) return <DatasetPage id={m[1]!} />;
  if (path === '/ui/models' || path === '/ui/models/') return <ModelsPage />;
  if ((m = /^\/ui\/models\/(mdl_[a-z0-9]+)\/?$/.exec(path))) return <ModelPage id={m[1]!} />;
  return (
    <>
      <PageHead title="Not found" />
      <Empty>
        There is no page at <code>{path}</code>. <Link href={paths.jobs}>Go to the jobs.</Link>
      </Empty>
    </>
  );
}

export function App() {
  const { path, query } = useLocation();
  const missingKey = useSignal(needsKey);
  useEffect(() => {
    document.title = `${pageTitle(path)} · Graft`;
  }, [path]);
  return (
    <>
      <header class="topbar">
        <div class="container topbar-inner">
          <Link href={paths.jobs} class="brand">
            <Logo />
            <span>Graft</span>
          </Link>
          <nav class="nav">
            {NAV.map((n) => (
              <Link href={n.href} class={n.match(path) ? 'active' : ''} aria-current={n.match(path) ? 'page' : undefined}>
                {n.label}
              </Link>
            ))}
          </nav>
          <div class="spacer" />
          <a class="nav-ext" href="/docs" target="_blank" rel="noreferrer">
            API docs ↗
          </a>
          <KeyControl />
        </div>
      </header>
      {missingKey && <KeyBanner />}
      <main class="container main">{route(path, query)}</main>
    </>
  );
}
