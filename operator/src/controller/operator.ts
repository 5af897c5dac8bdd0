/**
 * The operator assembled: informers (GmtFineTune, its Pods, Services, ConfigMaps) whose handlers
 * only enqueue keys, one work queue, the reconciler, the progress tracker, metrics and health
 * server, and optional leader election (only the leader runs the controller; the caches stay warm
 * on standbys). `startOperator` is what main.ts and the in-process e2e tests call.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { GROUP, KIND, PLURAL, VERSION, parseGmtFineTune, type GmtFineTune } from '../api/index.js';
import { OperatorMetrics, cachesSyncedCheck, leaderElectionCheck, startOperatorServer, type HealthCheck, type OperatorServer } from '../metrics/index.js';
import { Controller, EventRecorder, Informer, LeaderElector, WorkQueue, makeObjectClient, otelReconcileSpan, type ListResult } from '../runtime/index.js';
import { DEFAULT_BUILD_OPTIONS, type BuildOptions } from './children.js';
import { CHILD_SELECTOR } from './names.js';
import { ChildViewSchema, PodViewSchema, type ChildView, type PodView } from './pod-view.js';
import { ProgressTracker } from './progress.js';
import { GmtFineTuneReconciler, type Store } from './reconciler.js';

/** Name of the controller (metrics label, queue name). */
export const CONTROLLER = 'gmtfinetune';

