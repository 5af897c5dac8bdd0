/** Structured logging on stderr: human-readable text or one JSON object per line. */

/** Severity of a log line. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A logger bound to a component; fields are printed as key=value (text) or merged (json). */
export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger writing to `write` (stderr by default). */
export function createLogger(
  format: 'text' | 'json',
  base: Record<string, unknown> = {},
  write: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Logger {
  const log = (level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void => {
    if (format === 'json') {
      write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields }));
      return;
    }
    const kv = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'number' ? formatNumber(v) : typeof v === 'string' ? v : JSON.stringify(v)}`);
    const rank = base['rank'];
    write(
      `[gmt-train${typeof rank === 'number' || typeof rank === 'string' ? ` r${rank}` : ''}] ${level === 'info' ? '' : level.toUpperCase() + ' '}${msg}${kv.length ? ' ' + kv.join(' ') : ''}`,
    );
  };
  return { log, info: (m, f) => log('info', m, f), warn: (m, f) => log('warn', m, f), error: (m, f) => log('error', m, f) };
}

/** Compact number formatting for logs. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : v.toFixed(4);
}
