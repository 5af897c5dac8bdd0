/**
 * Pure builders of a GmtFineTune's children (docs/architecture.md §4, §6): the headless Service, the
 * ConfigMap with the trainer config, and one worker Pod per rank. Same input, same object: they
 * are applied with server-side apply, so re-applying is a no-op on the server.
 */
import type {
  V1ConfigMap,
  V1EnvVar,
  V1OwnerReference,
  V1Pod,
  V1ResourceRequirements,
  V1Secret,
  V1Service,
  V1Toleration,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import {
  ANNOTATIONS,
  API_VERSION,
  KIND,
  LABELS,
  ROLES,
  WORKER_PATHS,
  claimMountPath,
  computeTrainerConfig,
  sourceClaims,
  type GmtFineTune,
  type TrainerConfigInput,
} from '../api/index.js';
import { ENV } from '../../../contract/env.js';
import { childLabels, computeJobId, configMapName, natsCredsSecretName, podHostname, podName, serviceName, shortHash } from './names.js';

/** Key of the trainer config in the ConfigMap. */
export const CONFIG_KEY = 'config.json';
/** Name of the worker container. */
export const CONTAINER_NAME = 'trainer';
/** UID/GID the workers run as (distroless `nonroot`). */
export const WORKER_UID = 65532;

/** Operator-level settings the builders need. */
export interface BuildOptions {
  /** NATS URL when the spec sets none ('' = none configured). */
  readonly defaultNatsUrl: string;
  /** Container port of the trainer's /metrics (0: metrics off). */
  readonly metricsPort: number;
  /**
   * The operator mints per-attempt NATS identities for the default NATS (docs/security.md): pods of
   * jobs that name neither their own URL nor their own credentials mount `<name>-nats-a<attempt>`.
   */
  readonly managedNatsCredentials?: boolean;
  /** The managed credentials Secret also carries the NATS CA (`ca.crt`; NODE_EXTRA_CA_CERTS points at it). */
  readonly natsCa?: boolean;
}

/** Defaults of BuildOptions. */
export const DEFAULT_BUILD_OPTIONS: BuildOptions = { defaultNatsUrl: '', metricsPort: 9400 };

/** Keys of a managed NATS credentials Secret. */
export const NATS_CREDS_KEYS = { creds: 'nats.creds', ca: 'ca.crt' } as const;

type Applied<T, V extends string, K extends string> = T & { apiVersion: V; kind: K; metadata: { name: string; namespace: string } };
/** A Service ready for server-side apply. */
export type ServiceObject = Applied<V1Service, 'v1', 'Service'>;
/** A ConfigMap ready for server-side apply. */
export type ConfigMapObject = Applied<V1ConfigMap, 'v1', 'ConfigMap'>;
/** A Pod ready for server-side apply. */
export type PodObject = Applied<V1Pod, 'v1', 'Pod'>;
/** A Secret ready for server-side apply. */
export type SecretObject = Applied<V1Secret, 'v1', 'Secret'>;

function ns(job: GmtFineTune): string {
  return job.metadata.namespace ?? 'default';
}

/** The controller owner reference every child carries (garbage collection deletes them with the job). */
export function buildOwnerReference(job: GmtFineTune): V1OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: job.metadata.name, uid: job.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

/** The NATS URL the workers use: the spec's, else the operator's default ('' when neither). */
export function computeNatsUrl(job: GmtFineTune, opts: BuildOptions): string {
  return job.spec.nats?.url ?? opts.defaultNatsUrl;
}

/** The trainer config file content: the spec's keys plus pod-independent settings for running in a pod. */
export function computePodTrainerConfig(job: GmtFineTune): TrainerConfigInput {
  // No progress bar in a pod (no TTY); JSON log lines for log collectors.
  return { ...computeTrainerConfig(job.spec), progress: 'none', logFormat: 'json', resume: 'auto' };
}

/** The ConfigMap `<name>-config` with the trainer config JSON; its hash is annotated on it and on the pods. */
export function buildConfigMap(job: GmtFineTune): ConfigMapObject {
  const text = `${JSON.stringify(computePodTrainerConfig(job), null, 2)}\n`;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: configMapName(job.metadata.name),
      namespace: ns(job),
      labels: childLabels(job.metadata.name, ROLES.config),
      annotations: { [ANNOTATIONS.configHash]: shortHash(text) },
      ownerReferences: [buildOwnerReference(job)],
    },
    data: { [CONFIG_KEY]: text },
  };
}

/** Hash of the config the pods are built from (equal to the ConfigMap's annotation). */
export function computeConfigHash(job: GmtFineTune): string {
  return buildConfigMap(job).metadata.annotations?.[ANNOTATIONS.configHash] ?? '';
}

