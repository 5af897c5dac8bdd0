// The operator end to end on the local control plane: the node agent runs the real trainer as
// processes (image gmt-trainer:dev → a wrapper around dist/trainer/src/main.js), the trainers train
// over a real nats-server, and the operator (in-process) drives the GmtFineTune through its life:
// success with progress in status and events, a killed rank → gang restart, bad data → Failed
// without a restart loop, delete → children garbage-collected.
// The setup (wrapper image, nats-server, CRD, helpers) is shared with operator-lifecycle.test.ts in
// operator-fixture.ts.
import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { GROUP, LABELS, PLURAL, VERSION, type GmtFineTune } from '../../operator/src/api/index.js';
import { computeJobId, type Operator } from '../../operator/src/controller/index.js';
import { createTestNamespace, isApiError, waitFor } from '../harness/k8s-helpers.js';
import { useOperatorFixture } from './operator-fixture.js';

const fx = useOperatorFixture(test, 'operator');
// eslint-disable-next-line @typescript-eslint/unbound-method -- the fixture's members are closures, not this-bound methods
const { root, cluster, api, tiny, create, get, waitForJob, events } = fx;

let ready: Promise<Operator> | undefined;
function operator(): Promise<Operator> {
  ready ??= (async () => {
    const op = await fx.startOperator();
    await op.waitForSync();
    return op;
  })();
  return ready;
}

const cond = (j: GmtFineTune, type: string): string | undefined => j.status?.conditions?.find((c) => c.type === type)?.status;

test.serial('operator - a tiny GmtFineTune trains over NATS to Succeeded, with progress in status and events', async (t) => {
  await operator();
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'op-ok');
  const started = Date.now();
  const created = await create(ns, tiny('tiny'));
  const core = kc.makeApiClient(CoreV1Api);
  await waitFor('children', async () =>
    (await core.listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.job}=tiny` })).items.length === 2 ? true : undefined,
  );
  const svc = await core.readNamespacedService({ namespace: ns, name: 'tiny' });
  t.is(svc.spec?.clusterIP, 'None');
  t.is(svc.metadata?.ownerReferences?.[0]?.uid, created.metadata.uid);
  const cm = await core.readNamespacedConfigMap({ namespace: ns, name: 'tiny-config' });
  t.is((JSON.parse(cm.data?.['config.json'] ?? '{}') as { steps?: unknown }).steps, 12);
  const running = await waitForJob(t, ns, 'tiny', 'step reported while running', (j) =>
    (j.status?.step ?? 0) > 0 && j.status?.phase !== 'Succeeded' ? true : j.status?.phase === 'Succeeded',
  );
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
  // The trainer's evaluations (before and after) in status, rounded for kubectl's columns.
  const evaluated = await waitForJob(t, ns, 'tiny', 'evaluation after', (j) => j.status?.evaluation?.after !== undefined);
  const ev = evaluated.status?.evaluation;
  t.is(ev?.before?.examples, 8);
  t.is(ev?.after?.step, 12);
  t.true(typeof ev?.after?.loss === 'number' && typeof ev.before?.loss === 'number', JSON.stringify(ev));
  t.regex(evaluated.status?.display?.exactMatch ?? '', /^\d+\.\d% → \d+\.\d%$/);
  t.regex(evaluated.status?.display?.loss ?? '', /^\d+\.\d{4}$/);
  const evs = await waitFor('events', async () => {
    const e = await events(ns, 'tiny');
    return e.some((x) => x.reason === 'TrainingCompleted') ? e : undefined;
  });
  t.true(evs.some((e) => e.reason === 'ChildrenCreated'));
  t.true(evs.some((e) => e.reason === 'WorkersRunning'));

  // Delete: the children go by garbage collection (owner references).
  await api().deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'tiny' });
  await waitFor(
    'children garbage-collected',
    async () => {
      const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.job}=tiny` });
      const svcGone = await core.readNamespacedService({ namespace: ns, name: 'tiny' }).then(
        () => false,
        (e: unknown) => isApiError(e, 404),
      );
      const cmGone = await core.readNamespacedConfigMap({ namespace: ns, name: 'tiny-config' }).then(
        () => false,
        (e: unknown) => isApiError(e, 404),
      );
      return pods.items.length === 0 && svcGone && cmGone ? true : undefined;
    },
    { timeoutMs: 90_000 },
  );
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
  t.true(
    evs.some((e) => e.type === 'Warning' && e.reason !== undefined && ['PodFailed', 'RetryableFailure'].includes(e.reason)),
    'restart event',
  );
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
  t.true(
    pods.items.every((p) => p.metadata?.labels?.[LABELS.attempt] === '0'),
    'no pods of a later attempt',
  );
});

test.serial('operator - workers whose image cannot be pulled show the reason at once and fail the job after the startup deadline', async (t) => {
  await operator();
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'op-pull');
  // The node agent reports an image it cannot map as ErrImagePull, as a kubelet does for a missing image.
  await create(
    ns,
    tiny('nopull', { image: 'registry.invalid/no-such-trainer:1', runPolicy: { backoffLimit: 2, progressDeadlineSeconds: 300, startupDeadlineSeconds: 8 } }),
  );
  const pending = await waitForJob(t, ns, 'nopull', 'reason shown', (j) => j.status?.reason !== undefined || j.status?.phase === 'Failed');
  t.is(pending.status?.reason, 'ErrImagePull');
  const failed = await waitForJob(t, ns, 'nopull', 'Failed', (j) => j.status?.phase === 'Failed');
  const c = failed.status?.conditions?.find((x) => x.type === 'Failed');
  t.is(c?.reason, 'ErrImagePull');
  t.regex(c?.message ?? '', /could not start within spec\.runPolicy\.startupDeadlineSeconds \(8 s\)/);
  t.is(failed.status?.reason, 'ErrImagePull');
  const evs = await waitFor('events', async () => {
    const e = await events(ns, 'nopull');
    return e.some((x) => x.reason === 'WorkersCannotStart') ? e : undefined;
  });
  t.true(evs.some((e) => e.type === 'Warning' && e.reason === 'WorkersCannotStart'));
});
