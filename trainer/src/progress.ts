/**
 * A progress display for long runs: a redrawn bar on a TTY, periodic plain lines otherwise (logs and
 * CI), nothing when disabled. The clock is injected so tests do not wait on real time.
 */

/** What the bar shows after each step. */
export interface ProgressUpdate {
  readonly step: number;
  readonly total: number;
  readonly fields: Readonly<Record<string, string>>;
}

/** Progress sink. */
export interface Progress {
  update(u: ProgressUpdate): void;
  /** Print a line without breaking the bar. */
  note(line: string): void;
  done(): void;
}

function eta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
      : `${s}s`;
}

/** Create a progress display: `bar` (TTY), `plain` (a line per ~5%), `none`; `auto` picks by isTTY. */
export function createProgress(
  mode: 'auto' | 'bar' | 'plain' | 'none',
  stream: NodeJS.WriteStream = process.stderr,
  now: () => number = () => performance.now(),
): Progress {
  const kind = mode === 'auto' ? (stream.isTTY ? 'bar' : 'plain') : mode;
  const t0 = now();
  let startStep: number | undefined;
  let lastPlain = -1;
  let drawn = false;
  const render = (u: ProgressUpdate): string => {
    startStep ??= u.step - 1;
    const elapsed = (now() - t0) / 1000;
    const rate = (u.step - startStep) / Math.max(elapsed, 1e-9);
    const left = (u.total - u.step) / rate;
    const fields = Object.entries(u.fields)
      .map(([k, v]) => `${k} ${v}`)
      .join(' · ');
    return `${u.step}/${u.total} ${fields} · ETA ${eta(left)}`;
  };
  return {
    update(u) {
      if (kind === 'none') return;
      const text = render(u);
      if (kind === 'bar') {
        const width = 24,
          filled = Math.round((width * u.step) / Math.max(1, u.total));
        stream.write(`\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`);
        drawn = true;
      } else {
        const bucket = Math.floor((20 * u.step) / Math.max(1, u.total));
        if (bucket !== lastPlain || u.step === u.total) {
          lastPlain = bucket;
          stream.write(`[progress] ${text}\n`);
        }
      }
    },
    note(line) {
      if (kind === 'bar' && drawn) stream.write('\r\x1b[2K');
      stream.write(line + '\n');
    },
    done() {
      if (kind === 'bar' && drawn) stream.write('\n');
      drawn = false;
    },
  };
}
