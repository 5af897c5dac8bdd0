// Shared setup of the operator e2e files, on the e2e cluster (GMT_E2E_KUBECONFIG: a real node, see
// test/harness/cluster.ts): a nats-server on the host at an address the pods reach (the node
// address), the CRD, namespaces of the file's own (deleted after it), and small helpers to create,
// read and wait for GmtFineTunes whose workers run the real trainer image.
//
// Files share the cluster (ava runs two at once), so every operator a file starts watches only that
// file's namespaces. Operators started through the fixture are closed after the file.
import type { ExecutionContext, TestFn } from 'ava';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type V1Container,
  type V1Pod,
  type V1PodSpec,
} from '@kubernetes/client-node';
import { CRD_NAME, CRD_PATH, GROUP, PLURAL, VERSION, parseGmtFineTune, type GmtFineTune, type GmtFineTuneInput } from '../../operator/src/api/index.js';
import { startOperator, type Operator, type OperatorOptions } from '../../operator/src/controller/index.js';
import { startNatsServer, type NatsServerHandle } from '../../trainer/src/collective/nats/server.js';
import { ensureBinary } from '../harness/binaries.js';
import { e2eCluster, type E2eCluster } from '../harness/cluster.js';
import { createTestNamespace, runKubectl, waitFor, waitForPodPhase } from '../harness/k8s-helpers.js';
import { repoPath } from '../helpers/repo.js';

/** Everything a test file needs; see useOperatorFixture. */
export interface OperatorFixture {
  /** A host folder for the file's own files (removed after the file). */
  readonly root: string;
  readonly cluster: () => E2eCluster;
  /** URL of the fixture's nats-server, on the host at an address pods reach. */
  readonly natsUrl: () => string;
  /** Operator log lines (JSON), of every operator the fixture started. */
  readonly logs: string[];
  /** Applies the CRD (server-side, idempotent across files) and waits until it is Established. */
  installCrd(): Promise<void>;
  /** Creates a namespace `<prefix>-<random>`, deleted after the file. */
  namespace(prefix: string): Promise<string>;
  /**
   * Starts an in-process operator on the host against the e2e cluster (closed after the file unless
   * closed before). `over.namespaces` must name the namespaces to watch (the file's own): the
   * cluster is shared with the other files; without them it throws.
   */
  startOperator(over: Partial<OperatorOptions>): Promise<Operator>;
  api(): CustomObjectsApi;
  /** A tiny GmtFineTune running the trainer image (checkpoints every 4 steps, on an emptyDir unless `over` names a claim). */
  tiny(name: string, over?: Partial<GmtFineTuneInput['spec']>): GmtFineTuneInput;
  create(ns: string, body: GmtFineTuneInput): Promise<GmtFineTune>;
  get(ns: string, name: string): Promise<GmtFineTune>;
  /** Merge-patches spec.runPolicy.suspend. */
  setSuspend(ns: string, name: string, suspend: boolean): Promise<void>;
  waitForJob(t: ExecutionContext, ns: string, name: string, what: string, ok: (j: GmtFineTune) => boolean, timeoutMs?: number): Promise<GmtFineTune>;
  events(ns: string, name: string): Promise<CoreV1Event[]>;
  /** Every container log of the pods that exist in namespace `ns` now, from the API (as `kubectl logs`). */
  podLogs(ns: string): Promise<string[]>;
  /** Creates a PersistentVolumeClaim (the cluster's default StorageClass) and returns its name. */
  claim(ns: string, name: string): Promise<string>;
  /**
   * Runs the shell image in a pod mounting `claim` at /data with `script` (sh -c), waits for it to
   * finish and returns its log; throws when the pod fails. The pod is deleted afterwards.
   */
  withClaim(ns: string, claim: string, script: string): Promise<string>;
  /**
   * SIGKILLs every process of a pod's first container, as the kernel's OOM killer or a crash would
   * end it (no signal handler runs). Through the API only, so it works on any cluster (kind too): a
   * privileged pod with the host's PID namespace, on the target's node, kills the processes whose
   * cgroup names the container ID (from inside the container's own PID namespace its init would
   * ignore SIGKILL).
   */
  killContainer(ns: string, pod: string): Promise<void>;
}

