// Live progress: bars redrawn in place on a terminal (cli-progress), plain lines everywhere else.
import cliProgress from 'cli-progress';
import type { HistoryRow } from './client';
import type { JobView, PhaseStatus } from './job-view';
import { bytes, duration, num, type Out, phaseName } from './output';

/** What the follower drives: one renderer for a job's life. */
export interface JobRenderer {
  update(view: JobView, change: { state?: boolean; phase?: boolean; row?: HistoryRow }): void;
  /** A line above the bars (or just a line). */
  note(line: string): void;
  /** Stops redrawing, leaving the last frame, so that a prompt can be written below it. */
  pause(): void;
  resume(view: JobView): void;
  stop(view: JobView): void;
}

const BAR_COMPLETE = '\u2588';
const BAR_INCOMPLETE = '\u2591';

const PHASE_LABEL: Record<string, [wide: string, narrow: string]> = {
  training_head: ['training head', 'head'],
  fine_tuning: ['fine-tuning', 'fine-tune'],
};
const label = (phase: string, wide: boolean) => (PHASE_LABEL[phase]?.[wide ? 0 : 1] ?? phase.replace(/_/g, ' '));

/** The text after a phase's bar: epochs, the last epoch's metrics, time left. */
export function phaseInfo(p: PhaseStatus, wide: boolean): string {
  const last = p.rows.at(-1);
  const total = p.planned ?? '?';
  const parts: string[] = [`${p.done}/${total}${wide ? ' epochs' : ''}`];
  if (last) {
    parts.push(`loss ${num(last.loss, 3)} acc ${num(last.accuracy, 3)}`);
    if (last.valAccuracy !== null || last.valLoss !== null) {
      parts.push(wide ? `val loss ${num(last.valLoss, 3)} acc ${num(last.valAccuracy, 3)}` : `val_acc ${num(last.valAccuracy, 3)}`);
    }
  }
  if (p.status === 'waiting') parts.push('waiting');
  else if (p.status === 'skipped') parts.push('not run');
  else if (p.status === 'running') parts.push(`ETA ${p.etaSeconds === null ? '-' : duration(p.etaSeconds)}`);
  else if (p.interrupted) parts.push(`stopped after ${duration(p.seconds)}`);
  else parts.push(`${p.stoppedEarly ? 'stopped early, ' : ''}done in ${duration(p.seconds)}`);
  return parts.join(wide ? ' \u2502 ' : ' ');
}

/** The text after the job's overall bar. */
export function jobInfo(view: JobView): string {
  const j = view.job;
  const pctText = `${Math.floor((j.progress ?? 0) * 100)}%`.padStart(4);
  if (j.state === 'queued') return `${pctText} waiting for a worker`;
  if (view.terminal) return `${pctText} ${j.state}`;
  // The job cannot end before the phase it is in: its time left is at least that phase's.
  const phaseLeft = view.phases().find((p) => p.status === 'running')?.etaSeconds ?? null;
  const left = j.etaSeconds === null || j.etaSeconds === undefined ? phaseLeft : Math.max(j.etaSeconds, phaseLeft ?? 0);
  const eta = left === null ? '' : ` \u00b7 ETA ${duration(left)}`;
  return `${pctText} ${phaseName(j.phase)}${eta}`;
}

const truncate = (s: string, width: number) => ([...s].length > width ? [...s].slice(0, Math.max(0, width - 1)).join('') + '\u2026' : s);

/** Bars on a terminal: one for the whole job, one per training phase. */
export class BarsRenderer implements JobRenderer {
  private multibar: cliProgress.MultiBar | null = null;
  private jobBar: cliProgress.SingleBar | null = null;
  private phaseBars = new Map<string, cliProgress.SingleBar>();

  constructor(
    private readonly io: Out,
    view: JobView,
  ) {
    this.start(view);
  }

  private get columns(): number {
    return Math.max(40, this.io.err.columns ?? 80);
  }

  private get wide(): boolean {
    return this.columns >= 116;
  }

  private start(view: JobView): void {
    this.multibar = new cliProgress.MultiBar({
      format: '{head}{bar}{tail}',
      stream: this.io.err as NodeJS.WriteStream,
      barCompleteChar: BAR_COMPLETE,
      barIncompleteChar: BAR_INCOMPLETE,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: false,
      fps: 8,
      forceRedraw: true,
      linewrap: false,
    });
    this.jobBar = this.multibar.create(1000, 0, { head: '', tail: '' }, { barsize: this.barsize() });
    this.phaseBars.clear();
    for (const p of view.phases()) {
      this.phaseBars.set(p.phase, this.multibar.create(Math.max(1, p.planned ?? 1), 0, { head: '', tail: '' }, { barsize: this.barsize() }));
    }
    this.draw(view);
  }

  private barsize(): number {
    return this.wide ? 24 : 14;
  }

