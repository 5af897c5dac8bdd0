/**
 * A progress display for long runs: a cli-progress bar on a TTY, periodic plain lines otherwise
 * (logs and CI), nothing when disabled. The ETA comes from a smoothed step time measured after a
 * warm-up (the first steps include compilation and the time before training started, so a rate
 * over elapsed time overstates the remaining time many times over). The clock is injected so tests
 * do not wait on real time.
 */
import cliProgress from 'cli-progress';

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

/** Seconds as 42s, 3m05s, 1h02m; '…' while unknown. */
export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '…';
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
      : `${s}s`;
}

/**
 * Remaining time from an exponential moving average of the seconds per step, ignoring the first
 * `warmupSteps` steps after the first observation.
 */
export class EtaEstimator {
  private prev: { step: number; t: number } | undefined;
  private first: number | undefined;
  private secondsPerStep: number | undefined;

  /** `alpha`: weight of the newest interval (0.1 ≈ an average over the last ~10 intervals). */
  constructor(
    private readonly warmupSteps = 3,
    private readonly alpha = 0.1,
  ) {}

  /** Record that `step` completed at time `t` (seconds). */
  observe(step: number, t: number): void {
    this.first ??= step;
    const p = this.prev;
    this.prev = { step, t };
    if (p === undefined || step <= p.step || p.step < this.first + this.warmupSteps) return;
    const x = (t - p.t) / (step - p.step);
    this.secondsPerStep = this.secondsPerStep === undefined ? x : this.alpha * x + (1 - this.alpha) * this.secondsPerStep;
  }

  /** Estimated seconds until `total`, or undefined during warm-up. */
  remaining(total: number): number | undefined {
    if (this.secondsPerStep === undefined || this.prev === undefined) return undefined;
    return Math.max(0, total - this.prev.step) * this.secondsPerStep;
  }
}

/** Create a progress display: `bar` (TTY), `plain` (a line per ~5%), `none`; `auto` picks by isTTY. */
export function createProgress(
  mode: 'auto' | 'bar' | 'plain' | 'none',
  stream: NodeJS.WriteStream = process.stderr,
  now: () => number = () => performance.now(),
): Progress {
  const kind = mode === 'auto' ? (stream.isTTY ? 'bar' : 'plain') : mode;
  const eta = new EtaEstimator();
  let lastPlain = -1;
  let lastStep = -1;
  let lastDraw = -Infinity;
  let multi: cliProgress.MultiBar | undefined;
  let bar: cliProgress.SingleBar | undefined;
  const describe = (u: ProgressUpdate): string =>
    Object.entries(u.fields)
      .map(([k, v]) => `${k} ${v}`)
      .join(' · ');
  return {
    update(u) {
      if (kind === 'none' || u.step === lastStep) return; // a repeated step (e.g. the final message) adds nothing
      lastStep = u.step;
      eta.observe(u.step, now() / 1000);
      const etaText = formatEta(eta.remaining(u.total));
      if (kind === 'bar') {
        const payload = { fields: describe(u), etaText };
        if (multi === undefined || bar === undefined) {
          // A MultiBar of one: its log() prints lines above the bar without breaking it.
          multi = new cliProgress.MultiBar({
            stream,
            format: '[{bar}] {value}/{total} {fields} · ETA {etaText}',
            barsize: 24,
            barCompleteChar: '#',
            barIncompleteChar: '.',
            hideCursor: false,
            clearOnComplete: false,
            stopOnComplete: false,
            gracefulExit: false,
            fps: 10,
          });
          bar = multi.create(u.total, u.step, payload);
        } else {
          bar.setTotal(u.total);
          bar.update(u.step, payload);
        }
        // Redraw now (at most every 100 ms): training steps keep the event loop busy, so the bar's
        // own redraw timer would rarely get to run.
        const t = now();
        if (t - lastDraw >= 100 || u.step === u.total) {
          lastDraw = t;
          multi.update();
        }
        return;
      }
      const bucket = Math.floor((20 * u.step) / Math.max(1, u.total));
      if (bucket !== lastPlain || u.step === u.total) {
        lastPlain = bucket;
        stream.write(`[progress] ${u.step}/${u.total} ${describe(u)} · ETA ${etaText}\n`);
      }
    },
    note(line) {
      if (multi !== undefined) {
        multi.log(line + '\n');
        multi.update(); // flush now: the next redraw may be a long step away
      } else {
        stream.write(line + '\n');
      }
    },
    done() {
      if (multi !== undefined) {
        multi.update();
        multi.stop();
      }
      multi = undefined;
      bar = undefined;
    },
  };
}
