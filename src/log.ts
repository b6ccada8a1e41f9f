import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };

export interface LogOptions {
  level: LevelWithSilent;
  /** Where JSON lines go; defaults to stdout. Tests pass a stream to capture them. */
  destination?: NodeJS.WritableStream;
}

/**
 * The root logger. Modules take a child with `module: '<folder>/<file>'` so log lines
 * line up with metric names and config keys.
 */
export function createLogger(opts: LogOptions): Logger {
  const options = { level: opts.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that drops everything, for unit tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
