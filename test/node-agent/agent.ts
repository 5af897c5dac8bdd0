// TEST INFRASTRUCTURE, not a kubelet: a node agent that registers a Node and runs the pods that
// kube-scheduler binds to it as local processes (no containers, no isolation, no volumes, no
// probes). It lets the operator be tested against a real control plane on machines without
// Docker. See docs/testing.md for what it does and does not do.

import { mkdir, readFile } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { randomInt } from 'node:crypto';
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  ListWatch,
  V1MicroTime,
  Watch,
  type V1ConfigMap,
  type V1Lease,
  type V1Node,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { freePort } from '../harness/processes.js';
import { parseImageMap, type ImageMap } from './image-map.js';
import { buildNode, computeNodeStatus } from './node.js';
import { PodWorker } from './pod-worker.js';

/** Options for NodeAgent. */
export interface NodeAgentOptions {
  /** Admin kubeconfig (content, not path). */
  readonly kubeconfig: string;
  /** Node name; default gmt-node-0. */
  readonly nodeName?: string;
  /** Allocatable nvidia.com/gpu; default 8 (scheduling only: no device is attached). */
  readonly gpus?: number;
  /** Image → local command map; default: DEFAULT_IMAGES plus GMT_NODE_AGENT_IMAGES. */
  readonly images?: ImageMap;
  /** Where container logs go; required. */
  readonly logDir: string;
  /** Restart back-off for restart n; default 500 ms doubling to 10 s. */
  readonly backoffMs?: (n: number) => number;
  /** Progress and error lines; default: none. */
  readonly log?: (line: string) => void;
}

const LEASE_SECONDS = 40;
const LEASE_RENEW_MS = 10_000;
const STATUS_REPORT_MS = 60_000;

function isApiError(err: unknown, ...codes: number[]): boolean {
  return err instanceof ApiException && codes.includes(err.code);
}

/** A running node agent. `close()` stops it and every process it started. */
export class NodeAgent {
  readonly nodeName: string;
  readonly closed: Promise<void>;
  #opts: NodeAgentOptions;
  #kc: KubeConfig;
  #core: CoreV1Api;
  #coord: CoordinationV1Api;
  #images: ImageMap;
  #workers = new Map<string, PodWorker>();
  /** ns/name → worker of the latest pod of that name (kept after deletion for its logs). */
  #byName = new Map<string, PodWorker>();
  #podIPs = new Set<string>();
  #informer: ListWatch<V1Pod> | undefined;
  #timers: NodeJS.Timeout[] = [];
  #closing = false;
  #resolveClosed!: () => void;
  #log: (line: string) => void;