/** A structured log line sink. */
export type Logger = (level: 'info' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Options of startOperator. */
export interface OperatorOptions {
  readonly kc: KubeConfig;
  /** Namespaces to watch; empty: all namespaces. */
  readonly namespaces: readonly string[];
  /** NATS URL the operator subscribes to for progress, and the workers' default ('' = none). */
  readonly natsUrl: string;
  /** Path of the NATS .creds file for the progress subscription (empty: none). */
  readonly natsCreds?: string;
  /** Port of /metrics, /healthz, /readyz (0: a free one; undefined: no server). */
  readonly metricsPort?: number;
  readonly metricsHost?: string;
  /** Leader election; undefined: this replica always reconciles. */
  readonly leaderElection?: {
    readonly namespace: string;
    readonly name: string;
    readonly identity?: string;
    readonly leaseDurationSeconds?: number;
    readonly renewDeadlineSeconds?: number;
    readonly retryPeriodSeconds?: number;
  };
  /** Concurrent reconciles; default 4. */
  readonly workers?: number;
  /** Trainer container metrics port; default 9400. */
  readonly trainerMetricsPort?: number;
  /** Least time between progress-driven reconciles of one job; default 3000 ms. */
  readonly progressIntervalMs?: number;
  readonly log?: Logger;
}

/** A running operator. */
export interface Operator {
  readonly reconciler: GmtFineTuneReconciler;
  readonly progress: ProgressTracker;
  readonly metrics: OperatorMetrics;
  readonly server: OperatorServer | undefined;
  readonly elector: LeaderElector | undefined;
  /** Resolves once every informer has synced. */
  waitForSync(): Promise<void>;
  /** Stops everything (idempotent); resolves when in-flight reconciles are done. */
  close(): Promise<void>;
  /** Resolves when the operator stopped (closed, or leadership lost: `lostLeadership` tells). */
  readonly closed: Promise<void>;
  readonly lostLeadership: () => boolean;
}

const ListSchema = z.object({ metadata: z.object({ resourceVersion: z.string().optional() }).optional(), items: z.array(z.unknown()) });

function asList(x: unknown): ListResult {
  const r = ListSchema.parse(JSON.parse(JSON.stringify(x)));
  return { items: r.items, ...(r.metadata !== undefined ? { metadata: r.metadata } : {}) };
}

/** One informer per watched namespace (or one for all), read as a single store. */
class InformerSet<T> implements Store<T> {
  constructor(readonly informers: readonly Informer<T>[]) {}
  get(namespace: string | undefined, name: string): T | undefined {
    for (const i of this.informers) {
      const v = i.get(namespace, name);
      if (v !== undefined) return v;
    }
    return undefined;
  }
  listByOwner(uid: string): T[] {
    return this.informers.flatMap((i) => i.listByOwner(uid));
  }
}

/** The informers of the operator: one per watched namespace (or one for all) of each kind. */
interface Informers {
  readonly jobs: Informer<GmtFineTune>[];
  readonly pods: Informer<PodView>[];
  readonly services: Informer<ChildView>[];
  readonly configMaps: Informer<ChildView>[];
  readonly all: Informer<unknown>[];
}

/** GmtFineTunes enqueue their own key; the labelled children (pods, services, configmaps) their owner's. */
function createInformers(kc: KubeConfig, namespaces: readonly string[], queue: WorkQueue, log: Logger): Informers {
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const scopes: (string | undefined)[] = namespaces.length === 0 ? [undefined] : [...namespaces];
  const informerLog =
    (name: string) =>
    (line: string): void =>
      log('info', line, { informer: name });
  const jobs = scopes.map(
    (ns) =>
      new Informer<GmtFineTune>({
        kc,
        name: `gmtfinetunes${ns !== undefined ? `/${ns}` : ''}`,
        log: informerLog('gmtfinetunes'),
        path: ns === undefined ? `/apis/${GROUP}/${VERSION}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`,
        list: async () =>
          asList(
            ns === undefined
              ? await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
              : await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL }),
          ),
        parse: (raw) => {
          const r = parseGmtFineTune(raw);
          if (!r.ok) throw new Error(r.error);
          return r.value;
        },
      }),
  );
  const child = <T>(schema: { parse(x: unknown): T }, list: (ns: string | undefined) => Promise<unknown>, plural: string): Informer<T>[] =>
    scopes.map(
      (ns) =>
        new Informer<T>({
          kc,
          name: `${plural}${ns !== undefined ? `/${ns}` : ''}`,
          log: informerLog(plural),
          labelSelector: CHILD_SELECTOR,
          path: ns === undefined ? `/api/v1/${plural}` : `/api/v1/namespaces/${ns}/${plural}`,
          list: async () => asList(await list(ns)),
          parse: (raw) => schema.parse(raw),
        }),
    );
  const sel = { labelSelector: CHILD_SELECTOR };
  const pods = child<PodView>(
    PodViewSchema,
    (ns) => (ns === undefined ? core.listPodForAllNamespaces(sel) : core.listNamespacedPod({ namespace: ns, ...sel })),
    'pods',
  );
  const services = child<ChildView>(
    ChildViewSchema,
    (ns) => (ns === undefined ? core.listServiceForAllNamespaces(sel) : core.listNamespacedService({ namespace: ns, ...sel })),
    'services',
  );
  const configMaps = child<ChildView>(
    ChildViewSchema,
    (ns) => (ns === undefined ? core.listConfigMapForAllNamespaces(sel) : core.listNamespacedConfigMap({ namespace: ns, ...sel })),
    'configmaps',
  );
  const owner = { group: GROUP, kind: KIND };
  for (const i of jobs) i.enqueue(queue);
  for (const i of [...pods, ...services, ...configMaps]) i.enqueueOwner(queue, owner);
  const all: Informer<unknown>[] = [...jobs, ...pods, ...services, ...configMaps] as Informer<unknown>[];
  return { jobs, pods, services, configMaps, all };
}

/** The reconciler over the informers' caches, with its event recorder, progress tracker and child build options. */
function createReconciler(
  o: OperatorOptions,
  inf: Informers,
  progress: ProgressTracker,
  metrics: OperatorMetrics,
  identity: string,
  log: Logger,
): GmtFineTuneReconciler {
  const { kc } = o;
  const build: BuildOptions = {
    ...DEFAULT_BUILD_OPTIONS,
    defaultNatsUrl: o.natsUrl,
    ...(o.trainerMetricsPort !== undefined ? { metricsPort: o.trainerMetricsPort } : {}),
  };
  const events = new EventRecorder({ kc, component: 'gmt-operator', instance: identity, log: (l) => log('error', l, { component: 'events' }) });
  return new GmtFineTuneReconciler({
    jobs: new InformerSet(inf.jobs),
    pods: new InformerSet(inf.pods),
    services: new InformerSet(inf.services),
    configMaps: new InformerSet(inf.configMaps),
    objects: makeObjectClient(kc),
    custom: kc.makeApiClient(CustomObjectsApi),
    events,
    progress,
    build,
    log,
    metrics,
  });
}

