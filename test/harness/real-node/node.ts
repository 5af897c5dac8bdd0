// A real single-node Kubernetes cluster on this machine, kind-like: the harness's control plane
// (bound to the node's host-local address), containerd + runc + CNI bridge, the kubelet and
// kube-proxy from the same pinned Kubernetes module, and CoreDNS as a pod.
//
// Isolation and clean-up: containerd and the kubelet run inside a private mount namespace (bound
// to a file in the work folder) with their own tmpfs over /run, /var/log and /var/lib/kubelet, so
// every mount they and the pods make dies with the namespace; their root and state folders live in
// the work folder. The pod egress guard (network.ts) is installed before the kubelet starts and
// removed only after every pod process is gone. close() undoes the rest: sysctls back to the values
// read at start, KUBE-*/CNI-* iptables chains, cgroups, links, the work folder.

import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { ensureBinaries, formatDuration } from '../binaries.js';
import { ControlPlane } from '../control-plane.js';
import { runKubectl, waitFor } from '../k8s-helpers.js';
import { writeKubeconfig } from '../kubeconfig.js';
import { ComponentProcess, freePort, waitHealthy } from '../processes.js';
import { buildCorednsManifests, buildHostNetworkPolicy, HOST_NETWORK_POLICY } from './addons.js';
import { LocalPathProvisioner } from './local-path.js';
import { cleanupStaleNode, mountNsFile, teardown, writeUndoRecord } from './teardown.js';
import { buildCniConfig, buildContainerdConfig, buildKubeletConfig, buildKubeProxyConfig } from './config.js';
import { run, tryRun } from './exec.js';
import { ensureCorednsImage, ensureDebianImage, ensurePauseImage } from './images.js';
import { NODE_SYSCTLS, readSysctl } from './machine-state.js';
import { addNodeAddress, installGuard, NODE_IP, NODE_LINK, NODE_NAME, nftTables } from './network.js';
import { requireNodePackages } from './packages.js';

/** Raised when the node cannot start; the message names the component and carries its log tail. */
export class RealNodeError extends Error {
  override name = 'RealNodeError';
}

/** Options for RealCluster.start. */
export interface RealClusterOptions {
  /** Work folder; default a new temporary folder. Removed at close either way. */
  readonly dir?: string;
  /** Extra docker-archive tarballs to import into the node's containerd. */
  readonly images?: readonly string[];
  readonly log?: (line: string) => void;
  /** Work folders of earlier nodes to clean up first if their owner died (e.g. cluster:up's); temporary `gmt-node-*` folders always are. */
  readonly staleDirs?: readonly string[];
  /** Node Ready + CoreDNS ready timeout. Default 180 s. */
  readonly readyTimeoutMs?: number;
}

/** The extended resource the fake device plugin advertises, and how many. */
export const GPU_RESOURCE = 'nvidia.com/gpu';
export const GPU_COUNT = 8;

/**
 * Undoes nodes whose owner was killed before it could close them (e.g. an ava worker on timeout or
 * interrupted): every temporary `gmt-node-*` folder, plus `more`. A node whose owner still runs is left alone.
 */
export async function cleanupStaleNodes(log: (line: string) => void, more: readonly string[] = []): Promise<void> {
  const leftovers = (await readdir(tmpdir())).filter((e) => e.startsWith('gmt-node-')).map((e) => join(tmpdir(), e));
  for (const d of [...leftovers, ...more]) await cleanupStaleNode(d, log);
}

/** A running real cluster. */
export class RealCluster {
  readonly controlPlane: ControlPlane;
  readonly dir: string;
  readonly kc: KubeConfig;
  /** Milliseconds from start() to a Ready node with DNS (binaries and images cached). */
  readonly startMs: number;
  readonly #procs: ComponentProcess[];
  readonly #sysctls: ReadonlyMap<string, string>;
  readonly #log: (line: string) => void;
  readonly #tablesBefore: readonly string[];
  readonly #createdPaths: readonly string[];
  readonly #provisioner: LocalPathProvisioner;
  #closing: Promise<void> | undefined;

  private constructor(init: {
    controlPlane: ControlPlane;
    dir: string;
    startMs: number;
    procs: ComponentProcess[];
    sysctls: ReadonlyMap<string, string>;
    tablesBefore: readonly string[];
    createdPaths: readonly string[];
    provisioner: LocalPathProvisioner;
    log: (line: string) => void;
  }) {
    this.#provisioner = init.provisioner;
    this.#tablesBefore = init.tablesBefore;
    this.#createdPaths = init.createdPaths;
    this.controlPlane = init.controlPlane;
    this.dir = init.dir;
    this.startMs = init.startMs;
    this.#procs = init.procs;
    this.#sysctls = init.sysctls;
    this.#log = init.log;
    this.kc = new KubeConfig();
    this.kc.loadFromString(init.controlPlane.kubeconfig);
  }

