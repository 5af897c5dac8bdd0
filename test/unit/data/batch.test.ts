import test from 'ava';
import { DataError } from '../../../trainer/src/errors.js';
import {
  DataCursorSchema,
  START_CURSOR,
  advanceCursor,
  buildBatch,
  datasetFingerprint,
  epochOrder,
  globalBatchSlice,
  nextBatch,
  nextGlobalBatch,
  takeExamples,
  type Batch,
  type DataCursor,
} from '../../../trainer/src/data/index.js';
import { exampleOf, syntheticDataset } from './helpers.js';

test('data - buildBatch shapes, right padding and shifted targets', (t) => {
  const PAD = 9;
  const batch = buildBatch([exampleOf([1, 2, 3, 4], [2, 3]), exampleOf([5, 6], [1])], 5, PAD);
  t.like(batch, { batchSize: 2, seqLen: 5, tokens: 6, lossTokens: 3 });
  t.deepEqual(Array.from(batch.inputs), [1, 2, 3, 4, PAD, 5, 6, PAD, PAD, PAD]);
  // targets[t] = ids[t+1] where lossMask[t+1] = 1, else −1.
  t.deepEqual(Array.from(batch.targets), [-1, 3, 4, -1, -1, 6, -1, -1, -1, -1]);
});

test('data - buildBatch rejects examples longer than seqLen and empty batches', (t) => {
  t.throws(() => buildBatch([exampleOf([1, 2, 3], [1])], 2, 0), { instanceOf: RangeError });
  t.throws(() => buildBatch([], 4, 0), { instanceOf: RangeError });
});

test('data - shuffle is a deterministic permutation per (seed, epoch)', (t) => {
  const n = 50;
  const a = epochOrder(7, 0, n);
  t.deepEqual(
    [...a].sort((x, y) => x - y),
    Array.from({ length: n }, (_, i) => i),
  );
  t.deepEqual(epochOrder(8, 3, n), epochOrder(8, 3, n));
  t.deepEqual([...epochOrder(7, 0, n)], [...a], 'recomputing after other calls gives the same order');
  t.notDeepEqual([...epochOrder(7, 1, n)], [...a], 'epochs differ');
  t.notDeepEqual([...epochOrder(8, 0, n)], [...a], 'seeds differ');
  t.true(Object.isFrozen(a));
});

test('data - an epoch visits every example exactly once', (t) => {
  const ds = syntheticDataset(13);
  const { examples, cursor } = takeExamples(ds, 1, START_CURSOR, 13);
  t.deepEqual(new Set(examples).size, 13);
  t.deepEqual(cursor, { epoch: 1, index: 0 });
});

function drawBatches(
  ds: ReturnType<typeof syntheticDataset>,
  seed: number,
  from: DataCursor,
  count: number,
  size: number,
): { batches: Batch[]; cursor: DataCursor } {
  const batches: Batch[] = [];
  let cursor = from;
  for (let i = 0; i < count; i++) {
    const r = nextBatch(ds, seed, cursor, size);
    batches.push(r.batch);
    cursor = r.cursor;
  }
  return { batches, cursor };
}

const resumeCases = [
  { n: 7, batchSize: 3 },
  { n: 10, batchSize: 4 },
  { n: 3, batchSize: 5 }, // batches larger than an epoch
];
for (const { n, batchSize } of resumeCases) {
  test(`data - 10 batches straight equal 5 + 5 resumed from a saved cursor (n=${n}, B=${batchSize})`, (t) => {
    const ds = syntheticDataset(n);
    const straight = drawBatches(ds, 42, START_CURSOR, 10, batchSize);
    const first = drawBatches(ds, 42, START_CURSOR, 5, batchSize);
    // The cursor goes through JSON and the schema, as it would through trainer-state.json.
    const saved = DataCursorSchema.parse(JSON.parse(JSON.stringify(first.cursor)));
    const second = drawBatches(ds, 42, saved, 5, batchSize);
    t.deepEqual([...first.batches, ...second.batches], straight.batches);
    t.deepEqual(second.cursor, straight.cursor);
    t.deepEqual(straight.cursor, advanceCursor(START_CURSOR, 10 * batchSize, n));
  });
}