/** Leader election: only the leader runs the controller; losing the lease stops it. */
function createElector(
  o: OperatorOptions,
  le: NonNullable<OperatorOptions['leaderElection']>,
  identity: string,
  controller: Controller,
  metrics: OperatorMetrics,
  log: Logger,
): LeaderElector {
  return new LeaderElector({
    kc: o.kc,
    namespace: le.namespace,
    name: le.name,
    identity,
    ...(le.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: le.leaseDurationSeconds } : {}),
    ...(le.renewDeadlineSeconds !== undefined ? { renewDeadlineSeconds: le.renewDeadlineSeconds } : {}),
    ...(le.retryPeriodSeconds !== undefined ? { retryPeriodSeconds: le.retryPeriodSeconds } : {}),
    metrics: metrics.leaderElection(le.name),
    onStartedLeading: () => {
      log('info', 'started leading', { lease: `${le.namespace}/${le.name}`, identity });
      void controller.start();
    },
    onStoppedLeading: async () => {
      log('info', 'stopped leading', { identity });
      await controller.close();
    },
    log: (l, level) => log(level ?? 'info', l, { component: 'leader-election' }),
  });
}

/** Starts the operator (see the file comment). */
export async function startOperator(o: OperatorOptions): Promise<Operator> {
  const log: Logger = o.log ?? (() => {});
  const metrics = new OperatorMetrics();
  const queue = new WorkQueue({ name: CONTROLLER, metrics: metrics.workQueue(CONTROLLER) });
  const inf = createInformers(o.kc, o.namespaces, queue, log);
  const { all } = inf;
  const progress = new ProgressTracker({
    natsUrl: o.natsUrl,
    ...(o.natsCreds !== undefined ? { natsCreds: o.natsCreds } : {}),
    sink: queue,
    ...(o.progressIntervalMs !== undefined ? { minIntervalMs: o.progressIntervalMs } : {}),
    log: (l, level) => log(level ?? 'info', l, { component: 'progress' }),
  });
  const identity = o.leaderElection?.identity ?? `${hostname()}_${randomBytes(4).toString('hex')}`;
  const reconciler = createReconciler(o, inf, progress, metrics, identity, log);
  const controller = new Controller({
    name: CONTROLLER,
    queue,
    reconcile: (key) => reconciler.reconcile(key),
    workers: o.workers ?? 4,
    waitFor: all,
    metrics: metrics.controller(CONTROLLER),
    span: otelReconcileSpan('gmt-operator'),
    onError: (key, err) => log('error', 'reconcile failed', { key, error: err instanceof Error ? err.message : String(err) }),
  });

  for (const i of all) i.start();
  progress.start();

  let lost = false;
  const elector = o.leaderElection !== undefined ? createElector(o, o.leaderElection, identity, controller, metrics, log) : undefined;
  const readiness: HealthCheck[] = [cachesSyncedCheck(all), ...(elector !== undefined ? [leaderElectionCheck(elector)] : [])];
  const server =
    o.metricsPort !== undefined
      ? await startOperatorServer({
          port: o.metricsPort,
          ...(o.metricsHost !== undefined ? { host: o.metricsHost } : {}),
          registry: metrics.registry,
          readiness,
        })
      : undefined;

  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (elector !== undefined) await elector.close();
      await controller.close();
      await progress.close();
      await Promise.all(all.map((i) => i.close()));
      await server?.close();
      resolveClosed();
    })();
    return closing;
  };
  if (elector !== undefined) {
    elector.start();
    void elector.closed.then(() => {
      if (elector.lost) {
        lost = true;
        void close();
      }
    });
  } else {
    void controller.start();
  }
  return {
    reconciler,
    progress,
    metrics,
    server,
    elector,
    waitForSync: async () => {
      await Promise.all(all.map((i) => i.waitForSync()));
    },
    close,
    closed,
    lostLeadership: () => lost,
  };
}
