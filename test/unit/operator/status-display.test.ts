// status additions: evaluation results from the progress messages, rounded display values, the
// visible reason and the startup deadline. Pure: computeStatus with a fixed clock.
import test from 'ava';
import {
  API_VERSION,
  KIND,
  PRINTER_COLUMNS,
  computeDisplay,
  formatForDisplay,
  parseGmtFineTune,
  type GmtFineTune,
  type GmtFineTuneSpecInput,
  type GmtFineTuneStatus,
} from '../../../operator/src/api/index.js';
import { computeStatus, formatTime, type Decision, type PodView, type ProgressSnapshot } from '../../../operator/src/controller/index.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function job(spec: Partial<GmtFineTuneSpecInput> = {}, status?: GmtFineTuneStatus): GmtFineTune {
  const r = parseGmtFineTune({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'j', namespace: 'ns', uid: 'u-1', generation: 1 },
    spec: { image: 'img', workers: 2, ...spec },
    ...(status !== undefined ? { status } : {}),
  });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

function waitingPod(rank: number, reason: string, message: string): PodView {
  return {
    metadata: { name: `j-a0-r${rank}`, namespace: 'ns', labels: { 'gmt.dev/rank': String(rank), 'gmt.dev/attempt': '0' } },
    status: { phase: 'Pending', containerStatuses: [{ name: 'trainer', state: { waiting: { reason, message } } }] },
  };
}
function runningPod(rank: number): PodView {
  return {
    metadata: { name: `j-a0-r${rank}`, namespace: 'ns', labels: { 'gmt.dev/rank': String(rank), 'gmt.dev/attempt': '0' } },
    status: { phase: 'Running' },
  };
}

const created: GmtFineTuneStatus = {
  phase: 'Pending',
  attempt: 0,
  restarts: { total: 0 },
  conditions: [
    { type: 'Created', status: 'True', lastTransitionTime: formatTime(T0), reason: 'ChildrenCreated', message: 'created 2 worker pods for attempt 0' },
  ],
};

function decide(j: GmtFineTune, pods: PodView[], now: number, progress?: ProgressSnapshot): Decision {
  return computeStatus({ job: j, pods, otherPods: 0, progress, natsUrl: 'nats://n:4222', now });
}

test('status - display rounds loss, throughput and kept ratio; exact match and eval loss read before → after', (t) => {
  const rows: Array<{ s: GmtFineTuneStatus; want: ReturnType<typeof computeDisplay> }> = [
    { s: {}, want: {} },
    { s: { loss: 0.9722440242767334, samplesPerSecond: 41.26666, keptRatio: 0.80000001 }, want: { loss: '0.9722', samplesPerSecond: '41.3', kept: '80.0%' } },
    { s: { evaluation: { before: { loss: 1.23456, exactMatch: 0.105 } } }, want: { exactMatch: '10.5%', evalLoss: '1.2346' } },
    {
      s: { evaluation: { before: { loss: 1.23456, exactMatch: 0.105 }, last: { loss: 0.9, exactMatch: 0.3, step: 100 } } },
      want: { exactMatch: '10.5% → 30.0%', evalLoss: '1.2346 → 0.9000' },
    },
    {
      s: { evaluation: { before: { exactMatch: 0.105 }, last: { exactMatch: 0.3 }, after: { loss: 0.5, exactMatch: 0.485 } } },
      want: { exactMatch: '10.5% → 48.5%', evalLoss: '0.5000' },
    },
  ];
  for (const r of rows) t.deepEqual(computeDisplay(r.s), r.want, JSON.stringify(r.s));
  t.is(formatForDisplay.percent(1), '100.0%');
  t.is(formatForDisplay.loss(Number.NaN), 'NaN');
});

test('status - printer columns show the rounded strings and the reason', (t) => {
  const byName = Object.fromEntries(PRINTER_COLUMNS.map((c) => [typeof c['name'] === 'string' ? c['name'] : '', c]));
  t.is(byName['Loss']?.['jsonPath'], '.status.display.loss');
  t.is(byName['Samples/s']?.['jsonPath'], '.status.display.samplesPerSecond');
  t.is(byName['Kept']?.['jsonPath'], '.status.display.kept');
  t.is(byName['Exact-Match']?.['jsonPath'], '.status.display.exactMatch');
  t.is(byName['Reason']?.['jsonPath'], '.status.reason');
});