/** The headless Service `<name>`: DNS for `<name>-<rank>.<name>` and a scrape target for the workers. */
export function buildService(job: GmtFineTune, opts: BuildOptions = DEFAULT_BUILD_OPTIONS): ServiceObject {
  const name = job.metadata.name;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: serviceName(name), namespace: ns(job), labels: childLabels(name, ROLES.service), ownerReferences: [buildOwnerReference(job)] },
    spec: {
      clusterIP: 'None',
      // Ranks must resolve each other before they are Ready (no readiness probe gates rendezvous).
      publishNotReadyAddresses: true,
      selector: { [LABELS.job]: name, [LABELS.role]: ROLES.worker },
      ports: [{ name: 'metrics', port: opts.metricsPort > 0 ? opts.metricsPort : 9400, protocol: 'TCP' }],
    },
  };
}

/** Quantities as core/v1 wants them (strings). */
function quantities(m: Readonly<Record<string, string | number>> | undefined): Record<string, string> | undefined {
  if (m === undefined) return undefined;
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]));
}

function resources(job: GmtFineTune): V1ResourceRequirements | undefined {
  const r = job.spec.resources;
  if (r === undefined) return undefined;
  const requests = quantities(r.requests);
  const limits = quantities(r.limits);
  return { ...(requests !== undefined ? { requests } : {}), ...(limits !== undefined ? { limits } : {}) };
}

function checkpointVolume(job: GmtFineTune): V1Volume {
  const v = job.spec.checkpoint.volume;
  if (v.persistentVolumeClaim !== undefined) return { name: 'checkpoints', persistentVolumeClaim: { claimName: v.persistentVolumeClaim.claimName } };
  const e = v.emptyDir ?? {};
  return {
    name: 'checkpoints',
    emptyDir: {
      ...(e.medium !== undefined && e.medium !== '' ? { medium: e.medium } : {}),
      ...(e.sizeLimit !== undefined ? { sizeLimit: String(e.sizeLimit) } : {}),
    },
  };
}

function toleration(x: NonNullable<NonNullable<GmtFineTune['spec']['podTemplate']>['tolerations']>[number]): V1Toleration {
  const out: V1Toleration = {};
  if (x.key !== undefined) out.key = x.key;
  if (x.operator !== undefined) out.operator = x.operator;
  if (x.value !== undefined) out.value = x.value;
  if (x.effect !== undefined) out.effect = x.effect;
  if (x.tolerationSeconds !== undefined) out.tolerationSeconds = x.tolerationSeconds;
  return out;
}

/** Whether `job`'s pods use the operator-minted credentials (default NATS, no credentials of its own). */
export function usesManagedNatsCredentials(job: GmtFineTune, opts: BuildOptions): boolean {
  return opts.managedNatsCredentials === true && job.spec.nats?.url === undefined && job.spec.nats?.credentialsSecret === undefined;
}

/** The Secret `<name>-nats-a<attempt>` with one attempt's .creds (and the NATS CA when TLS is on). */
export function buildNatsCredsSecret(job: GmtFineTune, attempt: number, creds: string, caPem?: string): SecretObject {
  const data: Record<string, string> = { [NATS_CREDS_KEYS.creds]: Buffer.from(creds, 'utf8').toString('base64') };
  if (caPem !== undefined) data[NATS_CREDS_KEYS.ca] = Buffer.from(caPem, 'utf8').toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: natsCredsSecretName(job.metadata.name, attempt),
      namespace: ns(job),
      labels: { ...childLabels(job.metadata.name, ROLES.natsCredentials), [LABELS.attempt]: String(attempt) },
      ownerReferences: [buildOwnerReference(job)],
    },
    type: 'Opaque',
    data,
  };
}

/** The env of docs/architecture.md §4 for one rank of one attempt. */
export function buildWorkerEnv(job: GmtFineTune, rank: number, attempt: number, opts: BuildOptions = DEFAULT_BUILD_OPTIONS): V1EnvVar[] {
  const jobId = computeJobId(job);
  const managed = usesManagedNatsCredentials(job, opts);
  const creds = managed ? { key: NATS_CREDS_KEYS.creds } : job.spec.nats?.credentialsSecret;
  return [
    { name: ENV.jobId, value: jobId },
    { name: ENV.rank, value: String(rank) },
    { name: ENV.worldSize, value: String(job.spec.workers) },
    { name: ENV.attempt, value: String(attempt) },
    { name: ENV.natsUrl, value: computeNatsUrl(job, opts) },
    ...(creds !== undefined ? [{ name: ENV.natsCreds, value: `${WORKER_PATHS.natsCredsDir}/${creds.key}` }] : []),
    // Node adds this CA to its trust store at start-up: the NATS client then verifies the server.
    ...(managed && opts.natsCa === true ? [{ name: 'NODE_EXTRA_CA_CERTS', value: `${WORKER_PATHS.natsCredsDir}/${NATS_CREDS_KEYS.ca}` }] : []),
    { name: ENV.config, value: `${WORKER_PATHS.configDir}/${CONFIG_KEY}` },
    { name: ENV.checkpointDir, value: `${WORKER_PATHS.checkpointMount}/${jobId}` },
    { name: ENV.metricsPort, value: String(opts.metricsPort) },
    { name: 'HOME', value: WORKER_PATHS.tmp },
  ];
}

