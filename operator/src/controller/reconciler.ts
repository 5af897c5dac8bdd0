/**
 * reconcile(key) for GmtFineTune (docs/architecture.md §6, the jobset shape): get the object from the cache
 * (ignore "not found"), sort its pods into buckets once, compute the status with a pure function,
 * run a few guarded steps (delete stale pods, ensure children, TTL delete), write status once, only
 * if it changed.
 */
import type { OperatorMetrics } from '../metrics/index.js';
import { ApiException, type CustomObjectsApi, type KubernetesObjectApi } from '@kubernetes/client-node';
import {
  FIELD_MANAGER,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
  ANNOTATIONS,
  API_VERSION,
  parseGmtFineTune,
  type GmtFineTune,
  type GmtFineTuneStatus,
} from '../api/index.js';
import { applyServerSide, deleteIfExists, realClock, splitKey, type Clock, type EventRecorder, type ReconcileOutcome } from '../runtime/index.js';
import { buildConfigMap, buildService, buildWorkerPod, computeNatsUrl, type BuildOptions } from './children.js';
import { computeJobId, configMapName, serviceName } from './names.js';
import type { ChildView, PodView } from './pod-view.js';
import type { ProgressTracker } from './progress.js';
import { canonicalJson, computeStatus, markCreateFailed, podAttempt, podRank } from './status.js';

/** Read access to an informer cache. */
export interface Store<T> {
  get(namespace: string | undefined, name: string): T | undefined;
  listByOwner(uid: string): T[];
}

/** Value of spec.runPolicy.managedBy that this operator reconciles (unset means the same). */
export const CONTROLLER_NAME = `${GROUP}/gmt-operator`;

/** What the reconciler needs. */
export interface ReconcilerDeps {
  readonly jobs: Store<GmtFineTune>;
  readonly pods: Store<PodView>;
  readonly services: Store<ChildView>;
  readonly configMaps: Store<ChildView>;
  readonly objects: KubernetesObjectApi;
  readonly custom: CustomObjectsApi;
  readonly events: EventRecorder | undefined;
  readonly progress: ProgressTracker;
  readonly build: BuildOptions;
  readonly clock?: Clock;
  readonly log?: (level: 'info' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Per-job gauges (phase, step, loss, …). */
  readonly metrics?: OperatorMetrics;
}

function terminated(p: PodView): boolean {
  return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
}

/** Raised (and retried with backoff) when a status write conflicts. */
export class StatusConflictError extends Error {
  override readonly name = 'StatusConflictError';
}

/** The GmtFineTune reconciler. */
export class GmtFineTuneReconciler {
  readonly #d: ReconcilerDeps;
  readonly #clock: Clock;
  /** key → the object our last status write returned, and the resourceVersion it superseded. */
  readonly #written = new Map<string, { readonly staleRv: string | undefined; readonly obj: GmtFineTune }>();
  readonly #jobIds = new Map<string, string>();
  /** Reconciles run and status writes done (bench and tests). */
  readonly stats = { reconciles: 0, statusWrites: 0 };

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#clock = deps.clock ?? realClock;
  }

