// A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler as local processes (no kubelet here: the real node in
// ./real-node/ adds one on top of this control plane). The recipe follows controller-runtime's envtest and
// kwok's binary runtime; see docs/testing.md for the flags and why each is set.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, formatDuration } from './binaries.js';
import { buildKubeconfig, writeKubeconfig } from './kubeconfig.js';
import { createControlPlanePki, type CertKeyPair } from './pki.js';
import { ComponentProcess, freePort, waitHealthy } from './processes.js';

/** Service CIDR; its first address is the `kubernetes` Service's ClusterIP and is in the serving cert. */
export const SERVICE_CIDR = '10.96.0.0/24';
export const SERVICE_IP = '10.96.0.1';

/** Options for ControlPlane.start. */
export interface ControlPlaneOptions {
  /** Folder for data, certificates, kubeconfigs and logs; default: a new temporary folder (removed on stop). */
  readonly dir?: string;
  /** Keep `dir` after stop (default: keep only if it was given). */
  readonly keepDir?: boolean;
  /** Start kube-controller-manager (garbage collection, namespaces, service accounts). Default true. */
  readonly controllerManager?: boolean;
  /** Start kube-scheduler. Default true. */
  readonly scheduler?: boolean;
  /** Per-component start timeout. Default 60 s. */
  readonly startTimeoutMs?: number;
  /** Progress lines; default: none. */
  readonly log?: (line: string) => void;
  /**
   * Address kube-apiserver binds to and advertises. Default 127.0.0.1 (then the `kubernetes`
   * Service has no endpoints: a loopback endpoint is invalid). The real test node passes its
   * host-local node address, so that pods reach the API server through the `kubernetes` Service.
   */
  readonly address?: string;
}

/** A started control plane. `close()` stops it; `closed` resolves once it is stopped. */
export class ControlPlane {
  /** Base URL of kube-apiserver, e.g. https://127.0.0.1:41234. */
  readonly server: string;
  /** Path of an admin kubeconfig (system:masters). */
  readonly kubeconfigPath: string;
  /** The admin kubeconfig's content (JSON). */
  readonly kubeconfig: string;
  /** The folder holding data, certificates and component logs. */
  readonly dir: string;
  /** Issues a kubeconfig for another user, e.g. a test identity with fewer rights. */
  readonly kubeconfigFor: (user: string, groups: readonly string[]) => Promise<string>;
  /** Milliseconds the start took (binaries already cached). */
  readonly startMs: number;
  readonly closed: Promise<void>;
  #procs: ComponentProcess[];
  #keepDir: boolean;
  #resolveClosed!: () => void;
  #closing: Promise<void> | undefined;

