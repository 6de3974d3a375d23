// Small building blocks shared by the pages.
import type { ComponentChildren } from 'preact';
import { ApiError } from '../api';
import type { JobState } from '../types';

export function StateBadge({ state }: { state: JobState }) {
  return (
    <span class={`badge state-${state}`} data-state={state}>
      {state === 'running' && <span class="pulse" aria-hidden="true" />}
      {state}
    </span>
  );
}

export function ProgressBar({ value, state, label }: { value: number; state?: JobState; label?: string }) {
  const v = Math.max(0, Math.min(1, value || 0));
  return (
    <div class={`progress ${state ? `progress-${state}` : ''}`} role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(v * 100)} aria-label={label}>
      <div class="progress-fill" style={{ width: `${(v * 100).toFixed(1)}%` }} />
    </div>
  );
}

export function Card({ title, actions, children, class: cls }: { title?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; class?: string }) {
  return (
    <section class={`card ${cls ?? ''}`}>
      {(title || actions) && (
        <header class="card-head">
          {title && <h2>{title}</h2>}
          {actions && <div class="card-actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

export function Stat({ label, value, hint }: { label: string; value: ComponentChildren; hint?: ComponentChildren }) {
  return (
    <div class="stat">
      <div class="stat-label">{label}</div>
      <div class="stat-value">{value}</div>
      {hint && <div class="stat-hint">{hint}</div>}
    </div>
  );
}

export function ErrorBox({ error, what }: { error: Error; what?: string }) {
  const code = error instanceof ApiError ? error.code : null;
  return (
    <div class="callout callout-error" role="alert">
      <strong>{what ? `Could not load ${what}` : 'Something went wrong'}</strong>
      <div>
        {error.message}
        {code && <code class="code-tag">{code}</code>}
      </div>
    </div>
  );
}

export function Loading({ what }: { what?: string }) {
  return <div class="muted loading">Loading{what ? ` ${what}` : ''}…</div>;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

/** A horizontal bar for a fraction in 0..1, with its text alongside. */
export function Meter({ value, text, tone = 'blue' }: { value: number; text?: ComponentChildren; tone?: 'blue' | 'green' | 'orange' | 'gray' }) {
  const v = Math.max(0, Math.min(1, Number.isFinite(value) ? value : 0));
  return (
    <div class="meter">
      <div class={`meter-track tone-${tone}`}>
        <div class="meter-fill" style={{ width: `${(v * 100).toFixed(1)}%` }} />
      </div>
      {text !== undefined && <span class="meter-text">{text}</span>}
    </div>
  );
}

export function PageHead({ title, sub, actions }: { title: ComponentChildren; sub?: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <div class="page-head">
      <div>
        <h1>{title}</h1>
        {sub && <div class="page-sub">{sub}</div>}
      </div>
      {actions && <div class="page-actions">{actions}</div>}
    </div>
  );
}

export function Mono({ children }: { children: ComponentChildren }) {
  return <code class="mono">{children}</code>;
}
