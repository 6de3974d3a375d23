// What every command gets: the API client built from --url/--key or GRAFT_URL/GRAFT_API_KEY, and the output streams.
import type { Command } from 'commander';
import { GraftClient } from './client';
import { CliError } from './errors';
import { stdio, type Out } from './output';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface Context {
  client: GraftClient;
  io: Out;
}

export function contextOf(cmd: Command, io: Out = stdio): Context {
  const g = cmd.optsWithGlobals<{ url?: string; key?: string }>();
  const url = g.url || process.env.GRAFT_URL || DEFAULT_URL;
  try {
    new URL(url);
  } catch {
    throw new CliError('INVALID_URL', `'${url}' is not a URL; set GRAFT_URL or --url to the service, e.g. ${DEFAULT_URL}`);
  }
  return { client: new GraftClient({ url, key: g.key || process.env.GRAFT_API_KEY }), io };
}

/** A positive integer option value. */
export function intArg(name: string, min = 1) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new CliError('INVALID_ARGUMENT', `${name} must be an integer of at least ${min}, not '${v}'`);
    return n;
  };
}