  private constructor(init: {
    server: string;
    kubeconfigPath: string;
    kubeconfig: string;
    dir: string;
    kubeconfigFor: (user: string, groups: readonly string[]) => Promise<string>;
    startMs: number;
    procs: ComponentProcess[];
    keepDir: boolean;
  }) {
    this.server = init.server;
    this.kubeconfigPath = init.kubeconfigPath;
    this.kubeconfig = init.kubeconfig;
    this.dir = init.dir;
    this.kubeconfigFor = init.kubeconfigFor;
    this.startMs = init.startMs;
    this.#procs = init.procs;
    this.#keepDir = init.keepDir;
    this.closed = new Promise((r) => (this.#resolveClosed = r));
  }

  /** Builds missing binaries, then starts every component and waits until each is healthy. */
  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const log = opts.log ?? (() => {});
    const timeoutMs = opts.startTimeoutMs ?? 60_000;
    const bins = await ensureBinaries(['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'], { log });
    const started = Date.now();
    const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'gmt-k8s-')));
    const keepDir = opts.keepDir ?? opts.dir !== undefined;
    const pkiDir = join(dir, 'pki');
    const logDir = join(dir, 'logs');
    await mkdir(pkiDir, { recursive: true });
    await mkdir(logDir, { recursive: true });
    const procs: ComponentProcess[] = [];
    const stopAll = async (): Promise<void> => {
      for (const p of [...procs].reverse()) await p.stop();
    };
    try {
      const address = opts.address ?? '127.0.0.1';
      const pki = await createControlPlanePki(SERVICE_IP, [address]);
      const file = async (name: string, content: string): Promise<string> => {
        const path = join(pkiDir, name);
        await writeFile(path, content, { mode: 0o600 });
        return path;
      };
      const caCrt = await file('ca.crt', pki.ca.certPem);
      const apiCrt = await file('apiserver.crt', pki.apiserver.certPem);
      const apiKey = await file('apiserver.key', pki.apiserver.keyPem);
      const saKey = await file('sa.key', pki.serviceAccount.keyPem);
      const saPub = await file('sa.pub', pki.serviceAccount.publicKeyPem);
      const kubeletClient = await pki.issueClientCert('kube-apiserver-kubelet-client', ['system:masters']);
      const kubeletClientCrt = await file('apiserver-kubelet-client.crt', kubeletClient.certPem);
      const kubeletClientKey = await file('apiserver-kubelet-client.key', kubeletClient.keyPem);

      // etcd: one member on loopback; fsync off because the data is thrown away (as envtest does).
      const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
      const etcdUrl = `http://127.0.0.1:${etcdClient}`;
      const etcd = await ComponentProcess.start(
        'etcd',
        bins.etcd,
        [
          '--name=gmt',
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-cluster=gmt=http://127.0.0.1:${etcdPeer}`,
          '--unsafe-no-fsync=true',
          '--log-level=warn',
        ],
        join(logDir, 'etcd.log'),
      );
      procs.push(etcd);
      await waitHealthy(etcd, `${etcdUrl}/health`, { timeoutMs, accept: (b) => b.includes('"health":"true"') });
      log(`etcd ready at ${etcdUrl}`);

      const server = `https://${address}:${apiPort}`;
      const apiserver = await ComponentProcess.start(
        'kube-apiserver',
        bins['kube-apiserver'],
        [
          `--etcd-servers=${etcdUrl}`,
          `--bind-address=${address}`,
          // Without it the apiserver looks for a default route and picks (or fails on) a real NIC.
          `--advertise-address=${address}`,
          `--secure-port=${apiPort}`,
          `--cert-dir=${pkiDir}`,
          `--tls-cert-file=${apiCrt}`,
          `--tls-private-key-file=${apiKey}`,
          `--client-ca-file=${caCrt}`,
          `--service-cluster-ip-range=${SERVICE_CIDR}`,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saKey}`,
          '--authorization-mode=RBAC',
          '--allow-privileged=true',
          // The `kubernetes` Service would get 127.0.0.1 as endpoint, which EndpointSlices reject.
          ...(address === '127.0.0.1' ? ['--endpoint-reconciler-type=none'] : []),
          // The real node's kubelet serves logs/exec; the apiserver calls it with this identity.
          `--kubelet-client-certificate=${kubeletClientCrt}`,
          `--kubelet-client-key=${kubeletClientKey}`,
          '--kubelet-preferred-address-types=InternalIP',
        ],
        join(logDir, 'kube-apiserver.log'),
      );
      procs.push(apiserver);

      const admin = await pki.issueClientCert('gmt-admin', ['system:masters']);
      const kubeconfigFor = async (user: string, groups: readonly string[]): Promise<string> => {
        const client: CertKeyPair = await pki.issueClientCert(user, groups);
        return buildKubeconfig({ server, caPem: pki.ca.certPem, user, client });
      };
      const kubeconfig = buildKubeconfig({ server, caPem: pki.ca.certPem, user: 'gmt-admin', client: admin });
      const kubeconfigPath = join(dir, 'kubeconfig');
      await writeKubeconfig(kubeconfigPath, kubeconfig);
      await waitHealthy(apiserver, `${server}/readyz`, {
        timeoutMs,
        tls: { ca: pki.ca.certPem, cert: admin.certPem, key: admin.keyPem },
      });
      log(`kube-apiserver ready at ${server}`);

      const waits: Promise<void>[] = [];
      if (opts.controllerManager ?? true) {
        // The controller manager acts with one identity for all controllers (like kwok), so it
        // needs system:masters; kubeadm's per-controller service accounts are not worth the wait here.
        const kcmConfig = join(dir, 'kube-controller-manager.kubeconfig');
        await writeKubeconfig(kcmConfig, await kubeconfigFor('system:kube-controller-manager', ['system:masters']));
        const port = await freePort();
        const kcm = await ComponentProcess.start(
          'kube-controller-manager',
          bins['kube-controller-manager'],
          [
            `--kubeconfig=${kcmConfig}`,
            '--bind-address=127.0.0.1',
            `--secure-port=${port}`,
            '--leader-elect=false',
            `--service-account-private-key-file=${saKey}`,
            `--root-ca-file=${caCrt}`,
            '--use-service-account-credentials=false',
            `--service-cluster-ip-range=${SERVICE_CIDR}`,
          ],
          join(logDir, 'kube-controller-manager.log'),
        );
        procs.push(kcm);
        waits.push(waitHealthy(kcm, `https://127.0.0.1:${port}/healthz`, { timeoutMs }).then(() => log('kube-controller-manager ready')));
      }
      if (opts.scheduler ?? true) {
        const schedConfig = join(dir, 'kube-scheduler.kubeconfig');
        await writeKubeconfig(schedConfig, await kubeconfigFor('system:kube-scheduler', []));
        const port = await freePort();
        const sched = await ComponentProcess.start(
          'kube-scheduler',
          bins['kube-scheduler'],
          [`--kubeconfig=${schedConfig}`, '--bind-address=127.0.0.1', `--secure-port=${port}`, '--leader-elect=false'],
          join(logDir, 'kube-scheduler.log'),
        );
        procs.push(sched);
        waits.push(waitHealthy(sched, `https://127.0.0.1:${port}/healthz`, { timeoutMs }).then(() => log('kube-scheduler ready')));
      }
      await Promise.all(waits);
      const startMs = Date.now() - started;
      log(`control plane ready in ${formatDuration(startMs)} (dir ${dir})`);
      return new ControlPlane({ server, kubeconfigPath, kubeconfig, dir, kubeconfigFor, startMs, procs, keepDir });
    } catch (err) {
      await stopAll();
      if (!keepDir) await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The cluster CA certificate (PEM file): it signs the serving and client certificates. */
  get caPath(): string {
    return join(this.dir, 'pki', 'ca.crt');
  }

  /** Components that have exited although the control plane was not closed (for diagnostics). */
  get crashed(): string[] {
    return this.#procs.filter((p) => p.exited).map((p) => p.name);
  }

  /** Stops every component, newest first, and removes the folder unless kept. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const p of [...this.#procs].reverse()) await p.stop();
      if (!this.#keepDir) await rm(this.dir, { recursive: true, force: true });
      this.#resolveClosed();
    })();
    return this.#closing;
  }
}