/** Worker pod of `rank` in gang attempt `attempt`. */
export function buildWorkerPod(job: GmtFineTune, rank: number, attempt: number, opts: BuildOptions = DEFAULT_BUILD_OPTIONS): PodObject {
  const name = job.metadata.name;
  const t = job.spec.podTemplate ?? {};
  const managed = usesManagedNatsCredentials(job, opts);
  const own = job.spec.nats?.credentialsSecret;
  const creds = managed
    ? { name: natsCredsSecretName(name, attempt), items: [NATS_CREDS_KEYS.creds, ...(opts.natsCa === true ? [NATS_CREDS_KEYS.ca] : [])] }
    : own !== undefined
      ? { name: own.name, items: [own.key] }
      : undefined;
  const claims = sourceClaims(job.spec);
  const volumes: V1Volume[] = [
    { name: 'config', configMap: { name: configMapName(name) } },
    checkpointVolume(job),
    { name: 'tmp', emptyDir: {} },
    // Claims named by pvc://<claim>/<path> sources (model, data), read-only.
    ...claims.map((claimName, i) => ({ name: `source-claim-${i}`, persistentVolumeClaim: { claimName, readOnly: true } })),
    // Readable by the worker's group (fsGroup) only: the seed in it is the attempt's identity.
    ...(creds !== undefined
      ? [{ name: 'nats-creds', secret: { secretName: creds.name, defaultMode: 0o440, items: creds.items.map((k) => ({ key: k, path: k })) } }]
      : []),
  ];
  const mounts: V1VolumeMount[] = [
    { name: 'config', mountPath: WORKER_PATHS.configDir, readOnly: true },
    { name: 'checkpoints', mountPath: WORKER_PATHS.checkpointMount },
    { name: 'tmp', mountPath: WORKER_PATHS.tmp },
    ...claims.map((claim, i) => ({ name: `source-claim-${i}`, mountPath: claimMountPath(job.spec, claim), readOnly: true })),
    ...(creds !== undefined ? [{ name: 'nats-creds', mountPath: WORKER_PATHS.natsCredsDir, readOnly: true }] : []),
  ];
  const res = resources(job);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(name, attempt, rank),
      namespace: ns(job),
      // Template labels first: ours win, so selectors and the operator's buckets cannot be overridden.
      labels: { ...(t.labels ?? {}), ...childLabels(name, ROLES.worker), [LABELS.rank]: String(rank), [LABELS.attempt]: String(attempt) },
      annotations: { ...(t.annotations ?? {}), [ANNOTATIONS.configHash]: computeConfigHash(job), [ANNOTATIONS.worldSize]: String(job.spec.workers) },
      ownerReferences: [buildOwnerReference(job)],
    },
    spec: {
      // The operator restarts the whole gang; a rank restarted alone could not rejoin its attempt.
      restartPolicy: 'Never',
      hostname: podHostname(name, rank),
      subdomain: serviceName(name),
      enableServiceLinks: false,
      automountServiceAccountToken: false,
      ...(t.serviceAccountName !== undefined ? { serviceAccountName: t.serviceAccountName } : {}),
      ...(t.priorityClassName !== undefined ? { priorityClassName: t.priorityClassName } : {}),
      ...(t.nodeSelector !== undefined ? { nodeSelector: { ...t.nodeSelector } } : {}),
      ...(t.tolerations !== undefined ? { tolerations: t.tolerations.map(toleration) } : {}),
      ...(t.affinity !== undefined ? { affinity: t.affinity } : {}),
      ...(t.terminationGracePeriodSeconds !== undefined ? { terminationGracePeriodSeconds: t.terminationGracePeriodSeconds } : {}),
      securityContext: { runAsNonRoot: true, runAsUser: WORKER_UID, runAsGroup: WORKER_UID, fsGroup: WORKER_UID, seccompProfile: { type: 'RuntimeDefault' } },
      volumes,
      containers: [
        {
          name: CONTAINER_NAME,
          image: job.spec.image,
          ...(job.spec.imagePullPolicy !== undefined ? { imagePullPolicy: job.spec.imagePullPolicy } : {}),
          env: buildWorkerEnv(job, rank, attempt, opts),
          ...(opts.metricsPort > 0 ? { ports: [{ name: 'metrics', containerPort: opts.metricsPort, protocol: 'TCP' }] } : {}),
          ...(res !== undefined ? { resources: res } : {}),
          volumeMounts: mounts,
          // The trainer prints its error on stderr; the tail of the log becomes the terminated message.
          terminationMessagePolicy: 'FallbackToLogsOnError',
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  };
}