  private draw(view: JobView): void {
    if (!this.multibar) return;
    const wide = this.wide;
    const labelWidth = wide ? 16 : 11;
    const room = (head: string) => this.columns - 1 - head.length - this.barsize() - 1;
    // The job's id is printed above the bars; the overall bar lines up with the phase bars under it.
    const head = `${'job'.padEnd(labelWidth + 2)}`;
    this.jobBar!.update(Math.round((view.job.progress ?? 0) * 1000), { head, tail: ' ' + truncate(jobInfo(view), room(head)) });
    for (const p of view.phases()) {
      let bar = this.phaseBars.get(p.phase);
      if (!bar) {
        bar = this.multibar.create(1, 0, { head: '', tail: '' }, { barsize: this.barsize() });
        this.phaseBars.set(p.phase, bar);
      }
      const total = Math.max(1, p.stoppedEarly ? p.done : (p.planned ?? Math.max(1, p.done)));
      const h = `  ${label(p.phase, wide).padEnd(labelWidth)}`;
      bar.setTotal(total);
      bar.update(Math.min(total, p.done), { head: h, tail: ' ' + truncate(phaseInfo(p, wide), room(h)) });
    }
  }

  update(view: JobView, change: { state?: boolean }): void {
    if (change.state && view.job.state === 'queued' && view.job.error) {
      this.note(`attempt ${view.job.attempts} failed (${view.job.error.code}: ${view.job.error.message}); it will be retried`);
    }
    this.draw(view);
  }

  note(line: string): void {
    if (this.multibar) this.multibar.log(line + '\n');
    else this.io.err.write(line + '\n');
  }

  pause(): void {
    this.multibar?.stop();
    this.multibar = null;
  }

  resume(view: JobView): void {
    if (!this.multibar) this.start(view);
  }

  stop(view: JobView): void {
    if (!this.multibar) return;
    this.draw(view);
    this.multibar.update();
    this.multibar.stop();
    this.multibar = null;
  }
}

/** Plain lines, for pipes, logs and dumb terminals: state and phase changes, one line per epoch, progress by tenths. */
export class LinesRenderer implements JobRenderer {
  private lastTenth = -1;

  constructor(private readonly io: Out) {}

  update(view: JobView, change: { state?: boolean; phase?: boolean; row?: HistoryRow }): void {
    const j = view.job;
    if (change.state) {
      const retry = j.state === 'queued' && j.error ? ` (attempt ${j.attempts} failed: ${j.error.code}: ${j.error.message}; it will be retried)` : '';
      this.note(`${j.id} ${j.state}${retry}`);
    }
    if (change.phase && j.phase && !view.terminal) this.note(`${j.id} ${phaseName(j.phase)}`);
    if (change.row) {
      const r = change.row;
      const planned = view.plannedEpochs(r.phase);
      this.note(
        `  ${label(r.phase, true)} epoch ${r.epoch}/${planned ?? '?'}  loss ${num(r.loss)}  acc ${num(r.accuracy)}` +
          `  val_loss ${num(r.valLoss)}  val_acc ${num(r.valAccuracy)}  ${r.seconds.toFixed(1)}s`,
      );
    }
    const tenth = Math.floor((j.progress ?? 0) * 10);
    if (tenth > this.lastTenth && !view.terminal && j.state === 'running') {
      if (this.lastTenth >= 0 || tenth > 0) this.note(`  progress ${tenth * 10}%${j.etaSeconds !== null && j.etaSeconds !== undefined ? `  ETA ${duration(j.etaSeconds)}` : ''}`);
      this.lastTenth = tenth;
    }
  }

  note(line: string): void {
    this.io.err.write(line + '\n');
  }

  pause(): void {}
  resume(): void {}
  stop(): void {}
}

/** Progress of a byte transfer: a bar on a terminal, a line at start and end elsewhere. */
export function byteProgress(io: Out, what: string, total: number | undefined) {
  const started = Date.now();
  if (io.err.isTTY) {
    const bar = new cliProgress.SingleBar({
      format: `${what} {bar} {percentage}% {done}/{all} {speed}`,
      stream: io.err as NodeJS.WriteStream,
      barCompleteChar: BAR_COMPLETE,
      barIncompleteChar: BAR_INCOMPLETE,
      hideCursor: true,
      barsize: 24,
      fps: 10,
      linewrap: false,
    });
    const all = total !== undefined ? bytes(total) : '?';
    bar.start(total ?? 1, 0, { done: bytes(0), all, speed: '' });
    return {
      tick(n: number) {
        const s = (Date.now() - started) / 1000;
        bar.update(total !== undefined ? Math.min(n, total) : 0, { done: bytes(n), all, speed: s > 0.3 ? `${bytes(n / s)}/s` : '' });
      },
      done() {
        bar.stop();
      },
    };
  }
  io.err.write(`${what} ${total !== undefined ? bytes(total) : ''}\n`);
  return {
    tick(_n: number) {},
    done() {},
  };
}
