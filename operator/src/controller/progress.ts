/**
 * Progress from the trainers (docs/architecture.md §4): one NATS subscription on `gmt.*.progress`; the
 * latest message per job is kept, and the job's key is enqueued at most once per `minIntervalMs`
 * (leading and trailing edge), so status writes driven by progress are rate-limited.
 */
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { natsAuth } from '../../../contract/nats-auth.js';
import { PROGRESS_SUBJECT, ProgressMessageSchema, jobIdOfProgressSubject } from '../../../contract/progress.js';
import { realClock, type Clock, type KeySink, type TimerHandle } from '../runtime/index.js';
import { foldProgress, type ProgressSnapshot } from './progress-snapshot.js';

/** Options of a ProgressTracker. */
export interface ProgressTrackerOptions {
  /** NATS URL ('' = no tracking; status then comes from pods only). */
  readonly natsUrl: string;
  /** Path of a NATS .creds file (empty or absent: no authentication). */
  readonly natsCreds?: string;
  /** Where job keys go (the work queue). */
  readonly sink: KeySink;
  /** Least time between two enqueues of one job for progress; default 3000 ms. */
  readonly minIntervalMs?: number;
  readonly clock?: Clock;
  /** Log sink; `error` for a problem an operator must fix (said once until it changes or clears). */
  readonly log?: (line: string, level?: 'info' | 'error') => void;
}

interface Tracked {
  key: string;
  snapshot: ProgressSnapshot | undefined;
  lastEnqueue: number;
  timer: TimerHandle | undefined;
}

/** Latest progress per job id, fed from NATS. */
export class ProgressTracker {
  readonly #o: ProgressTrackerOptions;
  readonly #clock: Clock;
  readonly #jobs = new Map<string, Tracked>();
  #nc: NatsConnection | undefined;
  #sub: Subscription | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;
  /** Messages received and rejected (diagnostics). */
  readonly stats = { received: 0, rejected: 0 };

  constructor(opts: ProgressTrackerOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? realClock;
  }

  /** Connects in the background (retrying forever); returns at once. */
  start(): void {
    if (this.#o.natsUrl === '' || this.#loop !== undefined) return;
    this.#loop = this.#run();
  }

  /** Whether the subscription is up. */
  get connected(): boolean {
    return this.#sub !== undefined && this.#nc?.isClosed() === false;
  }

  /** Routes progress of `jobId` to `key` (called by each reconcile; idempotent). */
  track(jobId: string, key: string): void {
    const t = this.#jobs.get(jobId);
    if (t === undefined) this.#jobs.set(jobId, { key, snapshot: undefined, lastEnqueue: 0, timer: undefined });
    else t.key = key;
  }

  /** Stops tracking `jobId` (the job is gone). */
  forget(jobId: string): void {
    this.#jobs.get(jobId)?.timer?.cancel();
    this.#jobs.delete(jobId);
  }

  /** The latest progress of `jobId`. */
  get(jobId: string): ProgressSnapshot | undefined {
    return this.#jobs.get(jobId)?.snapshot;
  }

  /** Feeds one raw message (the subscription calls this; tests may too). */
  receive(jobId: string, data: unknown): void {
    this.stats.received++;
    const r = ProgressMessageSchema.safeParse(data);
    const t = this.#jobs.get(jobId);
    if (!r.success || t === undefined) {
      if (!r.success) this.stats.rejected++;
      return;
    }
    const now = this.#clock.now();
    t.snapshot = foldProgress(t.snapshot, r.data, now);
    const interval = this.#o.minIntervalMs ?? 3000;
    const wait = t.lastEnqueue + interval - now;
    if (wait <= 0) {
      t.lastEnqueue = now;
      this.#o.sink.add(t.key);
    } else if (t.timer === undefined) {
      t.timer = this.#clock.setTimer(() => {
        t.timer = undefined;
        t.lastEnqueue = this.#clock.now();
        this.#o.sink.add(t.key);
      }, wait);
    }
  }

  /** Closes the subscription and the connection (idempotent). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#jobs.values()) t.timer?.cancel();
    const nc = this.#nc;
    this.#nc = undefined;
    if (nc !== undefined && !nc.isClosed()) await nc.close().catch(() => undefined);
    await this.#loop;
  }

  async #run(): Promise<void> {
    const log = this.#o.log ?? ((l: string) => process.stderr.write(`[progress] ${l}\n`));
    let delay = 500;
    let problem: string | undefined;
    while (!this.#closed) {
      try {
        const nc = await connect({
          servers: this.#o.natsUrl,
          name: 'gmt-operator-progress',
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1000,
          ...natsAuth(this.#o.natsCreds),
        });
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may set it during the await above
        if (this.#closed) {
          await nc.close();
          return;
        }
        this.#nc = nc;
        const sub = nc.subscribe(PROGRESS_SUBJECT);
        this.#sub = sub;
        log(`subscribed to ${PROGRESS_SUBJECT} on ${this.#o.natsUrl}`);
        problem = undefined;
        delay = 500;
        for await (const m of sub) {
          const jobId = jobIdOfProgressSubject(m.subject);
          let data: unknown;
          try {
            data = m.json();
          } catch {
            this.stats.rejected++;
            continue;
          }
          this.receive(jobId, data);
        }
        this.#sub = undefined;
        await nc.closed();
      } catch (err) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may set it during the await above
        if (this.#closed) return;
        const reason = err instanceof Error ? err.message : String(err);
        if (reason !== problem) {
          // Once per distinct problem, not every retry: what is wrong, what it costs, what to check.
          log(
            `cannot reach NATS at ${this.#o.natsUrl} (${reason}): job status will show no training progress until it is reachable (and workers given this NATS cannot run their collectives); check --nats-url (GMT_NATS_URL) and that the NATS server runs (the Helm chart's nats.enabled deploys one); retrying with back-off up to 30 s`,
            'error',
          );
          problem = reason;
        }
      }
      await new Promise<void>((resolve) => this.#clock.setTimer(resolve, delay));
      delay = Math.min(delay * 2, 30_000);
    }
  }
}
