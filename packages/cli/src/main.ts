// Entry point of `graft`: runs the command, prints failures as "error CODE: message" and sets the exit code.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CommanderError } from 'commander';
import { ApiError } from './client';
import { CliError } from './errors';
import { buildProgram } from './program';

/** Runs the CLI with `argv` (as process.argv); answers the exit code. */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof ApiError || err instanceof CliError) {
      process.stderr.write(`error ${err.code}: ${err.message}\n`);
      return err instanceof CliError ? err.exitCode : 1;
    }
    process.stderr.write(`error INTERNAL: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

/** Exits once stdout and stderr have taken everything written to them. */
async function exit(code: number): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((r) => s.write('', () => r()))));
  process.exit(code);
}

/** Runs the CLI on the process's arguments and exits with its code. */
export async function main(): Promise<never> {
  // A reader that stops early (`graft jobs ls | head`) is not an error.
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
  return exit(await run(process.argv));
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main();
