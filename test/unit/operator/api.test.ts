// The GmtFineTune zod schemas: defaults, the examples, the status shape, and the spec → trainer
// config mapping (a valid spec never produces a config the trainer rejects).

import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { TrainerConfigSchema } from '../../../contract/config.js';
import {
  API_VERSION,
  computeProgress,
  computeTrainerConfig,
  CONDITION_TYPES,
  FIELD_MANAGER,
  GmtFineTuneSpecSchema,
  GmtFineTuneStatusSchema,
  KIND,
  LABELS,
  parseGmtFineTune,
  type GmtFineTuneSpecInput,
} from '../../../operator/src/api/index.js';
import { repoPath } from '../../helpers/repo.js';

const minimal = (spec: Partial<GmtFineTuneSpecInput> = {}): unknown => ({
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: 'job' },
  spec: { image: 'img:1', ...spec },
});

test('api - names and constants', (t) => {
  t.is(API_VERSION, 'gmt.dev/v1alpha1');
  t.is(FIELD_MANAGER, 'gmt-operator');
  t.deepEqual(LABELS.job, 'gmt.dev/job');
  t.deepEqual(Object.values(CONDITION_TYPES), ['Created', 'Running', 'Restarting', 'Suspended', 'Succeeded', 'Failed', 'Stalled']);
});

test('api - a minimal spec gets the trainer defaults', (t) => {
  const r = parseGmtFineTune(minimal());
  if (!r.ok) return t.fail(r.error);
  const s = r.value.spec;
  t.is(s.workers, 1);
  t.deepEqual(s.method, { name: 'gmt', maskRatio: 0.2, maskScope: 'tensor', maskMode: 'update', tieRule: 'all', oneoffMode: 'magnitude' });
  t.is(s.optimizer.lr, 1e-3);
  t.is(s.training.steps, 300);
  t.deepEqual(s.checkpoint.volume, { emptyDir: {} });
  t.deepEqual(s.runPolicy, { suspend: false, backoffLimit: 3, progressDeadlineSeconds: 600, startupDeadlineSeconds: 600 });
});

const INVALID: readonly [string, Partial<GmtFineTuneSpecInput> | Record<string, unknown>, RegExp][] = [
  ['maskRatio 1', { method: { maskRatio: 1 } }, /spec\.method\.maskRatio/],
  ['negative lr', { optimizer: { lr: -1 } }, /spec\.optimizer\.lr/],
  ['workers 0', { workers: 0 }, /spec\.workers/],
  ['unknown method', { method: { name: 'lora' } }, /spec\.method\.name/],
  ['steps 0', { training: { steps: 0 } }, /spec\.training\.steps/],
  ['empty image', { image: '' }, /spec\.image/],
  ['bad dataset', { dataset: { train: 'relative/path.jsonl' } }, /spec\.dataset\.train/],
  ['negative backoffLimit', { runPolicy: { backoffLimit: -1 } }, /spec\.runPolicy\.backoffLimit/],
  ['bad quantity', { resources: { limits: { cpu: 'lots' } } }, /spec\.resources\.limits\.cpu/],
  ['momentum with adamw', { optimizer: { momentum: 0.9 } }, /spec\.optimizer\.momentum/],
  ['two checkpoint volumes', { checkpoint: { volume: { emptyDir: {}, persistentVolumeClaim: { claimName: 'c' } } } }, /spec\.checkpoint\.volume/],
  ['GPU request without a limit', { resources: { requests: { 'nvidia.com/gpu': 1 } } }, /spec\.resources\.limits/],
];

for (const [name, spec, field] of INVALID) {
  test(`api - rejects ${name}, naming the field`, (t) => {
    const r = parseGmtFineTune(minimal(spec));
    t.false(r.ok);
    if (!r.ok) t.regex(r.error, field);
  });
}

test('api - every example parses, and its trainer config is accepted by the trainer', async (t) => {
  const files = (await readdir(repoPath('examples'))).filter((f) => f.endsWith('.yaml'));
  t.true(files.length >= 3);
  for (const f of files) {
    const r = parseGmtFineTune(parse(await readFile(repoPath('examples', f), 'utf8')));
    if (!r.ok) {
      t.fail(`${f}: ${r.error}`);
      continue;
    }
    const cfg = computeTrainerConfig(r.value.spec);
    const trainer = TrainerConfigSchema.safeParse({ ...cfg, natsUrl: 'nats://127.0.0.1:4222' });
    t.true(trainer.success, `${f}: ${trainer.error?.message ?? ''}`);
  }
});

test('api - boundary specs map to configs the trainer accepts', (t) => {
  const specs: Partial<GmtFineTuneSpecInput>[] = [
    { workers: 1024, method: { name: 'random', maskRatio: 0.999999 }, training: { steps: 1, microBatchSize: 1, seqLen: 2 } },
    { method: { name: 'oneoff', maskRatio: 0, oneoffMode: 'dare' }, optimizer: { name: 'sgd', momentum: 0.9, lr: 10 } },
    { model: { source: 'pvc://models/base/step-00000100' }, dataset: { train: '/data/train.jsonl', eval: 'synthetic:symbolic?maxSteps=3' } },
  ];
  for (const spec of specs) {
    const parsed = GmtFineTuneSpecSchema.parse({ image: 'i', ...spec });
    const r = TrainerConfigSchema.safeParse({ ...computeTrainerConfig(parsed), natsUrl: 'nats://x:4222' });
    t.true(r.success, JSON.stringify(spec) + ' ' + (r.error?.message ?? ''));
  }
});

test('api - status: conditions in metav1.Condition shape; progress text', (t) => {
  const ok = GmtFineTuneStatusSchema.safeParse({
    phase: 'Running',
    conditions: [
      {
        type: 'Running',
        status: 'True',
        observedGeneration: 1,
        lastTransitionTime: '2026-01-01T00:00:00Z',
        reason: 'WorkersRunning',
        message: '2/2 workers running',
      },
    ],
    restarts: { total: 1, retryable: 1 },
    step: 5,
    totalSteps: 20,
    progress: '5/20',
    loss: 1.5,
    keptRatio: 0.8,
    workers: { active: 2, succeeded: 0, failed: 0 },
  });
  t.true(ok.success, ok.error?.message);
  t.false(
    GmtFineTuneStatusSchema.safeParse({
      conditions: [{ type: 'Running', status: 'Yes', lastTransitionTime: '2026-01-01T00:00:00Z', reason: 'X', message: '' }],
    }).success,
  );
  t.false(GmtFineTuneStatusSchema.safeParse({ phase: 'Stalled' }).success);
  t.is(computeProgress(5, 20), '5/20');
  t.is(computeProgress(undefined, 20), undefined);
});
