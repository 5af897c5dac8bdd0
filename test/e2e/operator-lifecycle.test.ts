// The operator's own lifecycle, end to end on the e2e cluster (a real node) with the trainer image
// training over NATS (same setup as operator.test.ts, see operator-fixture.ts):
//  1. the operator process is SIGKILLed mid-reconcile (twice) and started again: no duplicate pods,
//     no lost status, the job still finishes;
//  2. two replicas with leader election: only the leader reconciles; when the leader dies without
//     releasing the lease, the standby takes over after the lease expires and finishes the job;
//  3. suspend mid-run: pods gone, checkpoint kept on the job's claim, Suspended; resume: a new attempt
//     resumes from that checkpoint and finishes all steps;
//  4. examples/suspended.yaml with kubectl: created suspended (no pods), resumed with the patch its
//     comment gives, to Succeeded.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { LABELS, type GmtFineTune } from '../../operator/src/api/index.js';
import { computeJobId, type Operator } from '../../operator/src/controller/index.js';
import { METRIC } from '../../operator/src/metrics/names.js';
import { runKubectl, waitFor } from '../harness/k8s-helpers.js';
import { repoPath } from '../helpers/repo.js';
import { useOperatorFixture } from './operator-fixture.js';
import { resumedLines } from '../helpers/trainer-log.js';

const fx = useOperatorFixture(test, 'op-life');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const training = (steps: number) => ({ steps, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 0, maxNewTokens: 4 });

