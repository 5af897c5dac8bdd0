/**
 * Operator scale bench: the local control plane (etcd + kube-apiserver + controller-manager, no
 * node: no pod runs), a nats-server (progress subscription) and the operator *in this process* (so the memory figures include the
 * bench's own client and the harness bookkeeping, not just the operator).
 *
 *  1. create N GmtFineTunes at once, all with spec.runPolicy.suspend=true (no trainer runs);
 *  2. time until every one has status.phase Suspended (a suspended job gets no children: the
 *     reconciler creates the Service/ConfigMap/pods only when the gang is created, so the bench
 *     also checks that none exist);
 *  3. reconciles and status writes (controller_runtime_reconcile_total from the operator's
 *     registry), reconciles per second, rss/heap before and after;
 *  4. restart: a fresh operator over the N existing jobs, time until it has reconciled each once
 *     (no status write expected: nothing changed).
 *
 *   npm run bench:operator [-- --jobs 200]
 */
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { CRD_PATH, GROUP, PLURAL, VERSION, type GmtFineTuneInput } from '../operator/src/api/index.js';
import { CHILD_SELECTOR, startOperator, type Operator } from '../operator/src/controller/index.js';
import { METRIC } from '../operator/src/metrics/names.js';
import { startNatsServer } from '../trainer/src/collective/nats/server.js';
import { ensureBinary } from '../test/harness/binaries.js';
import { startTestCluster } from '../test/harness/cluster.js';
import { createTestNamespace, runKubectl, waitFor } from '../test/harness/k8s-helpers.js';
import { repoPath } from '../test/helpers/repo.js';

const arg = process.argv.indexOf('--jobs');
const N = arg > 0 ? Number(process.argv[arg + 1]) : 200;
const MiB = 1024 * 1024;
const mem = (): { rss: number; heap: number } => {
  const m = process.memoryUsage();
  return { rss: m.rss / MiB, heap: m.heapUsed / MiB };
};

async function reconcileTotal(op: Operator): Promise<number> {
  const m = await op.metrics.registry.getSingleMetric(METRIC.reconcileTotal)?.get();
  return (m?.values ?? []).reduce((a, v) => a + v.value, 0);
}

function job(name: string): GmtFineTuneInput {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'GmtFineTune',
    metadata: { name },
    spec: {
      workers: 2,
      image: 'gmt-trainer:dev',
      method: { name: 'gmt', maskRatio: 0.2 },
      dataset: { train: 'synthetic:arithmetic', syntheticTrainSize: 320, syntheticEvalSize: 16 },
      training: { steps: 12, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 0, maxNewTokens: 4 },
      runPolicy: { suspend: true, backoffLimit: 2 },
    },
  };
}

async function main(): Promise<void> {
  const log = (l: string): void => void process.stderr.write(`[bench] ${l}\n`);
  const cluster = await startTestCluster({ log: () => {} });
  const nats = await startNatsServer({ binary: await ensureBinary('nats-server') });
  let op: Operator | undefined;
  try {
    const { kc, kubectl, kubeconfigPath } = cluster;
    const applied = await runKubectl(kubectl, kubeconfigPath, ['apply', '--server-side', '--field-manager=gmt-bench', '-f', repoPath(CRD_PATH)]);
    if (applied.code !== 0) throw new Error(`kubectl apply ${CRD_PATH}: ${applied.stderr}`);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    await waitFor('CRD served', async () =>
      custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }).then(
        () => true,
        () => undefined,
      ),
    );
    const ns = await createTestNamespace(kc, 'bench-op');
    log(`control plane up; ${N} suspended GmtFineTunes into ${ns}`);

    const before = mem();
    op = await startOperator({ kc, namespaces: [], natsUrl: nats.url, metricsPort: 0, metricsHost: '127.0.0.1' });
    await op.waitForSync();
    const afterStart = mem();

    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: N }, (_, i) =>
        custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: job(`job-${String(i).padStart(3, '0')}`) }),
      ),
    );
    const created = performance.now();
    let suspended = 0;
    await waitFor(
      `${N} Suspended`,
      async () => {
        const list = (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL })) as {
          items: { status?: { phase?: string } }[];
        };
        suspended = list.items.filter((j) => j.status?.phase === 'Suspended').length;
        return suspended === N ? true : undefined;
      },
      { timeoutMs: 150_000, intervalMs: 100 },
    );
    const allSuspended = performance.now();
    const reconciles = await reconcileTotal(op);
    const writes = op.reconciler.stats.statusWrites;
    const afterAll = mem();
    const svcs = (await core.listNamespacedService({ namespace: ns, labelSelector: CHILD_SELECTOR })).items.length;
    const cms = (await core.listNamespacedConfigMap({ namespace: ns, labelSelector: CHILD_SELECTOR })).items.length;
    const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: CHILD_SELECTOR })).items.length;
    // Idle: nothing should be reconciled once every status is written.
    await new Promise((r) => setTimeout(r, 5000));
    const idleReconciles = (await reconcileTotal(op)) - reconciles;
    await op.close();
    op = undefined;

    // Restart over the existing jobs.
    const r0 = performance.now();
    op = await startOperator({ kc, namespaces: [], natsUrl: nats.url, metricsPort: 0, metricsHost: '127.0.0.1' });
    await op.waitForSync();
    const synced = performance.now();
    const restarted = op;
    await waitFor(`restarted operator reconciles ${N}`, async () => ((await reconcileTotal(restarted)) >= N ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 20,
    });
    const resync = performance.now();
    const restartWrites = op.reconciler.stats.statusWrites;
    const afterRestart = mem();

    const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
    const rows: [string, string][] = [
      ['jobs (suspended, 2 workers each)', String(N)],
      ['create calls (all at once)', s(created - t0)],
      [`create → all ${N} status.phase=Suspended`, s(allSuspended - t0)],
      ['children of the suspended jobs (svc/cm/pods)', `${svcs}/${cms}/${pods} (none by design)`],
      ['reconciles (controller_runtime_reconcile_total)', String(reconciles)],
      ['status writes', String(writes)],
      ['reconciles per second (create → all Suspended)', ((reconciles * 1000) / (allSuspended - t0)).toFixed(1)],
      ['reconciles in the next 5 s idle', String(idleReconciles)],
      ['memory before operator: rss / heapUsed', `${before.rss.toFixed(0)} / ${before.heap.toFixed(0)} MiB`],
      ['after start + sync (0 jobs)', `${afterStart.rss.toFixed(0)} / ${afterStart.heap.toFixed(0)} MiB`],
      [`after ${N} jobs Suspended`, `${afterAll.rss.toFixed(0)} / ${afterAll.heap.toFixed(0)} MiB`],
      [`restart: start → caches synced (${N} jobs)`, s(synced - r0)],
      [`restart: start → ${N} reconciled`, s(resync - r0)],
      ['restart: status writes', `${restartWrites} (nothing changed)`],
      ['after restart (2nd operator, 1st closed)', `${afterRestart.rss.toFixed(0)} / ${afterRestart.heap.toFixed(0)} MiB`],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    process.stdout.write(`operator bench (in-process operator: memory is this whole process; node ${process.version})\n`);
    for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);
  } finally {
    await op?.close();
    await nats.stop();
    await cluster.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
