// Typed readers of environment variables. Each takes the variable's name (one of ENV_VARIABLES) and a default,
// answers the default for an unset or empty variable, and records a problem naming the variable for a bad value.
import type { Env, EnvName } from './variables';

export type EnvReader = ReturnType<typeof envReader>;

export function envReader(env: Env, problems: string[]) {
  const raw = (name: EnvName): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const bad = <T>(name: EnvName, value: string, expected: string, def: T): T => {
    problems.push(`${name}=${JSON.stringify(value)}: expected ${expected}`);
    return def;
  };
  return {
    raw,
    problem: (message: string) => void problems.push(message),
    str: (name: EnvName, def: string) => raw(name) ?? def,
    int(name: EnvName, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
      const v = raw(name);
      if (v === undefined) return def;
      const n = Number(v);
      return Number.isInteger(n) && n >= min && n <= max ? n : bad(name, v, `an integer from ${min} to ${max}`, def);
    },
    bool(name: EnvName, def: boolean): boolean {
      const v = raw(name);
      if (v === undefined) return def;
      if (/^(1|true|yes|on)$/i.test(v)) return true;
      if (/^(0|false|no|off)$/i.test(v)) return false;
      return bad(name, v, 'true or false', def);
    },
    url(name: EnvName, def: string | null, protocols: string[]): string | null {
      const v = raw(name);
      if (v === undefined) return def;
      try {
        if (protocols.includes(new URL(v).protocol)) return v.replace(/\/+$/, '');
      } catch {
        // not a URL at all
      }
      return bad(name, v, `a URL starting with ${protocols.join(' or ')}//`, def);
    },
    /** One of a closed set of values; `named` turns a value (or an alias) into the set's member, null where none. */
    oneOf<T extends string>(name: EnvName, def: NoInfer<T>, choices: readonly T[], named?: (v: string) => T | null): T {
      const v = raw(name);
      if (v === undefined) return def;
      const member = named ? named(v) : (choices.find((c) => c === v) ?? null);
      return member ?? bad(name, v, `one of ${choices.join(', ')}`, def);
    },
    /** A duration: `90` (seconds), `500ms`, `45s`, `10m`, `1h`. */
    duration(name: EnvName, defMs: number, maxMs: number): number {
      const v = raw(name);
      if (v === undefined) return defMs;
      const m = /^\s*(\d+)\s*(ms|s|m|min|h)?\s*$/.exec(v);
      const unit = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 }[(m?.[2] ?? 's') as 'ms'];
      const ms = m ? Number(m[1]) * unit : NaN;
      return ms <= maxMs ? ms : bad(name, v, `a duration such as 600, 90s, 10m or 1h, at most ${maxMs / 3_600_000} h`, defMs);
    },
  };
}
