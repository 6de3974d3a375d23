// Following a job live over Server-Sent Events until it ends, with Ctrl-C asking whether to cancel it.
import readline from 'node:readline';
import { ApiError, type GraftClient, type Job } from './client';
import { JobView } from './job-view';
import { BarsRenderer, LinesRenderer, type JobRenderer } from './progress';
import type { Out } from './output';

export interface FollowOptions {
  io: Out;
  /** Where the answer to the Ctrl-C question is read from (default stdin). */
  input?: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Bars (default: when stderr is a terminal), plain lines, or nothing. */
  display?: 'bars' | 'lines' | 'none';
}

export interface FollowResult {
  job: Job;
  /** The user stopped following; the job goes on. */
  detached: boolean;
  /** The user asked for the job to be cancelled. */
  cancelledByUser: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Asks one question; null when the input ends or the user presses Ctrl-C again. */
function ask(prompt: string, input: FollowOptions['input'], output: NodeJS.WritableStream): { answer: Promise<string | null>; close(): void } {
  const rl = readline.createInterface({ input: input ?? process.stdin, output, terminal: !!(input ?? process.stdin).isTTY });
  let settle: (a: string | null) => void = () => {};
  let done = false;
  const answer = new Promise<string | null>((resolve) => {
    settle = (a) => {
      if (done) return;
      done = true;
      resolve(a);
      rl.close();
    };
  });
  rl.on('SIGINT', () => {
    output.write('\n');
    settle(null);
  });
  rl.on('close', () => settle(null));
  rl.question(prompt, (a) => settle(a));
  return { answer, close: () => settle(null) };
}

/** Follows the job until a terminal state, or until the user detaches; answers the job as it is then. */
export async function followJob(client: GraftClient, jobId: string, opts: FollowOptions): Promise<FollowResult> {
  const io = opts.io;
  const view = new JobView(await client.getJob(jobId));
  const display = opts.display ?? (io.err.isTTY && process.env.TERM !== 'dumb' ? 'bars' : 'lines');
  const renderer: JobRenderer | null =
    display === 'bars' ? new BarsRenderer(io, view) : display === 'lines' ? new LinesRenderer(io) : null;
  if (renderer instanceof LinesRenderer) renderer.update(view, { state: true, phase: true });

  const stream = new AbortController();
  let detached = false;
  let cancelledByUser = false;
  let prompt: ReturnType<typeof ask> | null = null;
  let lastSigint = 0;

  const onSigint = () => {
    // A second signal while asking, or one right after another (npx passes the terminal's on), is not a new question.
    const now = Date.now();
    if (prompt || now - lastSigint < 400) return;
    lastSigint = now;
    void (async () => {
      renderer?.pause();
      io.err.write('\n');
      prompt = ask(`Cancel job ${jobId}? [y/N] `, opts.input, io.err);
      const answer = await prompt.answer;
      prompt = null;
      if (view.terminal) return;
      if (answer !== null && /^y(es)?$/i.test(answer.trim())) {
        cancelledByUser = true;
        try {
          await client.cancelJob(jobId);
          io.err.write(`cancelling ${jobId}…\n`);
        } catch (err) {
          if (!(err instanceof ApiError && err.code === 'JOB_FINISHED')) io.err.write(`error ${(err as ApiError).code ?? 'ERROR'}: ${(err as Error).message}\n`);
        }
        renderer?.resume(view);
      } else {
        detached = true;
        stream.abort();
      }
    })();
  };
  process.on('SIGINT', onSigint);

  try {
    let failures = 0;
    while (!view.terminal && !detached) {
      try {
        for await (const ev of client.events(jobId, stream.signal)) {
          failures = 0;
          const change = view.apply(ev);
          if (!prompt) renderer?.update(view, change);
          if (view.terminal) break;
        }
      } catch (err) {
        if (detached || stream.signal.aborted) break;
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
        if (++failures > 8) throw err;
        renderer?.note(`lost the event stream (${(err as Error).message}); reconnecting…`);
        await sleep(Math.min(5_000, 500 * 2 ** failures));
        continue;
      }
      if (!view.terminal && !detached) {
        // The stream ended early (the server restarted, a proxy timed out): read the record and go on.
        const now = await client.getJob(jobId);
        renderer?.update(view, view.apply({ event: 'state', data: now }));
        if (!view.terminal) await sleep(500);
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
    (prompt as ReturnType<typeof ask> | null)?.close();
    stream.abort();
  }
  const final = detached ? view.job : await client.getJob(jobId).catch(() => view.job);
  if (!detached) {
    const change = view.apply({ event: 'state', data: final });
    if (renderer instanceof LinesRenderer) renderer.update(view, change);
  }
  renderer?.stop(view);
  return { job: final, detached, cancelledByUser };
}
