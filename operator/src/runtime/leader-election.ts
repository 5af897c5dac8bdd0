// Leader election on a coordination.k8s.io/v1 Lease, client-go's algorithm
// (k8s.io/client-go/tools/leaderelection/leaderelection.go):
//  - a candidate takes the lease if it is absent, released (empty holder), or its record has not
//    changed for leaseDurationSeconds *as observed on the local clock* (no clock-skew assumptions);
//  - every write carries the resourceVersion read (optimistic concurrency): of two candidates
//    racing for an expired lease, the apiserver lets exactly one write succeed (409 for the other);
//  - the leader renews every retryPeriod and steps down if it has not renewed within renewDeadline
//    (< leaseDuration, so it stops before anyone else may start);
//  - on close it stops leading first (callback awaited), then releases the lease so a standby takes
//    over at once instead of after expiry.
// After losing the lease the elector ends (like controller-runtime, the process should exit and
// restart as a candidate; `closed` resolves, `lost` is true).
// Lease times are V1MicroTime: the apiserver parses MicroTime with exactly six fractional digits
// and rejects the millisecond strings a plain Date serializes to; leases read back come as strings.
import { ApiException, CoordinationV1Api, KubeConfig, V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { z } from 'zod';
import { realClock, sleep, type Clock } from './clock.js';
import { noopLeaderElectionMetrics, type LeaderElectionMetrics } from './metrics-hooks.js';

/** Raised for invalid timing options. */
export class LeaderElectionConfigError extends Error {
  override readonly name = 'LeaderElectionConfigError';
}

/** Options of a LeaderElector. Durations in seconds, as in client-go / Helm values. */
export interface LeaderElectorOptions {
  readonly kc: KubeConfig;
  readonly namespace: string;
  /** Lease name (also the `name` label of leader_election_master_status). */
  readonly name: string;
  /** This candidate's identity (pod name + random suffix in production). */
  readonly identity: string;
  /** Default 15; written to the Lease, so it must be a whole number of seconds. */
  readonly leaseDurationSeconds?: number;
  /** Default 10. */
  readonly renewDeadlineSeconds?: number;
  /** Default 2. */
  readonly retryPeriodSeconds?: number;
  /** Release the lease on close (default true). */
  readonly releaseOnCancel?: boolean;
  /** Called once when this candidate starts leading. */
  readonly onStartedLeading?: () => void | Promise<void>;
  /** Called once when it stops leading (lost or closing); awaited before the lease is released. */
  readonly onStoppedLeading?: () => void | Promise<void>;
  /** Called when the observed holder changes (including to this candidate). */
  readonly onNewLeader?: (identity: string) => void;
  readonly clock?: Clock;
  /** Jitter source in [0, 1) for retry spacing; default Math.random. */
  readonly random?: () => number;
  readonly metrics?: LeaderElectionMetrics;
  /** Log sink; `error` marks a problem an operator must fix (said once until it changes or clears). */
  readonly log?: (line: string, level?: 'info' | 'error') => void;
}

/** Where an elector is. `standby` = running as a candidate, not leading. */
export type LeaderState = 'idle' | 'standby' | 'leading' | 'stopped';

const microTime = z.union([z.string(), z.date()]);
const leaseRecordSchema = z.object({
  metadata: z.object({ resourceVersion: z.string() }),
  spec: z
    .object({
      holderIdentity: z.string().nullish(),
      leaseDurationSeconds: z.number().nullish(),
      acquireTime: microTime.nullish(),
      renewTime: microTime.nullish(),
      leaseTransitions: z.number().nullish(),
    })
    .nullish(),
});

interface LeaseRecord {
  readonly resourceVersion: string;
  readonly holder: string;
  readonly leaseDurationSeconds: number;
  readonly acquireTime: Date | undefined;
  readonly leaseTransitions: number;
}

function toRecord(lease: unknown): LeaseRecord {
  const l = leaseRecordSchema.parse(lease);
  const acquire = l.spec?.acquireTime;
  return {
    resourceVersion: l.metadata.resourceVersion,
    holder: l.spec?.holderIdentity ?? '',
    leaseDurationSeconds: l.spec?.leaseDurationSeconds ?? 0,
    acquireTime: acquire === undefined || acquire === null ? undefined : new Date(acquire),
    leaseTransitions: l.spec?.leaseTransitions ?? 0,
  };
}

/** JitterFactor of client-go: retries wait retryPeriod · (1 + 1.2·rand). */
const JITTER = 1.2;

/** One candidate. */
export class LeaderElector {
  readonly identity: string;
  readonly #o: LeaderElectorOptions;
  readonly #api: CoordinationV1Api;
  readonly #clock: Clock;
  readonly #metrics: LeaderElectionMetrics;
  readonly #leaseMs: number;
  readonly #renewMs: number;
  readonly #retryMs: number;
  readonly #abort = new AbortController();
  #state: LeaderState = 'idle';
  #lost = false;
  #release = true;
  #observed: LeaseRecord | undefined;
  #observedAt = 0;
  #lastHolder = '';
  #run: Promise<void> | undefined;
  #resolveClosed: () => void = () => {};
  /** Resolves when the elector has ended (closed, or leadership lost). */
  readonly closed: Promise<void>;

  constructor(opts: LeaderElectorOptions) {
    this.identity = opts.identity;
    this.#o = opts;
    this.#api = opts.kc.makeApiClient(CoordinationV1Api);
    this.#clock = opts.clock ?? realClock;
    this.#metrics = opts.metrics ?? noopLeaderElectionMetrics;
    const lease = opts.leaseDurationSeconds ?? 15;
    const renew = opts.renewDeadlineSeconds ?? 10;
    const retry = opts.retryPeriodSeconds ?? 2;
    if (!Number.isInteger(lease) || lease < 1) throw new LeaderElectionConfigError(`leaseDurationSeconds must be a whole number >= 1, got ${lease}`);
    if (!(lease > renew)) throw new LeaderElectionConfigError(`leaseDurationSeconds (${lease}) must exceed renewDeadlineSeconds (${renew})`);
    if (!(renew > JITTER * retry)) throw new LeaderElectionConfigError(`renewDeadlineSeconds (${renew}) must exceed ${JITTER} x retryPeriodSeconds (${retry})`);
    if (!(retry > 0)) throw new LeaderElectionConfigError(`retryPeriodSeconds must be > 0, got ${retry}`);
    if (opts.identity === '') throw new LeaderElectionConfigError('identity must not be empty');
    this.#leaseMs = lease * 1000;
    this.#renewMs = renew * 1000;
    this.#retryMs = retry * 1000;
    this.#release = opts.releaseOnCancel ?? true;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  /** idle (not started), standby, leading, or stopped. */
  get state(): LeaderState {
    return this.#state;
  }

  /** True while this candidate leads. */
  get isLeader(): boolean {
    return this.#state === 'leading';
  }

  /** True if the elector ended because it could not renew (not because of close). */
  get lost(): boolean {
    return this.#lost;
  }

  /** The holder last observed on the lease ('' if none). */
  get observedLeader(): string {
    return this.#lastHolder;
  }

  /** Starts campaigning in the background (idempotent). */
  start(): void {
    if (this.#run !== undefined) return;
    this.#state = 'standby';
    this.#metrics.leading(false);
    this.#run = this.#campaign().finally(() => {
      this.#state = 'stopped';
      this.#resolveClosed();
    });
  }

  /**
   * Stops campaigning or leading. With `release` (default: releaseOnCancel) a leader clears the
   * lease holder so a standby takes over at once; `release: false` simulates a crash (the lease
   * simply expires).
   */
  async close(opts: { readonly release?: boolean } = {}): Promise<void> {
    if (opts.release !== undefined) this.#release = opts.release;
    this.#abort.abort();
    if (this.#run === undefined) {
      this.#state = 'stopped';
      this.#resolveClosed();
    }
    return this.closed;
  }

  async #campaign(): Promise<void> {
    const signal = this.#abort.signal;
    // Acquire.
    let acquired = false;
    while (!signal.aborted) {
      if ((acquired = await this.#tryAcquireOrRenew())) break;
      await sleep(this.#clock, this.#retryMs * (1 + JITTER * (this.#o.random ?? Math.random)()), signal);
    }
    if (signal.aborted) {
      // Closed while the winning write was in flight: hand the lease straight back.
      if (acquired && this.#release) await this.#releaseLease();
      return;
    }
    this.#state = 'leading';
    this.#metrics.leading(true);
    this.#log(`${this.identity} became leader of lease ${this.#o.namespace}/${this.#o.name}`);
    await this.#callback(this.#o.onStartedLeading);
    // Renew. The deadline counts from when the last successful renew was *sent* (conservative).
    let renewedAt = this.#clock.now();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the signal may abort during onStartedLeading
    while (!signal.aborted) {
      await sleep(this.#clock, this.#retryMs, signal);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the signal may abort during the sleep
      if (signal.aborted) break;
      const sentAt = this.#clock.now();
      const left = renewedAt + this.#renewMs - sentAt;
      const ok = left > 0 && (await this.#withDeadline(this.#tryAcquireOrRenew(), left));
      if (ok) {
        renewedAt = sentAt;
      } else if (this.#clock.now() - renewedAt >= this.#renewMs) {
        this.#lost = true;
        this.#log(`${this.identity} failed to renew lease ${this.#o.namespace}/${this.#o.name} within ${this.#renewMs} ms; stepping down`);
        break;
      }
    }
    this.#state = 'stopped';
    this.#metrics.leading(false);
    await this.#callback(this.#o.onStoppedLeading);
    if (!this.#lost && this.#release) await this.#releaseLease();
  }

  /** One attempt (client-go tryAcquireOrRenew); true if this candidate holds the lease now. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name } = this.#o;
    const now = this.#clock.now();
    let current: LeaseRecord;
    try {
      current = toRecord(await this.#api.readNamespacedLease({ namespace, name }));
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 404)) {
        this.#log(`reading lease ${namespace}/${name}: ${describe(err)}`);
        return false;
      }
      try {
        const created = await this.#api.createNamespacedLease({ namespace, body: this.#leaseBody(undefined, now) });
        this.#observe(toRecord(created), this.#clock.now());
        this.#problem(undefined);
        return true;
      } catch (e) {
        if (e instanceof ApiException && e.code === 404) {
          this.#problem(
            `cannot take the leader-election lease ${namespace}/${name}: namespace "${namespace}" does not exist; create it (kubectl create namespace ${namespace}) or start the operator with --leader-election-namespace set to an existing namespace (POD_NAMESPACE in a pod), or --leader-elect false for a single replica; retrying every ${this.#retryMs / 1000} s`,
          );
        } else if (e instanceof ApiException && e.code === 403) {
          this.#problem(
            `cannot take the leader-election lease ${namespace}/${name}: forbidden; the operator's ServiceAccount needs create/get/update on coordination.k8s.io leases in namespace "${namespace}" (operator/rbac/, or the Helm chart); retrying every ${this.#retryMs / 1000} s`,
          );
        } else if (!(e instanceof ApiException && e.code === 409)) this.#log(`creating lease ${namespace}/${name}: ${describe(e)}`);
        return false;
      }
    }
    this.#problem(undefined);
    if (this.#observed?.resourceVersion !== current.resourceVersion) this.#observe(current, now);
    const heldByOther = current.holder !== '' && current.holder !== this.identity;
    if (heldByOther && this.#observedAt + current.leaseDurationSeconds * 1000 > now) return false;
    try {
      const updated = await this.#api.replaceNamespacedLease({ namespace, name, body: this.#leaseBody(current, now) });
      this.#observe(toRecord(updated), this.#clock.now());
      return true;
    } catch (err) {
      // 409: someone else wrote since we read; they win this round.
      if (!(err instanceof ApiException && err.code === 409)) this.#log(`updating lease ${namespace}/${name}: ${describe(err)}`);
      return false;
    }
  }

  #leaseBody(current: LeaseRecord | undefined, now: number): V1Lease {
    const renewing = current !== undefined && current.holder === this.identity;
    const metadata =
      current === undefined
        ? { name: this.#o.name, namespace: this.#o.namespace }
        : { name: this.#o.name, namespace: this.#o.namespace, resourceVersion: current.resourceVersion };
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata,
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: this.#leaseMs / 1000,
        acquireTime: new V1MicroTime(renewing && current.acquireTime !== undefined ? current.acquireTime.getTime() : now),
        renewTime: new V1MicroTime(now),
        leaseTransitions: current === undefined ? 0 : renewing ? current.leaseTransitions : current.leaseTransitions + 1,
      },
    };
  }

  /** Clears the holder (client-go release) if we still hold the lease; best effort. */
  async #releaseLease(): Promise<void> {
    const { namespace, name } = this.#o;
    try {
      const current = toRecord(await this.#api.readNamespacedLease({ namespace, name }));
      if (current.holder !== this.identity) return;
      const now = this.#clock.now();
      await this.#api.replaceNamespacedLease({
        namespace,
        name,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace, resourceVersion: current.resourceVersion },
          spec: {
            holderIdentity: '',
            leaseDurationSeconds: 1,
            acquireTime: new V1MicroTime(now),
            renewTime: new V1MicroTime(now),
            leaseTransitions: current.leaseTransitions,
          },
        },
      });
      this.#log(`${this.identity} released lease ${namespace}/${name}`);
    } catch (err) {
      this.#log(`releasing lease ${namespace}/${name}: ${describe(err)}`);
    }
  }

  #observe(record: LeaseRecord, at: number): void {
    this.#observed = record;
    this.#observedAt = at;
    if (record.holder !== this.#lastHolder) {
      this.#lastHolder = record.holder;
      if (record.holder !== '') this.#o.onNewLeader?.(record.holder);
    }
  }

  /** `p`'s value, or false if it does not settle within `ms` on the clock. */
  #withDeadline(p: Promise<boolean>, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = this.#clock.setTimer(() => resolve(false), ms);
      p.then(
        (v) => {
          t.cancel();
          resolve(v);
        },
        () => {
          t.cancel();
          resolve(false);
        },
      );
    });
  }

  async #callback(cb: (() => void | Promise<void>) | undefined): Promise<void> {
    try {
      await cb?.();
    } catch (err) {
      this.#log(`leader election callback failed: ${describe(err)}`);
    }
  }

  #lastProblem: string | undefined;

  /** Report a problem at error level once (again only when it changes); undefined: it cleared. */
  #problem(message: string | undefined): void {
    if (message === this.#lastProblem) return;
    if (message === undefined) this.#log(`lease ${this.#o.namespace}/${this.#o.name} is reachable again`);
    else this.#log(message, 'error');
    this.#lastProblem = message;
  }

  #log(line: string, level: 'info' | 'error' = 'info'): void {
    (this.#o.log ?? ((l: string) => process.stderr.write(`[leader-election] ${l}\n`)))(line, level);
  }
}

function describe(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}`;
  return err instanceof Error ? err.message : String(err);
}
