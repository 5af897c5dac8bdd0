// computeStatus and the failure-policy tables: table-driven, pure (no API server, no clock).
import test from 'ava';
import { API_VERSION, KIND, parseGmtFineTune, type GmtFineTune, type GmtFineTuneSpecInput, type GmtFineTuneStatus } from '../../../operator/src/api/index.js';
import {
  classifyPod,
  computeStatus,
  exitPolicy,
  formatTime,
  type Decision,
  type PodView,
  type ProgressSnapshot,
} from '../../../operator/src/controller/index.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function job(spec: Partial<GmtFineTuneSpecInput> = {}, status?: GmtFineTuneStatus): GmtFineTune {
  const r = parseGmtFineTune({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'j', namespace: 'ns', uid: 'u-1', generation: 3 },
    spec: { image: 'img', workers: 2, ...spec },
    ...(status !== undefined ? { status } : {}),
  });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

type PodState = 'pending' | 'running' | 'succeeded' | { exit: number; message?: string } | 'evicted' | 'unschedulable';

function pod(rank: number, state: PodState, attempt = 0): PodView {
  const labels = { 'gmt.dev/rank': String(rank), 'gmt.dev/attempt': String(attempt) };
  const metadata = { name: `j-a${attempt}-r${rank}`, namespace: 'ns', labels };
  if (state === 'pending') return { metadata, status: { phase: 'Pending' } };
  if (state === 'unschedulable')
    return {
      metadata,
      status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes have nvidia.com/gpu' }] },
    };
  if (state === 'running') return { metadata, status: { phase: 'Running' } };
  if (state === 'succeeded')
    return { metadata, status: { phase: 'Succeeded', containerStatuses: [{ name: 'trainer', state: { terminated: { exitCode: 0 } } }] } };
  if (state === 'evicted') return { metadata, status: { phase: 'Failed', reason: 'Evicted', message: 'node pressure' } };
  return {
    metadata,
    status: {
      phase: 'Failed',
      containerStatuses: [
        { name: 'trainer', state: { terminated: { exitCode: state.exit, ...(state.message !== undefined ? { message: state.message } : {}) } } },
      ],
    },
  };
}

const running: GmtFineTuneStatus = {
  phase: 'Running',
  attempt: 0,
  restarts: { total: 0 },
  startTime: formatTime(T0),
  conditions: [
    { type: 'Created', status: 'True', lastTransitionTime: formatTime(T0), reason: 'ChildrenCreated', message: 'created 2 worker pods for attempt 0' },
    { type: 'Running', status: 'True', lastTransitionTime: formatTime(T0), reason: 'WorkersRunning', message: '2 workers running (attempt 0)' },
  ],
};

function decide(j: GmtFineTune, pods: PodView[], extra: { now?: number; otherPods?: number; progress?: ProgressSnapshot; natsUrl?: string } = {}): Decision {
  return computeStatus({
    job: j,
    pods,
    otherPods: extra.otherPods ?? 0,
    progress: extra.progress,
    natsUrl: extra.natsUrl ?? 'nats://n:4222',
    now: extra.now ?? T0 + 10_000,
  });
}
const condOf = (d: Decision, type: string): string | undefined => d.status.conditions?.find((c) => c.type === type)?.status;
const reasonOf = (d: Decision, type: string): string | undefined => d.status.conditions?.find((c) => c.type === type)?.reason;

test('policy - exit code table', (t) => {
  const rows: [number, string, string?][] = [
    [0, 'succeed'],
    [1, 'fail'],
    [2, 'fail'],
    [3, 'fail'],
    [4, 'fail'],
    [5, 'fail'],
    [75, 'restart', 'retryable'],
    [76, 'restart', 'retryable'],
    [137, 'restart', 'other'],
    [143, 'restart', 'other'],
    [7, 'fail'],
  ];
  for (const [code, action, cause] of rows) {
    const p = exitPolicy(code);
    t.is<string, string>(p.action, action, `exit ${code}`);
    if (cause !== undefined && p.action === 'restart') t.is<string, string>(p.cause, cause, `exit ${code} cause`);
  }
});