test('status - evaluations from progress messages land in status, and a resumed attempt keeps the earlier "before"', (t) => {
  const msg = (m: Record<string, unknown>): ProgressSnapshot => ({
    message: { attempt: 0, step: 10, totalSteps: 20, ...m },
    receivedAt: T0 + 5000,
    stepChangedAt: T0 + 5000,
  });
  const j = job({}, { ...created, phase: 'Running' });
  const d1 = decide(
    j,
    [runningPod(0), runningPod(1)],
    T0 + 6000,
    msg({
      loss: 0.97224402,
      keptRatio: 0.8,
      samplesPerSecond: 12.345,
      evaluation: { before: { loss: 2.5, exactMatch: 0.1, examples: 200, step: 0 }, last: null },
    }),
  );
  t.deepEqual(d1.status.evaluation, { before: { loss: 2.5, exactMatch: 0.1, examples: 200, step: 0 } });
  t.deepEqual(d1.status.display, { loss: '0.9722', samplesPerSecond: '12.3', kept: '80.0%', exactMatch: '10.0%', evalLoss: '2.5000' });
  // A later message without "before" (a resumed attempt) adds "after" and keeps "before".
  const j2 = job({}, { ...d1.status });
  const d2 = decide(
    j2,
    [runningPod(0), runningPod(1)],
    T0 + 9000,
    msg({ step: 20, phase: 'finished', evaluation: { after: { loss: 1.1, exactMatch: 0.45, examples: 200, step: 20 } } }),
  );
  t.deepEqual(d2.status.evaluation, {
    before: { loss: 2.5, exactMatch: 0.1, examples: 200, step: 0 },
    after: { loss: 1.1, exactMatch: 0.45, examples: 200, step: 20 },
  });
  t.is(d2.status.display?.exactMatch, '10.0% → 45.0%');
  // Out-of-range values are dropped, not written.
  const d3 = decide(
    job({}, { ...created, phase: 'Running' }),
    [runningPod(0), runningPod(1)],
    T0 + 6000,
    msg({ evaluation: { last: { loss: 1, exactMatch: 7 } } }),
  );
  t.deepEqual(d3.status.evaluation, { last: { loss: 1 } });
});

const startCases = [
  { reason: 'ImagePullBackOff', message: 'Back-off pulling image "gmt-trainer:nope"' },
  { reason: 'ErrImagePull', message: 'image not found' },
  { reason: 'CreateContainerConfigError', message: 'secret "nats" not found' },
] as const;
for (const c of startCases) {
  test(`status - startup deadline: ${c.reason} is shown at once with an event, and fails the job after spec.runPolicy.startupDeadlineSeconds`, (t) => {
    const j = job({ runPolicy: { startupDeadlineSeconds: 120 } }, created);
    const pods = [waitingPod(0, c.reason, c.message), runningPod(1)];
    const early = decide(j, pods, T0 + 30_000);
    t.is(early.status.phase, 'Pending');
    t.is(early.status.reason, c.reason);
    t.deepEqual(
      early.events.map((e) => [e.type, e.reason]),
      [['Warning', 'WorkersCannotStart']],
    );
    t.regex(early.events[0]!.message, new RegExp(`${c.reason}: .*within 120 s`));
    t.is(early.requeueAfterMs, 90_000, 'reconcile again when the deadline passes');
    // The same problem on the next reconcile: no second event.
    const again = decide(job({ runPolicy: { startupDeadlineSeconds: 120 } }, early.status), pods, T0 + 60_000);
    t.deepEqual(again.events, []);
    const late = decide(job({ runPolicy: { startupDeadlineSeconds: 120 } }, again.status), pods, T0 + 120_000);
    t.is(late.status.phase, 'Failed');
    t.is(late.status.reason, c.reason);
    const failed = late.status.conditions?.find((x) => x.type === 'Failed');
    t.is(failed?.reason, c.reason);
    t.regex(failed?.message ?? '', /could not start within spec\.runPolicy\.startupDeadlineSeconds \(120 s\)/);
    t.is(late.deletePods, 'active');
    t.true(late.events.some((e) => e.type === 'Warning' && e.reason === c.reason));
  });
}

test('status - startup deadline: unschedulable pods fail after the default deadline (600 s); plain pending pods never do', (t) => {
  const unsched: PodView = {
    metadata: { name: 'j-a0-r0', namespace: 'ns', labels: { 'gmt.dev/rank': '0', 'gmt.dev/attempt': '0' } },
    status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes have nvidia.com/gpu' }] },
  };
  t.is(job().spec.runPolicy.startupDeadlineSeconds, 600);
  t.is(decide(job({}, created), [unsched, runningPod(1)], T0 + 599_000).status.phase, 'Pending');
  const d = decide(job({}, created), [unsched, runningPod(1)], T0 + 600_000);
  t.is(d.status.phase, 'Failed');
  t.is(d.status.reason, 'Unschedulable');
  const plain: PodView = {
    metadata: { name: 'j-a0-r0', namespace: 'ns', labels: { 'gmt.dev/rank': '0', 'gmt.dev/attempt': '0' } },
    status: { phase: 'Pending' },
  };
  const p = decide(job({}, created), [plain, runningPod(1)], T0 + 10 * 600_000);
  t.is(p.status.phase, 'Pending');
  t.is(p.status.reason, undefined);
});

test('status - the reason clears once the workers run', (t) => {
  const j = job({}, { ...created, reason: 'ImagePullBackOff' });
  const d = decide(j, [runningPod(0), runningPod(1)], T0 + 10_000);
  t.is(d.status.phase, 'Running');
  t.is(d.status.reason, undefined);
});