/** Live (not terminating) pods of job `name`. */
async function livePods(ns: string, name: string): Promise<V1Pod[]> {
  const list = await fx
    .cluster()
    .kc.makeApiClient(CoreV1Api)
    .listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.job}=${name}` });
  return list.items.filter((p) => p.metadata?.deletionTimestamp == null);
}

/** Samples the job's pods every 100 ms: the most live pods seen at once, and every attempt label seen. */
function watchPods(ns: string, name: string): { stop(): Promise<{ maxLive: number; attempts: Set<string>; names: Set<string> }> } {
  let running = true;
  let maxLive = 0;
  const attempts = new Set<string>();
  const names = new Set<string>();
  const loop = (async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() clears it
    while (running) {
      const pods = await livePods(ns, name).catch(() => []);
      maxLive = Math.max(maxLive, pods.length);
      for (const p of pods) {
        attempts.add(p.metadata?.labels?.[LABELS.attempt] ?? '?');
        names.add(p.metadata?.name ?? '?');
      }
      await sleep(100);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { maxLive, attempts, names };
    },
  };
}

async function reconcileTotal(op: Operator): Promise<number> {
  const m = await op.metrics.registry.getSingleMetric(METRIC.reconcileTotal)?.get();
  return (m?.values ?? []).reduce((a, v) => a + v.value, 0);
}

/** The operator as a separate process (dist/operator/src/main.js) watching `ns`, so that it can be SIGKILLed. */
function spawnOperator(tag: string, ns: string): ChildProcess {
  const { kubeconfigPath } = fx.cluster();
  const child = spawn(
    process.execPath,
    [
      repoPath('dist/operator/src/main.js'),
      '--kubeconfig',
      kubeconfigPath,
      '--nats-url',
      fx.natsUrl(),
      '--namespace',
      ns,
      '--metrics-port',
      '-1',
      '--leader-elect',
      'false',
      '--trainer-metrics-port',
      '0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    for (const line of d.split('\n')) if (line !== '') fx.logs.push(`[${tag}] ${line}`);
  });
  return child;
}

async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await exited;
}

const children: ChildProcess[] = [];
test.after.always(async () => {
  await Promise.all(children.map((c) => kill(c, 'SIGKILL')));
});

const finished = (j: GmtFineTune): boolean => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed';

test.serial('lifecycle - the operator SIGKILLed mid-reconcile and restarted: no duplicate pods, no lost status, the job finishes', async (t) => {
  await fx.installCrd();
  const ns = await fx.namespace('op-crash');
  const started = Date.now();
  const a = spawnOperator('op-a', ns);
  children.push(a);
  await fx.create(ns, fx.tiny('crash', { training: training(24) }));
  const watch = watchPods(ns, 'crash');

  // Kill 1: as soon as the first pod exists, i.e. while the reconcile that creates the gang (and
  // writes the Created status) is still in flight.
  await waitFor('first pod', async () => ((await livePods(ns, 'crash')).length > 0 ? true : undefined), { timeoutMs: 60_000, intervalMs: 20 });
  await kill(a, 'SIGKILL');
  const atKill1 = await fx.get(ns, 'crash');
  t.log(
    `kill 1 with ${(await livePods(ns, 'crash')).length} pod(s); status ${JSON.stringify({ phase: atKill1.status?.phase, attempt: atKill1.status?.attempt })}`,
  );

  const b = spawnOperator('op-b', ns);
  children.push(b);
  const running = await fx.waitForJob(t, ns, 'crash', 'running with a few steps', (j) => (j.status?.step ?? 0) >= 4 || finished(j));
  const pods = await livePods(ns, 'crash');
  t.is(pods.length, 2, 'exactly `workers` pods after the restart');
  t.true(
    pods.every((p) => p.metadata?.labels?.[LABELS.attempt] === String(running.status?.attempt ?? 0)),
    'all of the current attempt',
  );

  // Kill 2: mid-run (progress-driven reconciles and status writes every second).
  await kill(b, 'SIGKILL');
  const before = await fx.get(ns, 'crash');
  t.log(`kill 2 at step ${before.status?.step}, attempt ${before.status?.attempt}, restarts ${before.status?.restarts?.total}`);
  await sleep(1500);
  const c = spawnOperator('op-c', ns);
  children.push(c);
  const after = await fx.waitForJob(
    t,
    ns,
    'crash',
    'reconciled by the restarted operator',
    (j) => j.metadata.resourceVersion !== before.metadata.resourceVersion,
  );
  t.true((after.status?.step ?? 0) >= (before.status?.step ?? 0), 'step kept');
  t.is(after.status?.attempt, before.status?.attempt, 'attempt kept');
  t.deepEqual(after.status?.restarts, before.status?.restarts, 'restarts kept');
  t.is(after.status?.startTime, before.status?.startTime, 'startTime kept');

  const done = await fx.waitForJob(t, ns, 'crash', 'finished', finished, 300_000);
  await kill(c, 'SIGTERM');
  const seen = await watch.stop();
  t.log(`Succeeded in ${((Date.now() - started) / 1000).toFixed(1)} s; pods seen: ${[...seen.names].join(', ')}; max live ${seen.maxLive}`);
  t.is(done.status?.phase, 'Succeeded');
  t.is(done.status?.attempt, 0, 'no gang restart caused by the operator restarts');
  t.is(done.status?.restarts?.total, 0);
  t.is(done.status?.step, 24);
  t.true(seen.maxLive <= 2, `never more than 2 live pods (saw ${seen.maxLive})`);
  t.deepEqual([...seen.attempts], ['0']);
  t.is(seen.names.size, 2, 'the same two pods throughout');
});

const LE_STEPS = 120;

test.serial('lifecycle - two replicas with leader election: only the leader reconciles; the standby takes over when the leader dies', async (t) => {
  await fx.installCrd();
  const leaseNs = await fx.namespace('op-lease');
  const ns = await fx.namespace('op-le');
  const le = { namespace: leaseNs, name: 'gmt-operator-leader', leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 1 };
  const a = await fx.startOperator({ namespaces: [ns], leaderElection: { ...le, identity: 'replica-a' } });
  await waitFor('replica-a leads', async () => (a.elector?.isLeader === true ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 });
  const b = await fx.startOperator({ namespaces: [ns], leaderElection: { ...le, identity: 'replica-b' } });
  await b.waitForSync();
  t.is(b.elector?.state, 'standby');

  // Long enough to outlast the leaderless window (lease 4 s): on the native backend 24 steps took
  // less than that, the final progress message went out while no replica listened, and status.step
  // stayed at the last value the old leader had seen (the job itself still Succeeded).
  await fx.create(ns, fx.tiny('le', { training: training(LE_STEPS) }));
  const mid = await fx.waitForJob(t, ns, 'le', 'a few steps', (j) => (j.status?.step ?? 0) >= 4 || finished(j));
  t.true(a.reconciler.stats.reconciles > 0 && (await reconcileTotal(a)) > 0, 'the leader reconciles');
  t.is(b.reconciler.stats.reconciles, 0, 'the standby does not reconcile');
  t.is(await reconcileTotal(b), 0, 'standby controller_runtime_reconcile_total');
  t.is(b.reconciler.stats.statusWrites, 0);
  t.is(b.elector?.observedLeader, 'replica-a');

  // The leader dies without releasing the lease: the standby must wait for it to expire.
  const killedAt = Date.now();
  await a.elector?.close({ release: false });
  await a.close();
  await waitFor('replica-b leads', async () => (b.elector?.isLeader === true ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 });
  const takeover = (Date.now() - killedAt) / 1000;
  t.log(
    `takeover after ${takeover.toFixed(1)} s (lease ${le.leaseDurationSeconds} s, retry ${le.retryPeriodSeconds} s); job at step ${mid.status?.step} when a took the lead`,
  );
  t.true(takeover <= le.leaseDurationSeconds + 3 * le.retryPeriodSeconds + 2, `takeover within ~lease duration (${takeover.toFixed(1)} s)`);

  const done = await fx.waitForJob(t, ns, 'le', 'finished', finished, 300_000);
  t.is(done.status?.phase, 'Succeeded');
  t.is(done.status?.attempt, 0);
  t.is(done.status?.step, LE_STEPS);
  t.true(b.reconciler.stats.reconciles > 0, 'the new leader reconciled');
  await b.close();
});

test.serial('lifecycle - suspend mid-run deletes the pods and keeps the checkpoint; resume continues from it to Succeeded', async (t) => {
  const ns = await fx.namespace('op-susp');
  const op = await fx.startOperator({ namespaces: [ns] });
  await op.waitForSync();
  const { kc } = fx.cluster();
  const steps = 40;
  // The checkpoints must outlive the suspended attempt's pods: a claim, as a user would give it.
  const claimName = await fx.claim(ns, 'ckpt');
  const job = await fx.create(
    ns,
    fx.tiny('susp', { training: training(steps), checkpoint: { interval: 4, volume: { persistentVolumeClaim: { claimName } } } }),
  );
  const mid = await fx.waitForJob(
    t,
    ns,
    'susp',
    'a checkpoint and a few steps',
    (j) => ((j.status?.step ?? 0) >= 6 && j.status?.lastCheckpoint !== undefined) || finished(j),
  );
  t.true((mid.status?.step ?? 0) < steps, 'suspended before the end');

  await fx.setSuspend(ns, 'susp', true);
  const suspended = await fx.waitForJob(t, ns, 'susp', 'Suspended', (j) => j.status?.phase === 'Suspended');
  await waitFor('pods gone', async () => ((await livePods(ns, 'susp')).length === 0 ? true : undefined), { timeoutMs: 60_000 });
  const core = kc.makeApiClient(CoreV1Api);
  await waitFor(
    'pods deleted',
    async () => ((await core.listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.job}=susp` })).items.length === 0 ? true : undefined),
    { timeoutMs: 60_000 },
  );
  t.is(suspended.status?.conditions?.find((c) => c.type === 'Suspended')?.status, 'True');
  // Periodic checkpoints every 4 steps; rank 0 also writes one on SIGTERM (a step that is not a
  // multiple of 4 shows it; logged, not asserted: see the report on the SIGTERM race). Read from the
  // claim by a pod, as anyone with access to the volume would see them.
  const listing = await fx.withClaim(ns, claimName, `ls -1 /data/${computeJobId(job)}`);
  const saved = listing
    .split('\n')
    .filter((d) => /^step-\d+$/.test(d))
    .sort();
  const latest = saved.at(-1) ?? '';
  t.log(
    `suspended at step ${suspended.status?.step}; checkpoints kept: ${saved.join(', ')}${Number(latest.slice(5)) % 4 !== 0 ? ' (the last one written on SIGTERM)' : ''}`,
  );
  t.true(saved.length > 0, `a step-* checkpoint kept on the claim: ${listing}`);
  await sleep(2000);
  t.is((await livePods(ns, 'susp')).length, 0, 'no pods while suspended');
  t.is((await fx.get(ns, 'susp')).status?.phase, 'Suspended');

  await fx.setSuspend(ns, 'susp', false);
  const done = await fx.waitForJob(t, ns, 'susp', 'finished', finished);
  t.log(JSON.stringify(done.status));
  t.is(done.status?.phase, 'Succeeded');
  t.is(done.status?.attempt, 1, 'the resumed gang is a new attempt');
  t.is(done.status?.restarts?.total, 0, 'suspend/resume is not a restart');
  t.is(done.status?.step, steps);
  t.is(done.status?.totalSteps, steps);
  // The resumed attempt's logs, from the API.
  const logs = await fx.podLogs(ns);
  const resumed = logs.flatMap(resumedLines);
  t.true(resumed.length > 0, 'the resumed attempt logs "resumed"');
  const first = resumed.at(0);
  t.log(first?.line ?? '');
  t.true(first?.line.includes(latest) === true, `resumed from the last kept checkpoint ${latest}`);
  t.is(first?.step, Number(latest.slice(5)), 'resumed at the step of that checkpoint');
});