test('policy - pod classification', (t) => {
  t.is(classifyPod(pod(0, 'pending')).kind, 'pending');
  t.is(classifyPod(pod(0, 'running')).kind, 'running');
  t.is(classifyPod(pod(0, 'succeeded')).kind, 'succeeded');
  t.deepEqual(classifyPod(pod(0, 'evicted')), { kind: 'restart', cause: 'preempted', message: 'pod j-a0-r0 Evicted: node pressure' });
  const fatal = classifyPod(pod(1, { exit: 3, message: 'line 1\n[gmt-train] DataError: bad.jsonl:2: not JSON\n' }));
  t.is(fatal.kind, 'fail');
  if (fatal.kind === 'fail')
    t.is(fatal.message, 'rank 1 (pod j-a0-r1) exited with code 3 (invalid training data): [gmt-train] DataError: bad.jsonl:2: not JSON');
});

test('status - the gang table', (t) => {
  const rows: {
    name: string;
    pods: PodView[];
    phase: string;
    create?: boolean;
    deletePods?: string;
    attempt?: number;
    restarts?: number;
    cond?: [string, string, string];
  }[] = [
    { name: 'no pods yet → create, Pending', pods: [], phase: 'Pending', create: true, cond: ['Created', 'True', 'ChildrenCreated'] },
    { name: 'one pod pending', pods: [pod(0, 'running'), pod(1, 'pending')], phase: 'Pending', cond: ['Running', 'False', 'WorkersPending'] },
    { name: 'unschedulable', pods: [pod(0, 'unschedulable'), pod(1, 'unschedulable')], phase: 'Pending', cond: ['Running', 'False', 'Unschedulable'] },
    { name: 'all running', pods: [pod(0, 'running'), pod(1, 'running')], phase: 'Running', cond: ['Running', 'True', 'WorkersRunning'] },
    { name: 'all succeeded', pods: [pod(0, 'succeeded'), pod(1, 'succeeded')], phase: 'Succeeded', cond: ['Succeeded', 'True', 'TrainingCompleted'] },
    {
      name: 'retryable exit → gang restart',
      pods: [pod(0, 'running'), pod(1, { exit: 75 })],
      phase: 'Restarting',
      attempt: 1,
      restarts: 1,
      cond: ['Restarting', 'True', 'RetryableFailure'],
    },
    {
      name: 'killed → gang restart',
      pods: [pod(0, { exit: 137 }), pod(1, 'running')],
      phase: 'Restarting',
      attempt: 1,
      restarts: 1,
      cond: ['Restarting', 'True', 'PodFailed'],
    },
    {
      name: 'evicted → gang restart',
      pods: [pod(0, 'evicted'), pod(1, 'running')],
      phase: 'Restarting',
      attempt: 1,
      restarts: 1,
      cond: ['Restarting', 'True', 'Preempted'],
    },
    {
      name: 'lost rank after start → gang restart',
      pods: [pod(0, 'running')],
      phase: 'Restarting',
      attempt: 1,
      restarts: 1,
      cond: ['Restarting', 'True', 'Preempted'],
    },
    {
      name: 'bad data → Failed, stop the rest',
      pods: [pod(0, 'running'), pod(1, { exit: 3 })],
      phase: 'Failed',
      deletePods: 'active',
      attempt: 0,
      restarts: 0,
      cond: ['Failed', 'True', 'NonRetryableFailure'],
    },
    {
      name: 'fatal wins over retryable',
      pods: [pod(0, { exit: 75 }), pod(1, { exit: 2 })],
      phase: 'Failed',
      attempt: 0,
      cond: ['Failed', 'True', 'NonRetryableFailure'],
    },
  ];
  for (const r of rows) {
    const d = decide(job({}, running), r.pods);
    t.is(d.status.phase, r.phase, r.name);
    t.is(d.create, r.create ?? false, `${r.name}: create`);
    if (r.deletePods !== undefined) t.is<string | undefined, string>(d.deletePods, r.deletePods, `${r.name}: deletePods`);
    if (r.attempt !== undefined) t.is(d.status.attempt, r.attempt, `${r.name}: attempt`);
    if (r.restarts !== undefined) t.is(d.status.restarts?.total, r.restarts, `${r.name}: restarts`);
    if (r.cond !== undefined) {
      t.is(condOf(d, r.cond[0]), r.cond[1], `${r.name}: ${r.cond[0]}`);
      t.is(reasonOf(d, r.cond[0]), r.cond[2], `${r.name}: reason`);
    }
    t.is(d.status.observedGeneration, 3, `${r.name}: observedGeneration`);
  }
});

