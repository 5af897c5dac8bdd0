// The operator end to end on the local control plane: the node agent runs the real trainer as
// processes (image gmt-trainer:dev → a wrapper around dist/trainer/src/main.js), the trainers train
// over a real nats-server, and the operator (in-process) drives the GmtFineTune through its life:
// success with progress in status and events, a killed rank → gang restart, bad data → Failed
// without a restart loop, delete → children garbage-collected.
//
// The node agent mounts no volumes, so the wrapper turns the pod's env into what a volume would
// give: GMT_CONFIG_JSON (from the ConfigMap) → a file for GMT_CONFIG, and a per-job host directory
// as GMT_CHECKPOINT_DIR (shared by the ranks and attempts, like a ReadWriteMany claim).
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type CoreV1Event } from '@kubernetes/client-node';
import { CRD_NAME, CRD_PATH, GROUP, LABELS, PLURAL, VERSION, parseGmtFineTune, type GmtFineTune, type GmtFineTuneInput } from '../../operator/src/api/index.js';
import { computeJobId, startOperator, type Operator } from '../../operator/src/controller/index.js';
import { startNatsServer, type NatsServerHandle } from '../../trainer/src/collective/nats/server.js';
import { ensureBinary } from '../harness/binaries.js';
import { useTestCluster } from '../harness/cluster.js';
import { createTestNamespace, isApiError, runKubectl, waitFor } from '../harness/k8s-helpers.js';
import { repoPath } from '../helpers/repo.js';

const IMAGE = 'gmt-trainer:dev';
const root = await mkdtemp(join(tmpdir(), 'gmt-e2e-operator-'));
const wrapper = [
  'set -e',
  `d="${root}/$GMT_JOB_ID"`,
  'mkdir -p "$d/ckpt"',
  'echo $$ > "$d/pid-a$GMT_ATTEMPT-r$GMT_RANK"',
  'printf "%s" "$GMT_CONFIG_JSON" > "$d/config-a$GMT_ATTEMPT-r$GMT_RANK.json"',
  'export GMT_CONFIG="$d/config-a$GMT_ATTEMPT-r$GMT_RANK.json" GMT_CHECKPOINT_DIR="$d/ckpt" GMT_METRICS_PORT=0',
  `exec "${process.execPath}" "${repoPath('dist/trainer/src/main.js')}"`,
].join('\n');
process.env['GMT_NODE_AGENT_IMAGES'] = JSON.stringify({ [IMAGE.split(':')[0] ?? IMAGE]: { entrypoint: ['sh', '-c', wrapper, 'gmt-trainer'] } });

const cluster = useTestCluster(test);
let nats: NatsServerHandle | undefined;
let op: Operator | undefined;
const logs: string[] = [];

test.before(async () => {
  nats = await startNatsServer({ binary: await ensureBinary('nats-server') });
});

let ready: Promise<Operator> | undefined;
function operator(): Promise<Operator> {
  ready ??= (async () => {
    const { kc, kubectl, kubeconfigPath } = cluster();
    const applied = await runKubectl(kubectl, kubeconfigPath, ['apply', '--server-side', '--field-manager=gmt-test', '-f', repoPath(CRD_PATH)]);
    if (applied.code !== 0) throw new Error(`kubectl apply ${CRD_PATH} failed: ${applied.stderr}`);
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    await waitFor(`CRD ${CRD_NAME} Established`, async () => {
      const crd = await ext.readCustomResourceDefinition({ name: CRD_NAME });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true ? true : undefined;
    });
    if (nats === undefined) throw new Error('nats-server not started');
    op = await startOperator({
      kc, namespaces: [], natsUrl: nats.url, trainerMetricsPort: 0, progressIntervalMs: 1000, metricsPort: 0, metricsHost: '127.0.0.1',
      log: (level, msg, fields) => void logs.push(JSON.stringify({ level, msg, ...fields })),
    });
    await op.waitForSync();
    return op;
  })();
  return ready;
}

test.after.always(async () => {
  await op?.close();
  await nats?.stop();
  await rm(root, { recursive: true, force: true });
});

function api(): CustomObjectsApi {
  return cluster().kc.makeApiClient(CustomObjectsApi);
}

function tiny(name: string, over: Partial<GmtFineTuneInput['spec']> = {}): GmtFineTuneInput {
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
}

async function create(ns: string, body: GmtFineTuneInput): Promise<GmtFineTune> {
  const r = parseGmtFineTune(await api().createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body }));
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

async function get(ns: string, name: string): Promise<GmtFineTune> {
  const r = parseGmtFineTune(await api().getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name }));
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

async function waitForJob(t: ExecutionContext, ns: string, name: string, what: string, ok: (j: GmtFineTune) => boolean, timeoutMs = 240_000): Promise<GmtFineTune> {
  return waitFor(`${ns}/${name}: ${what}`, async () => {
    const j = await get(ns, name);
    return ok(j) ? j : undefined;
  }, { timeoutMs, intervalMs: 500, describe: async () => `${JSON.stringify((await get(ns, name)).status)}\noperator log tail:\n${logs.slice(-15).join('\n')}` }).catch((err: unknown) => {
    t.log(logs.slice(-30).join('\n'));
    throw err;
  });
}