/** Registers before/after hooks on `test` and returns the fixture. */
export function useOperatorFixture(test: TestFn, prefix: string): OperatorFixture {
  const root = mkdtempSync(join(tmpdir(), `gmt-e2e-${prefix}-`));
  let e2e: E2eCluster | undefined;
  const cluster = (): E2eCluster => {
    if (e2e === undefined) throw new Error('e2e cluster not read (did test.before fail?)');
    return e2e;
  };
  let nats: NatsServerHandle | undefined;
  const operators: Operator[] = [];
  const namespaces: string[] = [];
  const logs: string[] = [];
  let crd: Promise<void> | undefined;

  // One hook (ava runs a file's before hooks concurrently): the cluster first, then the server.
  test.before(async () => {
    e2e = await e2eCluster();
    nats = await startNatsServer({ binary: await ensureBinary('nats-server'), host: cluster().hostAddress });
  });
  test.after.always(async () => {
    await Promise.all(operators.map((o) => o.close()));
    await nats?.stop();
    await rm(root, { recursive: true, force: true });
    if (e2e !== undefined && namespaces.length > 0) {
      const core = cluster().kc.makeApiClient(CoreV1Api);
      await Promise.all(namespaces.map((name) => core.deleteNamespace({ name }).catch(() => undefined)));
    }
  });

  const natsUrl = (): string => {
    if (nats === undefined) throw new Error('nats-server not started');
    return nats.url;
  };
  const api = (): CustomObjectsApi => cluster().kc.makeApiClient(CustomObjectsApi);
  const core = (): CoreV1Api => cluster().kc.makeApiClient(CoreV1Api);
  const get = async (ns: string, name: string): Promise<GmtFineTune> => {
    const r = parseGmtFineTune(await api().getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name }));
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };

  /**
   * Runs `script` (sh -c) in a one-off pod of the shell image in `ns`, waits for it to end, deletes it
   * and returns its log; throws with the log when it fails. `over` adds to the container and pod spec.
   */
  const shellPod = async (
    ns: string,
    prefix: string,
    script: string,
    over: { container?: Partial<V1Container>; spec?: Partial<V1PodSpec> },
  ): Promise<string> => {
    const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
    const body: V1Pod = {
      metadata: { name },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        ...over.spec,
        containers: [{ name: 'main', image: cluster().images.shell, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', script], ...over.container }],
      },
    };
    await core().createNamespacedPod({ namespace: ns, body });
    const done = await waitForPodPhase(cluster().kc, ns, name, ['Succeeded', 'Failed'], 120_000);
    const log = await core().readNamespacedPodLog({ namespace: ns, name });
    await core().deleteNamespacedPod({ namespace: ns, name, gracePeriodSeconds: 0 });
    if (done.status?.phase !== 'Succeeded') throw new Error(`pod ${ns}/${name} (${script}) failed: ${log}`);
    return log;
  };

  const fixture: OperatorFixture = {
    root,
    cluster,
    natsUrl,
    logs,
    installCrd() {
      crd ??= (async () => {
        const { kc, kubectl, kubeconfigPath } = cluster();
        const applied = await runKubectl(kubectl, kubeconfigPath, [
          'apply',
          '--server-side',
          '--force-conflicts',
          '--field-manager=gmt-test',
          '-f',
          repoPath(CRD_PATH),
        ]);
        if (applied.code !== 0) throw new Error(`kubectl apply ${CRD_PATH} failed: ${applied.stderr}`);
        const ext = kc.makeApiClient(ApiextensionsV1Api);
        await waitFor(`CRD ${CRD_NAME} Established`, async () => {
          const c = await ext.readCustomResourceDefinition({ name: CRD_NAME });
          return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') === true ? true : undefined;
        });
      })();
      return crd;
    },
    async namespace(p) {
      const ns = await createTestNamespace(cluster().kc, p);
      namespaces.push(ns);
      return ns;
    },
    async startOperator(over) {
      if (over.namespaces === undefined || over.namespaces.length === 0)
        throw new Error('startOperator: name the namespaces to watch (the e2e cluster is shared by all test files)');
      await fixture.installCrd();
      const op = await startOperator({
        kc: cluster().kc,
        namespaces: over.namespaces,
        natsUrl: natsUrl(),
        trainerMetricsPort: 0,
        progressIntervalMs: 1000,
        metricsPort: 0,
        metricsHost: '127.0.0.1',
        log: (level, msg, fields) => void logs.push(JSON.stringify({ level, msg, ...fields })),
        ...over,
      });
      operators.push(op);
      return op;
    },
    api,
    tiny(name, over = {}) {
      return {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'GmtFineTune',
        metadata: { name },
        spec: {
          workers: 2,
          image: cluster().images.trainer,
          imagePullPolicy: 'IfNotPresent',
          method: { name: 'gmt', maskRatio: 0.2 },
          dataset: { train: 'synthetic:arithmetic', syntheticTrainSize: 320, syntheticEvalSize: 16 },
          training: { steps: 12, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 0, maxNewTokens: 4 },
          checkpoint: { interval: 4 },
          runPolicy: { backoffLimit: 2, progressDeadlineSeconds: 300 },
          ...over,
        },
      };
    },
    async create(ns, body) {
      const r = parseGmtFineTune(await api().createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body }));
      if (!r.ok) throw new Error(r.error);
      return r.value;
    },
    get,
    async setSuspend(ns, name, suspend) {
      await api().patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name, body: { spec: { runPolicy: { suspend } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    },
    async waitForJob(t, ns, name, what, ok, timeoutMs = 300_000) {
      return waitFor(
        `${ns}/${name}: ${what}`,
        async () => {
          const j = await get(ns, name);
          return ok(j) ? j : undefined;
        },
        {
          timeoutMs,
          intervalMs: 500,
          describe: async () => {
            const pods = await core().listNamespacedPod({ namespace: ns });
            const podLines = pods.items.map(
              (p) => `${p.metadata?.name ?? '?'} ${p.status?.phase ?? '?'} ${JSON.stringify(p.status?.containerStatuses?.[0]?.state ?? {})}`,
            );
            return `${JSON.stringify((await get(ns, name)).status)}\npods:\n${podLines.join('\n')}\noperator log tail:\n${logs.slice(-15).join('\n')}`;
          },
        },
      ).catch((err: unknown) => {
        t.log(logs.slice(-30).join('\n'));
        throw err;
      });
    },
    async events(ns, name) {
      const list = await core().listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` });
      return list.items;
    },
    async podLogs(ns) {
      const out: string[] = [];
      for (const p of (await core().listNamespacedPod({ namespace: ns })).items) {
        for (const c of [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])]) {
          const text = await core()
            .readNamespacedPodLog({ namespace: ns, name: p.metadata?.name ?? '', container: c.name })
            .catch(() => undefined);
          if (text !== undefined && text !== '') out.push(text);
        }
      }
      return out;
    },
    async claim(ns, name) {
      await core().createNamespacedPersistentVolumeClaim({
        namespace: ns,
        body: { metadata: { name }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
      });
      return name;
    },
    async withClaim(ns, claim, script) {
      // The trainer's uid (children.ts WORKER_UID) owns what it wrote; a root reader sees all of it.
      return shellPod(ns, 'claim', script, {
        container: { volumeMounts: [{ name: 'data', mountPath: '/data' }] },
        spec: { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }] },
      });
    },
    async killContainer(ns, pod) {
      const p = await core().readNamespacedPod({ namespace: ns, name: pod });
      const id = /^[a-z-]+:\/\/([0-9a-f]{64})$/.exec(p.status?.containerStatuses?.[0]?.containerID ?? '')?.[1];
      const node = p.spec?.nodeName;
      if (id === undefined || node === undefined) throw new Error(`pod ${ns}/${pod} has no running container: ${JSON.stringify(p.status?.containerStatuses)}`);
      // Every process whose cgroup path names the container ID (cgroup v1 and v2, cgroupfs and
      // systemd drivers: …/<id> or …/cri-containerd-<id>.scope) is that container's.
      const script = [
        'n=0',
        `for f in /proc/[0-9]*/cgroup; do if grep -q '${id}' "$f" 2>/dev/null; then pid=\${f#/proc/}; pid=\${pid%/cgroup}; kill -9 "$pid" && n=$((n+1)); fi; done`,
        'echo "killed=$n"',
        '[ "$n" -gt 0 ]',
      ].join('\n');
      await shellPod(ns, 'kill', script, { container: { securityContext: { privileged: true } }, spec: { nodeName: node, hostPID: true } });
    },
  };
  return fixture;
}
