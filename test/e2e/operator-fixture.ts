// Shared setup of the operator e2e files: the local control plane + node agent (useTestCluster),
// a nats-server, the trainer image mapped to a local wrapper, the CRD, and small helpers to create,
// read and wait for GmtFineTunes. Operators started through the fixture are closed after the file.
//
// The node agent mounts no volumes, so the wrapper turns the pod's env into what a volume would
// give: GMT_CONFIG_JSON (from the ConfigMap) → a file for GMT_CONFIG, and a per-job host directory
// as GMT_CHECKPOINT_DIR (shared by the ranks and attempts, like a ReadWriteMany claim). It records
// each rank's pid as `pid-a<attempt>-r<rank>` in that directory.
import type { ExecutionContext, TestFn } from 'ava';
import { mkdtempSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type CoreV1Event } from '@kubernetes/client-node';
import { CRD_NAME, CRD_PATH, GROUP, PLURAL, VERSION, parseGmtFineTune, type GmtFineTune, type GmtFineTuneInput } from '../../operator/src/api/index.js';
import { startOperator, type Operator, type OperatorOptions } from '../../operator/src/controller/index.js';
import { startNatsServer, type NatsServerHandle } from '../../trainer/src/collective/nats/server.js';
import { ensureBinary } from '../harness/binaries.js';
import { useTestCluster, type TestCluster } from '../harness/cluster.js';
import { runKubectl, waitFor } from '../harness/k8s-helpers.js';
import { repoPath } from '../helpers/repo.js';

/** The trainer image the tiny jobs use (mapped to the wrapper). */
export const IMAGE = 'gmt-trainer:dev';

/** Everything a test file needs; see useOperatorFixture. */
export interface OperatorFixture {
  /** Host folder holding one sub-folder per job id (checkpoints, pids, configs). */
  readonly root: string;
  readonly cluster: () => TestCluster;
  readonly natsUrl: () => string;
  /** Operator log lines (JSON), of every operator the fixture started. */
  readonly logs: string[];
  /** Applies the CRD once and waits until it is Established. */
  installCrd(): Promise<void>;
  /** Starts an in-process operator on the test cluster (closed after the file unless closed before). */
  startOperator(over?: Partial<OperatorOptions>): Promise<Operator>;
  api(): CustomObjectsApi;
  tiny(name: string, over?: Partial<GmtFineTuneInput['spec']>): GmtFineTuneInput;
  create(ns: string, body: GmtFineTuneInput): Promise<GmtFineTune>;
  get(ns: string, name: string): Promise<GmtFineTune>;
  /** Merge-patches spec.runPolicy.suspend. */
  setSuspend(ns: string, name: string, suspend: boolean): Promise<void>;
  waitForJob(t: ExecutionContext, ns: string, name: string, what: string, ok: (j: GmtFineTune) => boolean, timeoutMs?: number): Promise<GmtFineTune>;
  events(ns: string, name: string): Promise<CoreV1Event[]>;
  /** Contents of every container log of the pods of namespace `ns` (node agent log files). */
  podLogs(ns: string): Promise<string[]>;
}

/** Registers before/after hooks on `test` and returns the fixture. */
export function useOperatorFixture(test: TestFn, prefix: string): OperatorFixture {
  const root = mkdtempSync(join(tmpdir(), `gmt-e2e-${prefix}-`));
  const wrapper = [
    'set -e',
    `d="${root}/$GMT_JOB_ID"`,
    'mkdir -p "$d/ckpt"',
    'echo $$ > "$d/pid-a$GMT_ATTEMPT-r$GMT_RANK"',
    'printf "%s" "$GMT_CONFIG_JSON" > "$d/config-a$GMT_ATTEMPT-r$GMT_RANK.json"',
    'export GMT_CONFIG="$d/config-a$GMT_ATTEMPT-r$GMT_RANK.json" GMT_CHECKPOINT_DIR="$d/ckpt" GMT_METRICS_PORT=0',
    `exec "${process.execPath}" "${repoPath('dist/trainer/src/main.js')}"`,
  ].join('\n');
  // Read by the node agent when it starts (in useTestCluster's before hook, registered next).
  process.env['GMT_NODE_AGENT_IMAGES'] = JSON.stringify({ [IMAGE.split(':')[0] ?? IMAGE]: { entrypoint: ['sh', '-c', wrapper, 'gmt-trainer'] } });

  const cluster = useTestCluster(test);
  let nats: NatsServerHandle | undefined;
  const operators: Operator[] = [];
  const logs: string[] = [];
  let crd: Promise<void> | undefined;

  test.before(async () => {
    nats = await startNatsServer({ binary: await ensureBinary('nats-server') });
  });
  test.after.always(async () => {
    await Promise.all(operators.map((o) => o.close()));
    await nats?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const natsUrl = (): string => {
    if (nats === undefined) throw new Error('nats-server not started');
    return nats.url;
  };
  const api = (): CustomObjectsApi => cluster().kc.makeApiClient(CustomObjectsApi);
  const get = async (ns: string, name: string): Promise<GmtFineTune> => {
    const r = parseGmtFineTune(await api().getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name }));
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };

  return {
    root,
    cluster,
    natsUrl,
    logs,
    installCrd() {
      crd ??= (async () => {
        const { kc, kubectl, kubeconfigPath } = cluster();
        const applied = await runKubectl(kubectl, kubeconfigPath, ['apply', '--server-side', '--field-manager=gmt-test', '-f', repoPath(CRD_PATH)]);
        if (applied.code !== 0) throw new Error(`kubectl apply ${CRD_PATH} failed: ${applied.stderr}`);
        const ext = kc.makeApiClient(ApiextensionsV1Api);
        await waitFor(`CRD ${CRD_NAME} Established`, async () => {
          const c = await ext.readCustomResourceDefinition({ name: CRD_NAME });
          return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') === true ? true : undefined;
        });
      })();
      return crd;
    },
    async startOperator(over = {}) {
      await this.installCrd();
      const op = await startOperator({
        kc: cluster().kc,
        namespaces: [],
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
          image: IMAGE,
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
    async waitForJob(t, ns, name, what, ok, timeoutMs = 240_000) {
      return waitFor(
        `${ns}/${name}: ${what}`,
        async () => {
          const j = await get(ns, name);
          return ok(j) ? j : undefined;
        },
        {
          timeoutMs,
          intervalMs: 500,
          describe: async () => `${JSON.stringify((await get(ns, name)).status)}\noperator log tail:\n${logs.slice(-15).join('\n')}`,
        },
      ).catch((err: unknown) => {
        t.log(logs.slice(-30).join('\n'));
        throw err;
      });
    },
    async events(ns, name) {
      const list = await cluster()
        .kc.makeApiClient(CoreV1Api)
        .listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` });
      return list.items;
    },
    async podLogs(ns) {
      const dir = cluster().controlPlane?.dir;
      if (dir === undefined) return [];
      const base = join(dir, 'pods');
      const out: string[] = [];
      for (const pod of (await readdir(base)).filter((d) => d.startsWith(`${ns}_`))) {
        for (const container of await readdir(join(base, pod))) {
          for (const f of await readdir(join(base, pod, container))) out.push(await readFile(join(base, pod, container, f), 'utf8'));
        }
      }
      return out;
    },
  };
}