  /** Path of the node's containerd socket (for `ctr -a`; run ctr inside the mount namespace: see ctr()). */
  get containerdSocket(): string {
    return join(this.dir, 'containerd', 'containerd.sock');
  }

  /** Runs `ctr -n k8s.io ARGS` against the node's containerd, inside its mount namespace. */
  ctr(args: readonly string[]): Promise<string> {
    return run('nsenter', [`--mount=${mountNsFile(this.dir)}`, '--', 'ctr', '-a', this.containerdSocket, '-n', 'k8s.io', ...args], { timeoutMs: 10 * 60_000 });
  }

  /** Imports docker-archive tarballs into the node's containerd (k8s.io namespace). */
  async importImages(archives: readonly string[]): Promise<void> {
    for (const a of archives) await this.ctr(['images', 'import', '--no-unpack=false', a]);
  }

  /** Starts the whole cluster; on failure undoes what it did and rethrows. */
  static async start(opts: RealClusterOptions = {}): Promise<RealCluster> {
    const log = opts.log ?? (() => {});
    if (process.getuid?.() !== 0) throw new RealNodeError('the real test node needs root (containerd, kubelet, iptables, mounts)');
    await requireNodePackages();
    await cleanupStaleNodes(log, opts.staleDirs);
    if ((await tryRun('ip', ['link', 'show', NODE_LINK])) !== undefined) {
      throw new RealNodeError(`another real test node is running on this machine (link ${NODE_LINK} exists); stop it first (npm run cluster:down)`);
    }
    const bins = await ensureBinaries(['kubelet', 'kube-proxy', 'kubectl', 'gpu-device-plugin'], { log });
    const images = [await ensurePauseImage(), await ensureCorednsImage(log), await ensureDebianImage(log), ...(opts.images ?? [])];
    const started = Date.now();
    const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'gmt-node-')));
    await mkdir(dir, { recursive: true });
    const tablesBefore = await nftTables();
    const createdPaths: string[] = [];
    const sysctls = new Map<string, string>();
    for (const k of NODE_SYSCTLS) {
      const v = await readSysctl(k);
      if (v !== undefined) sysctls.set(k, v);
    }
    const record = (): Parameters<typeof writeUndoRecord>[1] => ({ owner: process.pid, sysctls: Object.fromEntries(sysctls), tablesBefore, createdPaths });
    await writeUndoRecord(dir, record());
    const procs: ComponentProcess[] = [];
    let cp: ControlPlane | undefined;
    let provisioner: LocalPathProvisioner | undefined;
    const undo = async (): Promise<void> => {
      await provisioner?.close();
      await teardown({ dir, procs, sysctls, tablesBefore, createdPaths, log });
      await cp?.close();
      await rm(dir, { recursive: true, force: true });
    };
    try {
      await addNodeAddress();
      cp = await ControlPlane.start({ dir: join(dir, 'control-plane'), keepDir: true, address: NODE_IP, log });
      // Before anything can start a pod.
      await installGuard();
      log(`pod egress guard installed (pods reach pods, Services and ${NODE_IP} only)`);
      await denyHostNetworkPods(bins.kubectl, cp.kubeconfigPath);
      log('hostNetwork pods refused by admission policy');

      for (const d of ['containerd', 'cni/net.d', 'cni/ipam', 'kubelet/root', 'kubelet/pki', 'kube-proxy', 'logs'])
        await mkdir(join(dir, d), { recursive: true });
      await writeFile(join(dir, 'containerd', 'config.toml'), buildContainerdConfig(dir));
      await writeFile(join(dir, 'cni', 'net.d', '10-gmt-pods.conflist'), buildCniConfig(dir));
      await createMountNamespace(dir, createdPaths);
      await writeUndoRecord(dir, record());
      const ns = (bin: string, args: readonly string[]): [string, string[]] => ['nsenter', [`--mount=${mountNsFile(dir)}`, '--', bin, ...args]];

      // Registry pulls must fail on this machine, not leave it: containerd gets a dead local proxy.
      const containerd = await ComponentProcess.start(
        'containerd',
        ...ns('containerd', ['--config', join(dir, 'containerd', 'config.toml')]),
        join(dir, 'logs', 'containerd.log'),
        {
          HTTP_PROXY: 'http://127.0.0.1:9',
          HTTPS_PROXY: 'http://127.0.0.1:9',
          NO_PROXY: '',
        },
      );
      procs.push(containerd);
      await waitFor(
        'containerd socket',
        async () => {
          if (containerd.exited) throw new RealNodeError(`containerd exited: ${await containerd.logTail()}`);
          return (await tryRun('nsenter', [`--mount=${mountNsFile(dir)}`, '--', 'ctr', '-a', join(dir, 'containerd', 'containerd.sock'), 'version'])) !==
            undefined
            ? true
            : undefined;
        },
        { timeoutMs: 30_000 },
      );
      for (const a of images)
        await run(
          'nsenter',
          [`--mount=${mountNsFile(dir)}`, '--', 'ctr', '-a', join(dir, 'containerd', 'containerd.sock'), '-n', 'k8s.io', 'images', 'import', a],
          { timeoutMs: 10 * 60_000 },
        );
      log(`containerd ready, ${images.length} images imported`);

      const kubeletKubeconfig = join(dir, 'kubelet', 'kubeconfig');
      await writeKubeconfig(kubeletKubeconfig, await cp.kubeconfigFor(`system:node:${NODE_NAME}`, ['system:nodes', 'system:masters']));
      const [kubeletPort, kubeletHealthz] = [await freePort(), await freePort()];
      await writeFile(join(dir, 'kubelet', 'config.yaml'), buildKubeletConfig({ dir, caPath: cp.caPath, port: kubeletPort, healthzPort: kubeletHealthz }));
      const kubelet = await ComponentProcess.start(
        'kubelet',
        ...ns(bins.kubelet, [
          `--config=${join(dir, 'kubelet', 'config.yaml')}`,
          `--kubeconfig=${kubeletKubeconfig}`,
          `--root-dir=${join(dir, 'kubelet', 'root')}`,
          `--cert-dir=${join(dir, 'kubelet', 'pki')}`,
          `--hostname-override=${NODE_NAME}`,
          `--node-ip=${NODE_IP}`,
          '--v=1',
        ]),
        join(dir, 'logs', 'kubelet.log'),
      );
      procs.push(kubelet);
      await waitHealthy(kubelet, `http://127.0.0.1:${kubeletHealthz}/healthz`, { timeoutMs: 60_000 });
      // Fake GPUs through the device-plugin API, so that GPU pod specs schedule (no device attached).
      procs.push(
        await ComponentProcess.start(
          'gpu-device-plugin',
          ...ns(bins['gpu-device-plugin'], ['-resource', GPU_RESOURCE, '-count', String(GPU_COUNT)]),
          join(dir, 'logs', 'gpu-device-plugin.log'),
        ),
      );

      const proxyKubeconfig = join(dir, 'kube-proxy', 'kubeconfig');
      await writeKubeconfig(proxyKubeconfig, await cp.kubeconfigFor('system:kube-proxy', ['system:masters']));
      const [proxyHealthz, proxyMetrics] = [await freePort(), await freePort()];
      await writeFile(
        join(dir, 'kube-proxy', 'config.yaml'),
        buildKubeProxyConfig({ kubeconfig: proxyKubeconfig, healthzPort: proxyHealthz, metricsPort: proxyMetrics }),
      );
      const proxy = await ComponentProcess.start(
        'kube-proxy',
        bins['kube-proxy'],
        [`--config=${join(dir, 'kube-proxy', 'config.yaml')}`, '--v=1'],
        join(dir, 'logs', 'kube-proxy.log'),
      );
      procs.push(proxy);
      await waitHealthy(proxy, `http://127.0.0.1:${proxyHealthz}/healthz`, { timeoutMs: 60_000 });

      const kc = new KubeConfig();
      kc.loadFromString(cp.kubeconfig);
      const core = kc.makeApiClient(CoreV1Api);
      const timeoutMs = opts.readyTimeoutMs ?? 180_000;
      await waitFor(
        `node ${NODE_NAME} Ready`,
        async () => {
          if (kubelet.exited) throw new RealNodeError(`kubelet exited: ${await kubelet.logTail()}`);
          const node = await core.readNode({ name: NODE_NAME });
          const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
          return ready && node.status?.allocatable?.[GPU_RESOURCE] === String(GPU_COUNT) ? true : undefined;
        },
        { timeoutMs },
      );
      log(`node ${NODE_NAME} Ready with ${GPU_COUNT} ${GPU_RESOURCE}`);

      const applied = await runKubectl(bins.kubectl, cp.kubeconfigPath, ['apply', '-f', '-'], buildCorednsManifests());
      if (applied.code !== 0) throw new RealNodeError(`applying CoreDNS failed: ${applied.stderr}`);
      await waitFor(
        'CoreDNS ready',
        async () => {
          const pods = await core.listNamespacedPod({ namespace: 'kube-system', labelSelector: 'k8s-app=kube-dns' });
          return pods.items.some((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true) ? true : undefined;
        },
        {
          timeoutMs,
          describe: async () => (await runKubectl(bins.kubectl, cp?.kubeconfigPath ?? '', ['-n', 'kube-system', 'describe', 'pods'])).stdout.slice(-3000),
        },
      );
      provisioner = new LocalPathProvisioner(kc, join(dir, 'volumes'), log);
      await provisioner.start();
      const startMs = Date.now() - started;
      log(`real node ready in ${formatDuration(startMs)} (dir ${dir})`);
      return new RealCluster({ controlPlane: cp, dir, startMs, procs, sysctls, tablesBefore, createdPaths, provisioner, log });
    } catch (err) {
      await undo().catch((e: unknown) => log(`clean-up after failed start: ${String(e)}`));
      throw err;
    }
  }

  /** Crashed node components (for diagnostics). */
  get crashed(): string[] {
    return [...this.#procs.filter((p) => p.exited).map((p) => p.name), ...this.controlPlane.crashed];
  }

  /** Stops everything and undoes every change to the machine. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#provisioner.close();
      await teardown({
        dir: this.dir,
        procs: this.#procs,
        sysctls: this.#sysctls,
        tablesBefore: this.#tablesBefore,
        createdPaths: this.#createdPaths,
        log: this.#log,
      });
      await this.controlPlane.close();
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.#closing;
  }
}

/** A private mount namespace bound to <dir>/mntns, with tmpfs over the paths the node writes outside its dirs. */
async function createMountNamespace(dir: string, created: string[]): Promise<void> {
  const file = mountNsFile(dir);
  await writeFile(file, '');
  await run('unshare', [`--mount=${file}`, '--propagation', 'private', 'true']);
  const inNs = (args: readonly string[]): Promise<string> => run('nsenter', [`--mount=${file}`, '--', ...args]);
  // Shared inside the namespace: kubelet volume mounts must propagate to containerd's view (same
  // namespace) and into containers with mountPropagation.
  await inNs(['mount', '--make-rshared', '/']);
  for (const [path, name] of [
    ['/run', 'gmt-node-run'],
    ['/var/log', 'gmt-node-varlog'],
    ['/var/lib/kubelet', 'gmt-node-kubelet'],
  ] as const) {
    // A mount point missing on the host is created there (the namespace shares the host's
    // filesystems); remember it so that teardown removes it again.
    if (
      !(await stat(path).then(
        () => true,
        () => false,
      ))
    ) {
      await mkdir(path, { recursive: true });
      created.push(path);
    }
    await inNs(['mount', '-t', 'tmpfs', '-o', 'mode=0755', name, path]);
  }
}

/**
 * Installs the admission policy that refuses hostNetwork pods (addons.ts) and waits until the API
 * server enforces it (policies are loaded asynchronously): a server-side dry run of such a pod must be
 * refused by that policy before the kubelet starts.
 */
async function denyHostNetworkPods(kubectl: string, kubeconfigPath: string): Promise<void> {
  const applied = await runKubectl(kubectl, kubeconfigPath, ['apply', '-f', '-'], buildHostNetworkPolicy());
  if (applied.code !== 0) throw new RealNodeError(`applying the hostNetwork admission policy failed: ${applied.stderr}`);
  const probe = JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'gmt-host-network-probe', namespace: 'default' },
    spec: { hostNetwork: true, containers: [{ name: 'c', image: 'none' }] },
  });
  let last = '';
  await waitFor(
    `admission policy ${HOST_NETWORK_POLICY} enforced`,
    async () => {
      const r = await runKubectl(kubectl, kubeconfigPath, ['create', '--dry-run=server', '-f', '-'], probe);
      last = r.code === 0 ? r.stdout : r.stderr;
      if (r.code === 0) return undefined;
      if (r.stderr.includes(HOST_NETWORK_POLICY)) return true;
      // Another refusal (e.g. the default ServiceAccount not yet created): try again.
      return undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, describe: () => Promise.resolve(last) },
  );
}