async function events(ns: string, name: string): Promise<CoreV1Event[]> {
  const list = await cluster().kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` });
  return list.items;
}

const cond = (j: GmtFineTune, type: string): string | undefined => j.status?.conditions?.find((c) => c.type === type)?.status;

test.serial('operator - a tiny GmtFineTune trains over NATS to Succeeded, with progress in status and events', async (t) => {
  await operator();
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'op-ok');
  const started = Date.now();
  const created = await create(ns, tiny('tiny'));
  const core = kc.makeApiClient(CoreV1Api);
  await waitFor('children', async () => ((await core.listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.job}=tiny` })).items.length === 2 ? true : undefined));
  const svc = await core.readNamespacedService({ namespace: ns, name: 'tiny' });
  t.is(svc.spec?.clusterIP, 'None');
  t.is(svc.metadata?.ownerReferences?.[0]?.uid, created.metadata.uid);
  const cm = await core.readNamespacedConfigMap({ namespace: ns, name: 'tiny-config' });
  t.is(JSON.parse(cm.data?.['config.json'] ?? '{}').steps, 12);
  const running = await waitForJob(t, ns, 'tiny', 'step reported while running', (j) => (j.status?.step ?? 0) > 0 && j.status?.phase !== 'Succeeded' ? true : j.status?.phase === 'Succeeded');
  t.log(`first progress seen: phase ${running.status?.phase} step ${running.status?.step}`);
  const done = await waitForJob(t, ns, 'tiny', 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed');
  t.log(`Succeeded in ${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(done.status)}`);
  t.is(done.status?.phase, 'Succeeded');
  t.is(cond(done, 'Succeeded'), 'True');
  t.is(done.status?.attempt, 0);
  t.is(done.status?.restarts?.total, 0);
  t.is(done.status?.totalSteps, 12);
  t.true(typeof done.status?.loss === 'number', 'loss folded in from progress');
  t.truthy(done.status?.startTime);
  t.truthy(done.status?.completionTime);
  t.is(done.status?.observedGeneration, done.metadata.generation);
  const evs = await waitFor('events', async () => {
    const e = await events(ns, 'tiny');
    return e.some((x) => x.reason === 'TrainingCompleted') ? e : undefined;
  });
  t.true(evs.some((e) => e.reason === 'ChildrenCreated'));
  t.true(evs.some((e) => e.reason === 'WorkersRunning'));

  // Delete: the children go by garbage collection (owner references).
  await api().deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'tiny' });
  await waitFor('children garbage-collected', async () => {
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.job}=tiny` });
    const svcGone = await core.readNamespacedService({ namespace: ns, name: 'tiny' }).then(() => false, (e: unknown) => isApiError(e, 404));
    const cmGone = await core.readNamespacedConfigMap({ namespace: ns, name: 'tiny-config' }).then(() => false, (e: unknown) => isApiError(e, 404));
    return pods.items.length === 0 && svcGone && cmGone ? true : undefined;
  }, { timeoutMs: 90_000 });
  t.pass();
});

test.serial('operator - a killed trainer process restarts the gang as attempt 1, which resumes and finishes', async (t) => {
  await operator();
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'op-kill');
  const job = await create(ns, tiny('kill', { training: { steps: 40, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 0, maxNewTokens: 4 } }));
  const jobId = computeJobId(job);
  await waitForJob(t, ns, 'kill', 'a checkpoint and a few steps', (j) => (j.status?.step ?? 0) >= 6 && j.status?.lastCheckpoint !== undefined);
  const pid = Number((await readFile(join(root, jobId, 'pid-a0-r1'), 'utf8')).trim());
  t.log(`killing rank 1 (pid ${pid})`);
  process.kill(pid, 'SIGKILL');
  const restarted = await waitForJob(t, ns, 'kill', 'attempt 1', (j) => (j.status?.attempt ?? 0) >= 1);
  t.is(restarted.status?.restarts?.total, 1);
  const done = await waitForJob(t, ns, 'kill', 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed', 300_000);
  t.log(JSON.stringify(done.status));
  t.is(done.status?.phase, 'Succeeded');
  t.is(done.status?.attempt, 1);
  t.is(done.status?.restarts?.total, 1);
  t.is((done.status?.restarts?.other ?? 0) + (done.status?.restarts?.retryable ?? 0), 1, 'counted by cause');
  const evs = await events(ns, 'kill');
  t.true(evs.some((e) => e.type === 'Warning' && e.reason !== undefined && ['PodFailed', 'RetryableFailure'].includes(e.reason)), 'restart event');
});

test.serial('operator - malformed training data fails the job with the trainer reason, no restart loop', async (t) => {
  await operator();
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'op-bad');
  const bad = join(root, 'bad.jsonl');
  await writeFile(bad, '{"prompt": "1+1=", "answer": \nthis is not json\n');
  await create(ns, tiny('bad', { dataset: { train: bad, eval: bad } }));
  const failed = await waitForJob(t, ns, 'bad', 'Failed', (j) => j.status?.phase === 'Failed' || j.status?.phase === 'Succeeded');
  t.log(JSON.stringify(failed.status?.conditions));
  t.is(failed.status?.phase, 'Failed');
  const c = failed.status?.conditions?.find((x) => x.type === 'Failed');
  t.is(c?.reason, 'NonRetryableFailure');
  t.regex(c?.message ?? '', /exited with code 3 \(invalid training data\)/);
  await new Promise((r) => setTimeout(r, 3000));
  const later = await get(ns, 'bad');
  t.is(later.status?.attempt, 0, 'no restart');
  t.is(later.status?.restarts?.total, 0);
  const pods = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns });
  t.true(pods.items.every((p) => p.metadata?.labels?.[LABELS.attempt] === '0'), 'no pods of a later attempt');
});
