import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** A random id with a type prefix: ds_…, job_…, mdl_… (16 base-36 characters, about 82 bits). */
export function newId(prefix: 'ds' | 'job' | 'mdl'): string {
  const bytes = randomBytes(16);
  let s = '';
  for (const b of bytes) s += ALPHABET[b % 36];
  return `${prefix}_${s}`;
}