test('status - a gang cut short by an operator restart (pods created, Created not yet recorded) is completed, not restarted', (t) => {
  // Operator A created rank 0 and died before creating rank 1 and writing the status.
  const cutShort: GmtFineTuneStatus = { phase: 'Pending', attempt: 0, restarts: { total: 0 } };
  for (const state of ['running', 'pending'] as const) {
    const d = decide(job({}, cutShort), [pod(0, state)]);
    t.true(d.create, `${state}: the missing rank is created`);
    t.is(d.status.attempt, 0, `${state}: same attempt`);
    t.is(d.status.restarts?.total, 0, `${state}: no restart`);
    t.is(condOf(d, 'Created'), 'True', `${state}: Created recorded`);
  }
  // Once Created is recorded, a missing rank of a started gang is lost: that is a restart.
  t.is(decide(job({}, running), [pod(0, 'running')]).status.attempt, 1);
});

test('status - restarts are counted by cause and stop at backoffLimit', (t) => {
  const d = decide(job({ runPolicy: { backoffLimit: 2 } }, { ...running, restarts: { total: 1, retryable: 1 } }), [pod(0, 'running'), pod(1, { exit: 137 })]);
  t.deepEqual(d.status.restarts, { total: 2, retryable: 1, other: 1 });
  t.true(d.events.some((e) => e.type === 'Warning' && e.reason === 'PodFailed'));
  const e = decide(job({ runPolicy: { backoffLimit: 2 } }, { ...running, restarts: { total: 2, retryable: 2 } }), [pod(0, 'running'), pod(1, { exit: 75 })]);
  t.is(e.status.phase, 'Failed');
  t.is(reasonOf(e, 'Failed'), 'BackoffLimitExceeded');
  t.is(e.status.attempt, 0);
});

test('status - a new attempt waits for the previous attempt’s pods to go', (t) => {
  const d = decide(job({}, { ...running, attempt: 1 }), [], { otherPods: 2 });
  t.false(d.create);
  t.is(d.status.phase, 'Pending');
  t.true(decide(job({}, { ...running, attempt: 1 }), []).create);
});