test('data - batches cross epoch boundaries and stay full', (t) => {
  const ds = syntheticDataset(5);
  const r = nextBatch(ds, 3, { epoch: 0, index: 3 }, 4);
  t.is(r.batch.batchSize, 4);
  t.deepEqual(r.cursor, { epoch: 1, index: 2 });
  const ids = (b: Batch): number[] => Array.from({ length: b.batchSize }, (_, i) => b.inputs[i * b.seqLen]!);
  const e0 = epochOrder(3, 0, 5);
  const e1 = epochOrder(3, 1, 5);
  t.deepEqual(
    ids(r.batch),
    [e0[3]!, e0[4]!, e1[0]!, e1[1]!].map((i) => 1000 + i),
  );
});

test('data - a cursor that does not fit the dataset raises DataError', (t) => {
  const ds = syntheticDataset(5);
  t.throws(() => nextBatch(ds, 1, { epoch: 0, index: 5 }, 2), { instanceOf: DataError });
  t.throws(() => nextBatch(ds, 1, { epoch: -1, index: 0 }, 2), { instanceOf: DataError });
  t.false(DataCursorSchema.safeParse({ epoch: 0, index: 1.5 }).success);
  t.false(DataCursorSchema.safeParse({ epoch: 0, index: 1, extra: 1 }).success);
});

test('data - globalBatchSlice gives rank r micro-step m the slice (r·A + m)·B', (t) => {
  const global = Array.from({ length: 2 * 3 * 2 }, (_, i) => i); // N=2, A=3, B=2
  t.deepEqual(globalBatchSlice(global, { rank: 0, worldSize: 2, microBatch: 2, accumSteps: 3 }), [
    [0, 1],
    [2, 3],
    [4, 5],
  ]);
  t.deepEqual(globalBatchSlice(global, { rank: 1, worldSize: 2, microBatch: 2, accumSteps: 3 }), [
    [6, 7],
    [8, 9],
    [10, 11],
  ]);
  t.throws(() => globalBatchSlice(global, { rank: 2, worldSize: 2, microBatch: 2, accumSteps: 3 }), { instanceOf: RangeError });
  t.throws(() => globalBatchSlice(global.slice(1), { rank: 0, worldSize: 2, microBatch: 2, accumSteps: 3 }), { instanceOf: RangeError });
});

test('data - ranks together cover the global batch that one rank with N·A accumulation sees', (t) => {
  const ds = syntheticDataset(11);
  const single = nextGlobalBatch(ds, 5, START_CURSOR, { rank: 0, worldSize: 1, microBatch: 2, accumSteps: 6 });
  const perRank = [0, 1, 2].map((rank) => nextGlobalBatch(ds, 5, START_CURSOR, { rank, worldSize: 3, microBatch: 2, accumSteps: 2 }));
  t.deepEqual(
    perRank.flatMap((r) => r.microBatches),
    single.microBatches,
  );
  for (const r of perRank) {
    t.deepEqual(r.cursor, single.cursor);
    t.is(r.globalLossTokens, single.globalLossTokens);
    t.is(r.globalTokens, single.globalTokens);
  }
  t.is(
    single.globalLossTokens,
    single.microBatches.reduce((s, b) => s + b.lossTokens, 0),
  );
  t.is(
    single.globalTokens,
    single.microBatches.reduce((s, b) => s + b.tokens, 0),
  );
});

test('data - datasetFingerprint changes with any id or loss-mask bit', (t) => {
  const a = syntheticDataset(6);
  t.is(datasetFingerprint(a), datasetFingerprint(syntheticDataset(6)));
  const b = syntheticDataset(6);
  b.examples[2]!.lossMask[1] = 0;
  t.not(datasetFingerprint(b), datasetFingerprint(a));
  const c = syntheticDataset(6);
  c.examples[5]!.ids[0] = 7;
  t.not(datasetFingerprint(c), datasetFingerprint(a));
  t.not(datasetFingerprint(syntheticDataset(6, 9)), datasetFingerprint(a), 'maxSeqLen is part of it');
});
