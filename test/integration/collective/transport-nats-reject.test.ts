// Forged and malformed frames published raw on a job's own subjects are rejected and counted by
// reason, never delivered, and the real messages still arrive intact.
import test from 'ava';
import { checksum, encodeCreditFrame, encodeDataFrame, jobHash, type DataFrameFields, type WireIdentity } from '../../../trainer/src/collective/nats/wire.js';
import { attemptSubjects, type NatsServerHandle } from '../../../trainer/src/collective/nats/index.js';
import { closeAll, connectGang, pattern, rawConnection, sameBytes, startServer, until } from './nats-fixtures.js';

let server: NatsServerHandle;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => {
  await server.stop();
});

const JOB = 'forge-job';
const ATTEMPT = 3;
const STEP = 5;
const CHUNK = 32 * 1024;

/** Fields of a forged single-chunk message from rank 0 to rank 1. */
function forged(over: Partial<DataFrameFields> = {}): DataFrameFields {
  const payload = over.payload ?? pattern(99, 100);
  return {
    source: 0,
    step: STEP,
    phase: 'reduce_scatter',
    broadcast: false,
    dest: 1,
    tag: 7,
    chunkIndex: 0,
    chunkCount: 1,
    totalLength: payload.length,
    chunkSize: CHUNK,
    messageCrc: checksum(payload),
    payload,
    ...over,
  };
}

test('nats transport - forged frames are rejected by reason and real messages arrive intact', async (t) => {
  const { transports, recorders } = await connectGang(server.url, 2, { jobId: JOB, attempt: ATTEMPT, chunkBytes: CHUNK, creditWindow: 2 });
  const raw = await rawConnection(server.url);
  try {
    const [a, b] = transports;
    const rec = recorders[1];
    if (a === undefined || b === undefined || rec === undefined) throw new Error('gang of 2 expected');
    const id: WireIdentity = { jobHash: jobHash(JOB), attempt: ATTEMPT };
    const subjects = attemptSubjects(JOB, ATTEMPT);
    const toRank1 = subjects.data('reduce_scatter', 1);
    const real = pattern(1, 10 * CHUNK + 17);
    const realBroadcast = pattern(2, 3 * CHUNK);
    // Post the receives first: they set rank 1's current step (the step window's centre).
    const gotReal = b.recv(0, STEP, 'reduce_scatter', 7);
    const gotBroadcast = b.recv(0, STEP, 'all_gather', 7);

    const badPayload = encodeDataFrame(id, forged());
    badPayload[badPayload.length - 1] = (badPayload[badPayload.length - 1] ?? 0) ^ 1;
    const otherJob = { jobHash: jobHash('other-job'), attempt: ATTEMPT };
    const frames: [string, Uint8Array, string][] = [
      ['stale attempt', encodeDataFrame({ ...id, attempt: ATTEMPT - 1 }, forged()), toRank1],
      ['wrong step', encodeDataFrame(id, forged({ step: STEP + 1000 })), toRank1],
      ['old step', encodeDataFrame(id, forged({ step: 0 })), toRank1],
      ['bad checksum', badPayload, toRank1],
      ['truncated header', encodeDataFrame(id, forged()).subarray(0, 33), toRank1],
      ['oversized length', encodeDataFrame(id, forged({ totalLength: 2 ** 40, chunkCount: 2 ** 40 / CHUNK })), toRank1],
      ['another job id', encodeDataFrame(otherJob, forged()), toRank1],
      ['phase differs from subject', encodeDataFrame(id, forged({ phase: 'threshold' })), toRank1],
      ['addressed to rank 0', encodeDataFrame(id, forged({ dest: 0 })), toRank1],
      ['garbage', pattern(5, 200), toRank1],
      ['broadcast flag on a unicast subject', encodeDataFrame(id, forged({ broadcast: true })), toRank1],
      ['unicast frame on the broadcast subject', encodeDataFrame(id, forged({ phase: 'all_gather' })), subjects.broadcast('all_gather')],
      ['credit for more chunks than sent', encodeCreditFrame(id, { source: 0, sender: 1, consumed: 1000 }), subjects.credit(1)],
      ['data frame on the heartbeat subject', encodeDataFrame(id, forged()), subjects.heartbeat],
    ];
    // Interleave the forgeries with the real transfers (credit window 2 keeps them in flight).
    const sending = Promise.all([a.send(1, STEP, 'reduce_scatter', 7, real), a.broadcast(STEP, 'all_gather', 7, realBroadcast)]);
    for (const [, bytes, subject] of frames) raw.publish(subject, bytes);
    // Another job's subject: rank 1 is not subscribed to it, so nothing is even counted.
    raw.publish(attemptSubjects('other-job', ATTEMPT).data('reduce_scatter', 1), encodeDataFrame(otherJob, forged()));
    await raw.flush();
    await sending;
    t.true(sameBytes(await gotReal, real), 'real point-to-point message intact');
    t.true(sameBytes(await gotBroadcast, realBroadcast), 'real broadcast intact');
    await until(() => rec.rejects.length >= frames.length, 5000, `${frames.length} rejections`);
    t.deepEqual(
      {
        wrong_attempt: rec.count('wrong_attempt'),
        wrong_step: rec.count('wrong_step'),
        bad_checksum: rec.count('bad_checksum'),
        wrong_job: rec.count('wrong_job'),
        wrong_phase: rec.count('wrong_phase'),
        malformed: rec.count('malformed'),
      },
      { wrong_attempt: 1, wrong_step: 2, bad_checksum: 1, wrong_job: 1, wrong_phase: 1, malformed: 8 },
      JSON.stringify(rec.rejects, null, 1),
    );

    // A forged chunk with the full identity of a message already delivered is a duplicate.
    raw.publish(
      toRank1,
      encodeDataFrame(id, forged({ payload: real.subarray(0, CHUNK), totalLength: real.length, chunkCount: 11, messageCrc: checksum(real) })),
    );
    await raw.flush();
    await until(() => rec.count('duplicate_chunk') === 1, 5000, 'a duplicate_chunk rejection');
    t.true(transports.every((tr) => tr.failure === undefined));
    // Rank 0 also hears the two frames on shared subjects (broadcast, heartbeat): both malformed.
    t.deepEqual(
      recorders[0]?.rejects.map((r) => r.reason),
      ['malformed', 'malformed'],
    );
  } finally {
    await raw.close();
    await closeAll(transports);
  }
});
