// Real nats-server, N = 2, 3, 4 transports in one process: point-to-point and broadcast messages of
// edge-case sizes arrive bit-identical; plus throughput of a 10 MB transfer vs raw pub/sub.
import test from 'ava';
import type { NatsServerHandle } from '../../../trainer/src/collective/nats/index.js';
import { NATS_TRANSPORT_DEFAULTS } from '../../../trainer/src/collective/nats/index.js';
import { closeAll, connectGang, pattern, rawConnection, sameBytes, startServer } from './nats-fixtures.js';

let server: NatsServerHandle;
test.before(async () => {
  server = await startServer();
});
test.after.always(async () => {
  await server.stop();
});

const CHUNK = 64 * 1024;
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 10 * 1024 * 1024];

for (const n of [2, 3, 4]) {
  test(`nats transport - N=${n}: point-to-point and broadcast of sizes 0, 1, chunk±1, chunk, 10 MB arrive bit-identical`, async (t) => {
    const { transports, recorders } = await connectGang(server.url, n, { jobId: `delivery-${n}`, attempt: 1, chunkBytes: CHUNK, creditWindow: 4 });
    try {
      const ops: Promise<unknown>[] = [];
      const checks: Promise<boolean>[] = [];
      let expectedBytes = 0;
      for (const [i, size] of SIZES.entries()) {
        for (let src = 0; src < n; src++) {
          const me = transports[src];
          if (me === undefined) continue;
          ops.push(me.broadcast(1, 'all_gather', i, pattern(1000 * src + i, size)));
          for (let dst = 0; dst < n; dst++) {
            const peer = transports[dst];
            if (dst === src || peer === undefined) continue;
            ops.push(me.send(dst, 1, 'reduce_scatter', i, pattern(100 * src + 10 * dst + i, size)));
            // Half the receives are posted before the matching send resolves, half after.
            checks.push(peer.recv(src, 1, 'reduce_scatter', i).then((got) => sameBytes(got, pattern(100 * src + 10 * dst + i, size))));
            checks.push(peer.recv(src, 1, 'all_gather', i).then((got) => sameBytes(got, pattern(1000 * src + i, size))));
            expectedBytes += 2 * size;
          }
        }
      }
      await Promise.all(ops);
      const ok = await Promise.all(checks);
      t.true(ok.every(Boolean), `${ok.filter((x) => !x).length} of ${ok.length} messages differ`);
      t.deepEqual(
        recorders.flatMap((r) => r.rejects),
        [],
      );
      t.is(
        recorders.reduce((s, r) => s + r.received, 0),
        expectedBytes,
      );
      t.true(transports.every((tr) => tr.failure === undefined));
    } finally {
      await closeAll(transports);
    }
  });
}

test.serial('nats transport - throughput of a 10 MB point-to-point transfer vs raw publish/subscribe', async (t) => {
  const size = 10 * 1024 * 1024;
  const data = pattern(7, size);
  const chunk = NATS_TRANSPORT_DEFAULTS.chunkBytes;
  const reps = 5;
  const { transports } = await connectGang(server.url, 2, { jobId: 'throughput', attempt: 1 });
  let best = 0;
  try {
    const [a, b] = transports;
    if (a === undefined || b === undefined) throw new Error('gang of 2 expected');
    for (let step = 0; step < reps; step++) {
      const t0 = performance.now();
      const [, got] = await Promise.all([a.send(1, step, 'reduce_scatter', 0, data), b.recv(0, step, 'reduce_scatter', 0)]);
      best = Math.max(best, size / 1e6 / ((performance.now() - t0) / 1000));
      t.true(sameBytes(got, data));
    }
  } finally {
    await closeAll(transports);
  }
  const pub = await rawConnection(server.url);
  const sub = await rawConnection(server.url);
  let raw = 0;
  try {
    for (let rep = 0; rep < reps; rep++) {
      let got = 0;
      let done: () => void = () => undefined;
      const finished = new Promise<void>((r) => (done = r));
      const s = sub.subscribe(`raw.bench.${rep}`, {
        callback: (_e, m) => {
          got += m.data.length;
          if (got >= size) done();
        },
      });
      await sub.flush();
      const t0 = performance.now();
      for (let o = 0; o < size; o += chunk) pub.publish(`raw.bench.${rep}`, data.subarray(o, Math.min(size, o + chunk)));
      await finished;
      raw = Math.max(raw, size / 1e6 / ((performance.now() - t0) / 1000));
      s.unsubscribe();
    }
  } finally {
    await pub.close();
    await sub.close();
  }
  t.log(
    `10 MB point-to-point over loopback: NatsTransport ${best.toFixed(0)} MB/s, raw publish→subscribe ${raw.toFixed(0)} MB/s (best of ${reps}, ${chunk / 1024} KiB chunks)`,
  );
  t.true(best > 0 && raw > 0);
});