  /** The cached object, or our own newer write when the cache still shows the version it replaced. */
  #current(key: string): GmtFineTune | undefined {
    const { namespace, name } = splitKey(key);
    const cached = this.#d.jobs.get(namespace, name);
    const w = this.#written.get(key);
    if (w === undefined) return cached;
    if (cached !== undefined && cached.metadata.uid === w.obj.metadata.uid && cached.metadata.resourceVersion === w.staleRv) return w.obj;
    this.#written.delete(key);
    return cached;
  }

  /** One reconcile (ReconcileFn). */
  async reconcile(key: string): Promise<ReconcileOutcome | void> {
    this.stats.reconciles++;
    const job = this.#current(key);
    if (job === undefined) {
      const [ns = '', nm = ''] = key.split('/', 2);
      this.#d.metrics?.forgetJob(ns, nm);
      const id = this.#jobIds.get(key);
      if (id !== undefined) this.#d.progress.forget(id);
      this.#jobIds.delete(key);
      this.#written.delete(key);
      return;
    }
    if (job.metadata.deletionTimestamp !== undefined) return; // garbage collection removes the children
    const managedBy = job.spec.runPolicy.managedBy;
    if (managedBy !== undefined && managedBy !== CONTROLLER_NAME) return; // MultiKueue or another controller owns it
    const uid = job.metadata.uid ?? '';
    const jobId = computeJobId(job);
    this.#jobIds.set(key, jobId);
    this.#d.progress.track(jobId, key);

    // Buckets, once.
    const attempt = job.status?.attempt ?? 0;
    const owned = this.#d.pods.listByOwner(uid);
    const live = owned.filter((p) => p.metadata.deletionTimestamp === undefined);
    const current = live.filter((p) => podAttempt(p) === attempt);
    const others = owned.filter((p) => podAttempt(p) !== attempt);
    const now = this.#clock.now();
    const decision = computeStatus({
      job,
      pods: current,
      otherPods: others.length,
      progress: this.#d.progress.get(jobId),
      natsUrl: computeNatsUrl(job, this.#d.build),
      now,
    });
    let status = decision.status;

    if (decision.deleteJob) {
      this.#log('info', 'ttlSecondsAfterFinished passed: deleting the job', { key });
      await deleteIfExists(this.#d.objects, {
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name: job.metadata.name, namespace: job.metadata.namespace ?? 'default' },
      });
      return;
    }

    // Guarded step 1: pods that must go (other attempts; all when suspended; running ones when finished).
    const doomed = live.filter(
      (p) => podAttempt(p) !== status.attempt || decision.deletePods === 'all' || (decision.deletePods === 'active' && !terminated(p)),
    );
    await Promise.all(
      doomed.map((p) =>
        deleteIfExists(this.#d.objects, { apiVersion: 'v1', kind: 'Pod', metadata: { name: p.metadata.name, namespace: p.metadata.namespace ?? 'default' } }),
      ),
    );

    // Guarded step 2: children, only for an attempt number already stored (a failed status write
    // must never leave pods of an attempt the status does not know).
    let createError: Error | undefined;
    let requeueNow = false;
    if (decision.create) {
      if (status.attempt !== attempt) requeueNow = true;
      else {
        try {
          await this.#ensureChildren(job, status.attempt ?? 0, current);
        } catch (err) {
          createError = err instanceof Error ? err : new Error(describe(err));
          status = markCreateFailed(status, `creating children failed: ${describe(err)}`, now, job.metadata.generation);
        }
      }
    }

    // One status write, only if something changed.
    if (canonicalJson(status) !== canonicalJson(job.status ?? {})) await this.#writeStatus(key, job, status);
    this.#d.metrics?.observeJob(job.metadata.namespace ?? 'default', job.metadata.name, status.phase, {
      step: status.step,
      totalSteps: status.totalSteps,
      loss: status.loss,
      samplesPerSecond: status.samplesPerSecond,
      keptRatio: status.keptRatio,
      attempt: status.attempt,
      restarts: status.restarts?.total,
    });
    for (const e of decision.events) void this.#d.events?.record(job, e.type, e.reason, e.message);
    if (createError !== undefined) {
      void this.#d.events?.warning(job, 'ChildCreationFailed', describe(createError));
      throw createError;
    }
    if (requeueNow) return { requeue: true };
    return decision.requeueAfterMs !== undefined ? { requeueAfter: decision.requeueAfterMs } : undefined;
  }

  /** Applies whatever child is missing or out of date (server-side apply; idempotent). */
  async #ensureChildren(job: GmtFineTune, attempt: number, current: readonly PodView[]): Promise<void> {
    const ns = job.metadata.namespace ?? 'default';
    const { objects, build } = this.#d;
    if (this.#d.services.get(ns, serviceName(job.metadata.name)) === undefined) await applyServerSide(objects, buildService(job, build), FIELD_MANAGER);
    const cm = buildConfigMap(job);
    const cachedCm = this.#d.configMaps.get(ns, configMapName(job.metadata.name));
    if (cachedCm?.metadata.annotations?.[ANNOTATIONS.configHash] !== cm.metadata.annotations?.[ANNOTATIONS.configHash])
      await applyServerSide(objects, cm, FIELD_MANAGER);
    const have = new Set(current.map(podRank));
    const missing = Array.from({ length: job.spec.workers }, (_, r) => r).filter((r) => !have.has(r));
    await Promise.all(missing.map((r) => applyServerSide(objects, buildWorkerPod(job, r, attempt, build), FIELD_MANAGER)));
  }

  async #writeStatus(key: string, job: GmtFineTune, status: GmtFineTuneStatus): Promise<void> {
    const ns = job.metadata.namespace ?? 'default';
    const body = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: {
        name: job.metadata.name,
        namespace: ns,
        ...(job.metadata.resourceVersion !== undefined ? { resourceVersion: job.metadata.resourceVersion } : {}),
      },
      spec: job.spec,
      status,
    };
    try {
      const res: unknown = await this.#d.custom.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: PLURAL,
        name: job.metadata.name,
        body,
        fieldManager: FIELD_MANAGER,
      });
      this.stats.statusWrites++;
      const parsed = parseGmtFineTune(res);
      if (parsed.ok) this.#written.set(key, { staleRv: job.metadata.resourceVersion, obj: parsed.value });
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) throw new StatusConflictError(`status of ${key} changed meanwhile; retrying`, { cause: err });
      if (err instanceof ApiException && err.code === 404) return;
      throw err;
    }
  }

  #log(level: 'info' | 'error', msg: string, fields?: Record<string, unknown>): void {
    this.#d.log?.(level, msg, fields);
  }
}

function describe(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}: ${typeof err.body === 'string' ? err.body.slice(0, 500) : JSON.stringify(err.body).slice(0, 500)}`;
  return err instanceof Error ? err.message : String(err);
}
