// Formatting for people: tables, sizes, durations, percentages, and a little colour on terminals.

export interface Out {
  /** Results: tables, ids, JSON. */
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Progress, prompts and notes. */
  err: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

export const stdio: Out = { out: process.stdout, err: process.stderr };

const useColor = (s: { isTTY?: boolean }) => !!s.isTTY && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
const paint = (code: number, s: string, stream: { isTTY?: boolean }) => (useColor(stream) ? `\u001b[${code}m${s}\u001b[0m` : s);
export const color = {
  green: (s: string, st: { isTTY?: boolean } = process.stdout) => paint(32, s, st),
  red: (s: string, st: { isTTY?: boolean } = process.stdout) => paint(31, s, st),
  yellow: (s: string, st: { isTTY?: boolean } = process.stdout) => paint(33, s, st),
  dim: (s: string, st: { isTTY?: boolean } = process.stdout) => paint(2, s, st),
  bold: (s: string, st: { isTTY?: boolean } = process.stdout) => paint(1, s, st),
};

export function paintState(state: string, stream: { isTTY?: boolean } = process.stdout): string {
  if (state === 'succeeded') return color.green(state, stream);
  if (state === 'failed') return color.red(state, stream);
  if (state === 'cancelled') return color.yellow(state, stream);
  return state;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
export const visibleLength = (s: string) => [...s.replace(ANSI, '')].length;

/** A plain text table: a header row, then rows; columns padded to their widest cell. */
export function table(header: string[], rows: (string | number)[][], opts: { align?: ('left' | 'right')[] } = {}): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => visibleLength(r[c] ?? ''))));
  const line = (r: string[]) =>
    r
      .map((cell, c) => {
        const pad = ' '.repeat(Math.max(0, widths[c]! - visibleLength(cell)));
        return opts.align?.[c] === 'right' ? pad + cell : c === r.length - 1 ? cell : cell + pad;
      })
      .join('  ')
      .trimEnd();
  return cells.map(line).join('\n') + '\n';
}

/** How the user runs this command, for the hints it prints: `npx graft` under npx, else `graft`. */
export const cli = (env: NodeJS.ProcessEnv = process.env): string => (env.npm_command === 'exec' ? 'npx graft' : 'graft');

/** Sizes in binary units (KiB, MiB), as the dashboard shows them. */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** 75 → "1m 15s", 3700 → "1h 1m". */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '-';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `n` things, the word in the plural where n is not 1 ("1 epoch", "3 epochs"). */
export const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

export const pct = (v: number | null | undefined, digits = 1) =>
  v === null || v === undefined || !Number.isFinite(v) ? '-' : `${(v * 100).toFixed(digits)}%`;

export const num = (v: number | null | undefined, digits = 4) =>
  v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);

/** "2024-05-01T12:03:04.567Z" → "2024-05-01 12:03". */
export const when = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').slice(0, 16) : '-');

export const json = (o: Out, v: unknown): void => void o.out.write(JSON.stringify(v, null, 2) + '\n');

const PHASES: Record<string, string> = {
  preparing: 'preparing',
  extracting: 'extracting features',
  training_head: 'training the head',
  fine_tuning: 'fine-tuning',
  refitting: 'refitting on all images',
  evaluating: 'evaluating',
  exporting: 'exporting',
};
export const phaseName = (p: string | null | undefined) => (p ? (PHASES[p] ?? p.replace(/_/g, ' ')) : '-');
