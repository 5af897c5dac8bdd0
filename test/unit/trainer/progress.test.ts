import test from 'ava';
import { EtaEstimator, createProgress, formatEta } from '../../../trainer/src/progress.js';

test('progress - the ETA ignores the warm-up and follows the steady step time', (t) => {
  const e = new EtaEstimator(3, 0.1);
  // Step 1 completes 40 s after start (evaluation before training, compilation); then 0.8 s per step.
  let time = 40;
  e.observe(1, time);
  t.is(e.remaining(200), undefined, 'no estimate from one point');
  for (let s = 2; s <= 10; s++) {
    time += s <= 3 ? 3 : 0.8;
    e.observe(s, time);
  }
  t.is(e.remaining(200)!.toFixed(6), (190 * 0.8).toFixed(6), 'the steps before the warm-up ended are not counted');
  for (let s = 11; s <= 100; s++) {
    time += 0.4;
    e.observe(s, time);
  }
  const left = e.remaining(200)!;
  t.true(Math.abs(left - 100 * 0.4) < 1, `follows a faster rate: ${left}`);
});

test('progress - formatEta', (t) => {
  t.is(formatEta(undefined), '…');
  t.is(formatEta(42.4), '42s');
  t.is(formatEta(185), '3m05s');
  t.is(formatEta(3720), '1h02m');
});

/** A write stream stand-in capturing text (not a TTY). */
function capture(): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const stream = {
    isTTY: false,
    write: (s: string) => {
      out += s;
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  return { stream, text: () => out };
}

test('progress - plain lines: a repeated final step is not printed twice, notes come in order', (t) => {
  const c = capture();
  let now = 0;
  const p = createProgress('plain', c.stream, () => now);
  for (let s = 1; s <= 20; s++) {
    now += 1000;
    p.update({ step: s, total: 20, fields: { loss: '1.0000' } });
  }
  p.update({ step: 20, total: 20, fields: { loss: '1.0000' } });
  p.done();
  p.note('[gmt-train] eval after: …');
  const lines = c.text().trim().split('\n');
  t.is(lines.filter((l) => l.startsWith('[progress] 20/20')).length, 1);
  t.is(lines.at(-1), '[gmt-train] eval after: …');
  t.regex(lines.at(-2)!, /ETA 0s$/);
  t.regex(lines[0]!, /^\[progress\] 1\/20 loss 1\.0000 · ETA …$/);
});
