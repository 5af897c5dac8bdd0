// The operator's progress subscription when NATS cannot be reached: one error-level line that says
// what is wrong and what to check (not a line per retry), and an info line once a real
// nats-server comes up on that address.
import test from 'ava';
import { createServer } from 'node:net';
import { ProgressTracker } from '../../../operator/src/controller/progress.js';
import { startNatsServer } from '../../../trainer/src/collective/nats/index.js';
import { ensureBinary } from '../../harness/binaries.js';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('progress - unreachable NATS: one error line naming the URL and the flag, then "subscribed" when it comes up', async (t) => {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const lines: Array<{ level: string; line: string }> = [];
  const tracker = new ProgressTracker({ natsUrl: url, sink: { add: () => undefined }, log: (line, level) => lines.push({ level: level ?? 'info', line }) });
  tracker.start();
  try {
    await sleep(4000); // attempts at 0, 0.5, 1.5 and 3.5 s
    const errors = lines.filter((l) => l.level === 'error');
    t.is(errors.length, 1, JSON.stringify(lines));
    t.true(errors[0]!.line.startsWith(`cannot reach NATS at ${url} (`), errors[0]!.line);
    t.regex(errors[0]!.line, /check --nats-url \(GMT_NATS_URL\)/);
    t.is(lines.length, 1, 'no line per retry');
    const server = await startNatsServer({ binary: await ensureBinary('nats-server'), port });
    try {
      const deadline = Date.now() + 40_000;
      while (!tracker.connected && Date.now() < deadline) await sleep(100);
      t.true(tracker.connected);
      t.true(
        lines.some((l) => l.level === 'info' && l.line.startsWith('subscribed to')),
        JSON.stringify(lines),
      );
    } finally {
      await tracker.close();
      await server.stop();
    }
  } finally {
    await tracker.close();
  }
});