  constructor(opts: NodeAgentOptions) {
    this.#opts = opts;
    this.nodeName = opts.nodeName ?? 'gmt-node-0';
    this.#kc = new KubeConfig();
    this.#kc.loadFromString(opts.kubeconfig);
    this.#core = this.#kc.makeApiClient(CoreV1Api);
    this.#coord = this.#kc.makeApiClient(CoordinationV1Api);
    this.#images = opts.images ?? parseImageMap(process.env['GMT_NODE_AGENT_IMAGES']);
    this.#log = opts.log ?? (() => {});
    this.closed = new Promise((r) => (this.#resolveClosed = r));
  }

  /** Registers the Node, starts its heartbeat and begins running pods bound to it. */
  async start(): Promise<void> {
    await mkdir(this.#opts.logDir, { recursive: true });
    await this.#registerNode();
    await this.#renewLease();
    this.#timers.push(setInterval(() => void this.#renewLease().catch((e: unknown) => this.#log(`lease: ${String(e)}`)), LEASE_RENEW_MS));
    this.#timers.push(setInterval(() => void this.#reportNodeStatus().catch((e: unknown) => this.#log(`node status: ${String(e)}`)), STATUS_REPORT_MS));
    const fieldSelector = `spec.nodeName=${this.nodeName}`;
    const informer = new ListWatch<V1Pod>(
      '/api/v1/pods',
      new Watch(this.#kc),
      () => this.#core.listPodForAllNamespaces({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    informer.on('add', (pod) => this.#onPod(pod));
    informer.on('update', (pod) => this.#onPod(pod));
    informer.on('delete', (pod) => void this.#onPodDeleted(pod));
    informer.on('error', (err) => {
      if (this.#closing) return;
      this.#log(`pod watch failed, restarting: ${String(err)}`);
      setTimeout(() => void informer.start().catch(() => {}), 1000).unref();
    });
    this.#informer = informer;
    await informer.start();
  }

  /** The log of a container's latest run (or run number `restart`); undefined if it never ran here. */
  async containerLog(namespace: string, pod: string, container: string, restart?: number): Promise<string | undefined> {
    const path = this.#byName.get(`${namespace}/${pod}`)?.logPath(container, restart);
    if (path === undefined) return undefined;
    try {
      return await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Stops watching and kills every container (SIGTERM, SIGKILL after `graceSeconds`). Idempotent. */
  async close(graceSeconds = 5): Promise<void> {
    if (this.#closing) return this.closed;
    this.#closing = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#informer?.stop();
    await Promise.all([...this.#workers.values()].map((w) => w.shutdown(graceSeconds)));
    this.#resolveClosed();
    return this.closed;
  }

  async #registerNode(): Promise<void> {
    const node = buildNode({ name: this.nodeName, gpus: this.#opts.gpus ?? 8, cpuCores: availableParallelism(), memoryBytes: totalmem() });
    let current: V1Node;
    try {
      current = await this.#core.createNode({ body: node });
    } catch (err) {
      if (!isApiError(err, 409)) throw err;
      current = await this.#core.readNode({ name: this.nodeName });
    }
    await this.#reportNodeStatus(current);
  }

  async #reportNodeStatus(current?: V1Node): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const node = current ?? (await this.#core.readNode({ name: this.nodeName }));
      current = undefined;
      node.status = computeNodeStatus({
        gpus: this.#opts.gpus ?? 8,
        cpuCores: availableParallelism(),
        memoryBytes: totalmem(),
        previous: node.status,
        now: new Date(),
      });
      try {
        await this.#core.replaceNodeStatus({ name: this.nodeName, body: node });
        return;
      } catch (err) {
        if (!isApiError(err, 409) || attempt > 5) throw err;
      }
    }
  }

  /** Keeps the node's Lease fresh: the node lifecycle controller marks nodes without it NotReady. */
  async #renewLease(): Promise<void> {
    const namespace = 'kube-node-lease';
    const now = new Date();
    try {
      const lease = await this.#coord.readNamespacedLease({ name: this.nodeName, namespace });
      lease.spec = { ...lease.spec, holderIdentity: this.nodeName, leaseDurationSeconds: LEASE_SECONDS, renewTime: new V1MicroTime(now) };
      await this.#coord.replaceNamespacedLease({ name: this.nodeName, namespace, body: lease });
    } catch (err) {
      if (!isApiError(err, 404)) throw err;
      const node = await this.#core.readNode({ name: this.nodeName });
      const body: V1Lease = {
        metadata: {
          name: this.nodeName,
          namespace,
          ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: this.nodeName, uid: node.metadata?.uid ?? '' }],
        },
        spec: { holderIdentity: this.nodeName, leaseDurationSeconds: LEASE_SECONDS, renewTime: new V1MicroTime(now) },
      };
      await this.#coord.createNamespacedLease({ namespace, body });
    }
  }

  #onPod(pod: V1Pod): void {
    if (this.#closing) return;
    const uid = pod.metadata?.uid ?? '';
    const existing = this.#workers.get(uid);
    if (existing !== undefined) {
      existing.update(pod);
      return;
    }
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') {
      // Finished before this agent started (or its worker was dropped): only deletion is left to do.
      if (pod.metadata?.deletionTimestamp !== undefined) void this.#deletePod(pod);
      return;
    }
    void this.#startWorker(pod).catch((err: unknown) => this.#log(`pod ${pod.metadata?.name ?? ''}: cannot start: ${String(err)}`));
  }

  async #startWorker(pod: V1Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    const ns = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    const podIP = this.#allocatePodIP();
    const podEnv: Record<string, string> = { GMT_POD_IP: podIP };
    // Each declared container port gets a free host port, so two pods never collide on 127.0.0.1.
    for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
      for (const p of c.ports ?? []) {
        const key = (p.name ?? String(p.containerPort)).toUpperCase().replace(/[^A-Z0-9]/g, '_');
        podEnv[`GMT_PORT_${key}`] ??= String(await freePort());
      }
    }
    const server = new URL(this.#kc.getCurrentCluster()?.server ?? 'https://127.0.0.1:443');
    const nodeBin = dirname(process.execPath);
    const baseEnv: Record<string, string> = {
      // The agent's Node comes first on PATH so `node` in a mapped image is the repo's Node.
      PATH: `${nodeBin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
      HOME: process.env['HOME'] ?? '/tmp',
      LANG: process.env['LANG'] ?? 'C.UTF-8',
      TMPDIR: process.env['TMPDIR'] ?? '/tmp',
      HOSTNAME: name,
      KUBERNETES_SERVICE_HOST: server.hostname,
      KUBERNETES_SERVICE_PORT: server.port === '' ? '443' : server.port,
    };
    const logDir = join(this.#opts.logDir, `${ns}_${name}_${uid}`);
    if (this.#workers.has(uid) || this.#closing) {
      this.#podIPs.delete(podIP);
      return;
    }
    const worker = new PodWorker(pod, {
      nodeName: this.nodeName,
      hostIP: '127.0.0.1',
      podIP,
      podEnv,
      cpuCores: availableParallelism(),
      memoryBytes: totalmem(),
      images: this.#images,
      envSources: { configMap: (n, x) => this.#readConfigMap(n, x), secret: (n, x) => this.#readSecret(n, x) },
      baseEnv,
      logDir,
      writeStatus: (p, build) => this.#writeStatus(p, build),
      deletePod: (p) => this.#deletePod(p),
      backoffMs: this.#opts.backoffMs ?? ((n) => Math.min(10_000, 500 * 2 ** n)),
      log: this.#log,
    });
    this.#workers.set(uid, worker);
    this.#byName.set(`${ns}/${name}`, worker);
    void worker.closed.then(() => this.#podIPs.delete(podIP));
    this.#log(`pod ${ns}/${name}: starting (ip ${podIP})`);
    worker.start();
    // The pod may have changed (or been marked for deletion) while we prepared.
    const latest = this.#informer?.get(name, ns);
    if (latest !== undefined && latest.metadata?.uid === uid) worker.update(latest);
  }

  async #onPodDeleted(pod: V1Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    const worker = this.#workers.get(uid);
    if (worker === undefined) return;
    this.#workers.delete(uid);
    await worker.removed();
  }

  /** A loopback address of its own for each pod (127.0.0.0/8 is all loopback on Linux). */
  #allocatePodIP(): string {
    for (;;) {
      // Random rather than sequential so agents of different test processes rarely meet.
      const ip = `127.${randomInt(100, 200)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
      if (!this.#podIPs.has(ip)) {
        this.#podIPs.add(ip);
        return ip;
      }
    }
  }

  async #readConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    try {
      return await this.#core.readNamespacedConfigMap({ name, namespace });
    } catch (err) {
      if (isApiError(err, 404)) return undefined;
      throw err;
    }
  }

  async #readSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.#core.readNamespacedSecret({ name, namespace });
    } catch (err) {
      if (isApiError(err, 404)) return undefined;
      throw err;
    }
  }

  /** Read-modify-write of pods/status, retried on conflicts; false when the pod is gone. */
  async #writeStatus(pod: V1Pod, build: (current: V1Pod) => V1Pod['status']): Promise<boolean> {
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? '';
    for (let attempt = 0; ; attempt++) {
      let current: V1Pod;
      try {
        current = await this.#core.readNamespacedPod({ name, namespace });
      } catch (err) {
        if (isApiError(err, 404)) return false;
        throw err;
      }
      if (current.metadata?.uid !== pod.metadata?.uid) return false;
      const status = build(current);
      if (status !== undefined) current.status = status;
      try {
        await this.#core.replaceNamespacedPodStatus({ name, namespace, body: current });
        return true;
      } catch (err) {
        if (isApiError(err, 404)) return false;
        if (!isApiError(err, 409) || attempt > 10) throw err;
      }
    }
  }

  /** Final removal after the containers have stopped (the kubelet's job in a real cluster). */
  async #deletePod(pod: V1Pod): Promise<void> {
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? '';
    try {
      await this.#core.deleteNamespacedPod({
        name,
        namespace,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata?.uid ?? '' } },
      });
    } catch (err) {
      if (!isApiError(err, 404, 409)) this.#log(`pod ${namespace}/${name}: delete failed: ${String(err)}`);
    }
  }
}
