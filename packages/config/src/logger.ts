// One pino logger per process: level from LOG_LEVEL, pretty only on a terminal.
import { pino, type Logger } from 'pino';

export function createLogger(level: string, name: string): Logger {
  const pretty = process.stdout.isTTY && level !== 'silent';
  return pino({
    name,
    level,
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.apiKey', 'apiKey'], censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  });
}
export type { Logger };
