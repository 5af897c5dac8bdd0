// The operator end to end on the e2e cluster (a real node: kubelet + containerd, see
// test/harness/cluster.ts): the workers run the trainer image, train over a real nats-server on the
// host, and the operator (in-process, on the host) drives the GmtFineTune through its life: success
// with progress in status and events, a trainer container SIGKILLed (fx.killContainer) → gang restart
// resuming from the checkpoint claim, bad data (on a claim) → Failed without a restart loop, an
// image that cannot be pulled → Failed after the startup deadline, delete → children
// garbage-collected. The setup (nats-server, CRD, namespaces, helpers) is shared with the other
// operator files in operator-fixture.ts.
import test from 'ava';
import { CoreV1Api } from '@kubernetes/client-node';
import { GROUP, LABELS, PLURAL, VERSION, type GmtFineTune } from '../../operator/src/api/index.js';
import { podName, type Operator } from '../../operator/src/controller/index.js';
import { isApiError, waitFor } from '../harness/k8s-helpers.js';
import { useOperatorFixture } from './operator-fixture.js';
import { resumedLines } from '../helpers/trainer-log.js';

const fx = useOperatorFixture(test, 'operator');
// eslint-disable-next-line @typescript-eslint/unbound-method -- the fixture's members are closures, not this-bound methods
const { cluster, api, tiny, create, get, waitForJob, events } = fx;

/** A namespace of its own and an operator watching only it. */
async function setup(prefix: string): Promise<{ ns: string; op: Operator }> {
  const ns = await fx.namespace(prefix);
  const op = await fx.startOperator({ namespaces: [ns] });
  await op.waitForSync();
  return { ns, op };
}

const cond = (j: GmtFineTune, type: string): string | undefined => j.status?.conditions?.find((c) => c.type === type)?.status;

test.serial('operator - a tiny GmtFineTune trains over NATS to Succeeded, with progress in status and events', async (t) => {
  const { ns } = await setup('op-ok');
  const { kc } = cluster();
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
  const left = await waitFor(
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
      return pods.items.length === 0 && svcGone && cmGone ? { pods: pods.items.length, service: !svcGone, configMap: !cmGone } : undefined;
    },
    { timeoutMs: 90_000 },
  );
  t.deepEqual(left, { pods: 0, service: false, configMap: false });
});

test.serial('operator - a SIGKILLed trainer container restarts the gang as attempt 1, which resumes from the checkpoint claim', async (t) => {
  const { ns } = await setup('op-kill');
  // Checkpoints outlive the attempt's pods only on a volume that outlives them.
  const claimName = await fx.claim(ns, 'ckpt');
  await create(
    ns,
    tiny('kill', {
      training: { steps: 40, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 0, maxNewTokens: 4 },
      checkpoint: { interval: 4, volume: { persistentVolumeClaim: { claimName } } },
    }),
  );
  const before = await waitForJob(t, ns, 'kill', 'a checkpoint and a few steps', (j) => (j.status?.step ?? 0) >= 6 && j.status?.lastCheckpoint !== undefined);
  t.true((before.status?.step ?? 0) < 40, `killed before the end (step ${before.status?.step})`);
  t.log(`killing rank 1's container at step ${before.status?.step} (checkpoint ${before.status?.lastCheckpoint})`);
  await fx.killContainer(ns, podName('kill', 0, 1));
  const restarted = await waitForJob(t, ns, 'kill', 'attempt 1', (j) => (j.status?.attempt ?? 0) >= 1);
  t.is(restarted.status?.restarts?.total, 1);
  const done = await waitForJob(t, ns, 'kill', 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed');
  t.log(JSON.stringify(done.status));
  t.is(done.status?.phase, 'Succeeded');
  t.is(done.status?.attempt, 1);
  t.is(done.status?.restarts?.total, 1);
  t.is(done.status?.step, 40);
  t.is((done.status?.restarts?.other ?? 0) + (done.status?.restarts?.retryable ?? 0), 1, 'counted by cause');
  const evs = await events(ns, 'kill');
  t.true(
    evs.some((e) => e.type === 'Warning' && e.reason !== undefined && ['PodFailed', 'RetryableFailure'].includes(e.reason)),
    'restart event',
  );
  // Attempt 1 resumed from a checkpoint attempt 0 wrote on the claim (its rank 0's log, from the API).
  const log = await cluster()
    .kc.makeApiClient(CoreV1Api)
    .readNamespacedPodLog({ namespace: ns, name: podName('kill', 1, 0) });
  const resumed = resumedLines(log);
  t.is(resumed.length, 1, log);
  t.true((resumed[0]?.step ?? 0) >= 4, `attempt 1 resumed from a checkpoint of attempt 0: ${JSON.stringify(resumed)}`);
});

test.serial('operator - malformed training data fails the job with the trainer reason, no restart loop', async (t) => {
  const { ns } = await setup('op-bad');
  const { kc } = cluster();
  // The data reaches the workers on a claim of its own, named as pvc://<claim>/<path>: the operator
  // mounts the claim read-only and gives the trainer the mounted path.
  const claimName = await fx.claim(ns, 'data');
  await fx.withClaim(ns, claimName, `printf '%s\\n' '{"prompt": "1+1=", "answer": ' 'this is not json' > /data/bad.jsonl`);
  const bad = `pvc://${claimName}/bad.jsonl`;
  await create(ns, tiny('bad', { dataset: { train: bad, eval: bad } }));
  const failed = await waitForJob(t, ns, 'bad', 'Failed', (j) => j.status?.phase === 'Failed' || j.status?.phase === 'Succeeded');
  t.log(JSON.stringify(failed.status?.conditions));
  t.is(failed.status?.phase, 'Failed');
  const c = failed.status?.conditions?.find((x) => x.type === 'Failed');
  t.is(c?.reason, 'NonRetryableFailure');
  t.regex(c?.message ?? '', /exited with code 3 \(invalid training data\)/);
  t.notRegex(c?.message ?? '', /ENOENT/, 'the file was there and read: its content is what is invalid');
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
  const { ns } = await setup('op-pull');
  // The node's containerd cannot reach any registry (docs/testing.md): the kubelet reports
  // ErrImagePull, then ImagePullBackOff.
  await create(
    ns,
    tiny('nopull', { image: 'registry.invalid/no-such-trainer:1', runPolicy: { backoffLimit: 2, progressDeadlineSeconds: 300, startupDeadlineSeconds: 8 } }),
  );
  const pending = await waitForJob(t, ns, 'nopull', 'reason shown', (j) => j.status?.reason !== undefined || j.status?.phase === 'Failed');
  t.regex(pending.status?.reason ?? '', /^(ErrImagePull|ImagePullBackOff)$/);
  const failed = await waitForJob(t, ns, 'nopull', 'Failed', (j) => j.status?.phase === 'Failed');
  const c = failed.status?.conditions?.find((x) => x.type === 'Failed');
  t.regex(c?.reason ?? '', /^(ErrImagePull|ImagePullBackOff)$/);
  t.regex(c?.message ?? '', /could not start within spec\.runPolicy\.startupDeadlineSeconds \(8 s\)/);
  t.is(failed.status?.reason, c?.reason);
  const evs = await waitFor('events', async () => {
    const e = await events(ns, 'nopull');
    return e.some((x) => x.reason === 'WorkersCannotStart') ? e : undefined;
  });
  t.true(evs.some((e) => e.type === 'Warning' && e.reason === 'WorkersCannotStart'));
});
