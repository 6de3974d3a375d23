// Numbers, sizes, times and durations as people read them.

export const pct = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined || Number.isNaN(x) ? '–' : `${(x * 100).toFixed(digits)}%`;

export const num = (x: number | null | undefined, digits = 3) =>
  x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits);

/** `n` things, the word in the plural where n is not 1 ("1 epoch", "3 epochs"). */
export const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function count(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  return n.toLocaleString('en');
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  if (seconds < 1) return `${Math.max(0, Math.round(seconds * 1000))} ms`;
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const s = (now - Date.parse(iso)) / 1000;
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString('en', { year: 'numeric', month: 'short', day: 'numeric' });
}

export const dateTime = (iso: string | null | undefined) =>
  iso ? new Date(iso).toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' }) : '–';

/** The time between two instants, or from one until now. */
export function elapsed(from: string | null | undefined, to: string | null | undefined, now = Date.now()): string {
  if (!from) return '–';
  return duration(((to ? Date.parse(to) : now) - Date.parse(from)) / 1000);
}

export const PHASE_NAMES: Record<string, string> = {
  preparing: 'Preparing',
  extracting: 'Extracting features',
  training_head: 'Training the head',
  fine_tuning: 'Fine-tuning',
  refitting: 'Refitting on all images',
  training: 'Training',
  evaluating: 'Evaluating',
  exporting: 'Exporting',
};

export const phaseName = (p: string | null | undefined) => (p ? (PHASE_NAMES[p] ?? p.replace(/_/g, ' ')) : '–');

export const METHOD_NAMES: Record<string, string> = {
  fine_tuning: 'Fine-tuning',
  feature_extraction: 'Feature extraction',
  scratch: 'From scratch',
};

export const methodName = (m: unknown) => (typeof m === 'string' ? (METHOD_NAMES[m] ?? m) : '–');