test.serial(
  'lifecycle - examples/suspended.yaml applied with kubectl stays suspended without pods; the patch its comment gives resumes it to Succeeded',
  async (t) => {
    const ns = await fx.namespace('op-example');
    const op = await fx.startOperator({ namespaces: [ns] });
    await op.waitForSync();
    const { kubectl, kubeconfigPath, images } = fx.cluster();
    const k = async (args: readonly string[], stdin?: string): Promise<string> => {
      const r = await runKubectl(kubectl, kubeconfigPath, ['-n', ns, ...args], stdin);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    };
    const example = await readFile(repoPath('examples/suspended.yaml'), 'utf8');
    // The example names the image users build (gmt-dev/…); the cluster has the one built here.
    t.regex(example, /^\s*image: \S+$/m);
    await k(['apply', '-f', '-'], example.replace(/^(\s*)image: .*$/m, `$1image: ${images.trainer}`));
    const suspended = await fx.waitForJob(t, ns, 'suspended', 'Suspended', (j) => j.status?.phase === 'Suspended');
    t.is(suspended.status?.conditions?.find((c) => c.type === 'Suspended')?.status, 'True');
    await sleep(3000);
    t.is((await livePods(ns, 'suspended')).length, 0, 'no worker pod while suspended');

    // The resume command exactly as the example's comment gives it.
    const patch = /^#\s+kubectl patch gft suspended --type merge -p '([^']+)'$/m.exec(example)?.[1];
    if (patch === undefined) throw new Error('examples/suspended.yaml no longer shows the kubectl patch that resumes it');
    await k(['patch', 'gft', 'suspended', '--type', 'merge', '-p', patch]);
    const done = await fx.waitForJob(t, ns, 'suspended', 'finished', finished);
    t.log(JSON.stringify({ phase: done.status?.phase, step: done.status?.step, attempt: done.status?.attempt }));
    t.is(done.status?.phase, 'Succeeded');
    t.is(done.status?.step, 50);
    t.is(done.status?.restarts?.total, 0);
    t.is((await k(['get', 'gft', 'suspended', '-o', 'jsonpath={.status.phase}'])).trim(), 'Succeeded');
  },
);