test('status - progress is folded in; older attempts are ignored; no progress past the deadline → Stalled restart', (t) => {
  const msg = {
    attempt: 0,
    step: 7,
    totalSteps: 20,
    epoch: 0,
    loss: 1.5,
    samplesPerSecond: 10,
    tokensPerSecond: 320,
    keptRatio: 0.8,
    lastCheckpoint: '/c/step-00000005',
    phase: 'training',
    backend: 'tensorflow/cpu',
  };
  const d = decide(job({}, running), [pod(0, 'running'), pod(1, 'running')], { progress: { message: msg, receivedAt: T0 + 9000, stepChangedAt: T0 + 9000 } });
  t.like(d.status, {
    step: 7,
    totalSteps: 20,
    progress: '7/20',
    loss: 1.5,
    keptRatio: 0.8,
    lastCheckpoint: '/c/step-00000005',
    lastProgressTime: formatTime(T0 + 9000),
    backend: 'tensorflow/cpu',
  });
  const old = decide(job({}, { ...running, attempt: 1 }), [pod(0, 'running', 1), pod(1, 'running', 1)], {
    progress: { message: msg, receivedAt: T0, stepChangedAt: T0 },
  });
  t.is(old.status.step, undefined);
  const spec = { runPolicy: { progressDeadlineSeconds: 60 } };
  const fresh = decide(job(spec, { ...running, step: 7, lastProgressTime: formatTime(T0) }), [pod(0, 'running'), pod(1, 'running')], { now: T0 + 30_000 });
  t.is(fresh.status.phase, 'Running');
  t.is(fresh.requeueAfterMs, 30_000);
  const stalled = decide(job(spec, { ...running, step: 7, lastProgressTime: formatTime(T0) }), [pod(0, 'running'), pod(1, 'running')], { now: T0 + 61_000 });
  t.is(condOf(stalled, 'Stalled'), 'True');
  t.is(stalled.status.phase, 'Restarting');
  t.deepEqual(stalled.status.restarts, { total: 1, stalled: 1 });
});

test('status - activeDeadlineSeconds fails the job; TTL deletes it when due', (t) => {
  const d = decide(job({ runPolicy: { activeDeadlineSeconds: 5 } }, running), [pod(0, 'running'), pod(1, 'running')]);
  t.is(reasonOf(d, 'Failed'), 'DeadlineExceeded');
  t.is(d.deletePods, 'active');
  const done: GmtFineTuneStatus = {
    phase: 'Succeeded',
    completionTime: formatTime(T0),
    conditions: [{ type: 'Succeeded', status: 'True', lastTransitionTime: formatTime(T0), reason: 'TrainingCompleted', message: '' }],
  };
  const early = decide(job({ runPolicy: { ttlSecondsAfterFinished: 60 } }, done), [], { now: T0 + 10_000 });
  t.false(early.deleteJob);
  t.is(early.requeueAfterMs, 50_000);
  t.true(decide(job({ runPolicy: { ttlSecondsAfterFinished: 60 } }, done), [], { now: T0 + 60_000 }).deleteJob);
});

test('status - suspend deletes every pod; resume starts a fresh attempt without counting a restart', (t) => {
  const s = decide(job({ runPolicy: { suspend: true } }, running), [pod(0, 'running'), pod(1, 'running')]);
  t.is(s.status.phase, 'Suspended');
  t.is(s.deletePods, 'all');
  t.is(condOf(s, 'Suspended'), 'True');
  t.is(s.status.startTime, undefined, 'active deadline restarts on resume');
  const r = decide(job({}, s.status), []);
  t.is(r.status.attempt, 1);
  t.is(r.status.restarts?.total, 0);
  t.is(condOf(r, 'Suspended'), 'False');
  t.true(r.events.some((e) => e.reason === 'JobResumed'));
});

test('status - 2+ workers without any NATS URL is an invalid spec', (t) => {
  const d = decide(job(), [], { natsUrl: '' });
  t.is(reasonOf(d, 'Failed'), 'InvalidSpec');
  t.false(d.create);
});

test('status - nothing changes when nothing happened (no write)', (t) => {
  const first = decide(job({}, running), [pod(0, 'running'), pod(1, 'running')]);
  const again = decide(job({}, first.status), [pod(0, 'running'), pod(1, 'running')]);
  t.deepEqual(again.status, first.status);
  t.deepEqual(again.events, []);
});

test('status - every worker succeeded: step is the total even when the final progress message was missed', (t) => {
  const d = decide(job({}, { ...running, step: 5, totalSteps: 24, progress: '5/24' }), [pod(0, 'succeeded'), pod(1, 'succeeded')]);
  t.is(d.status.phase, 'Succeeded');
  t.is(d.status.step, 24);
  t.is(d.status.progress, '24/24');
});
