import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withDirLock } from '../../trainer/src/dir-lock.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'gmt-dir-lock-'));
}

test('dir-lock - concurrent holders run one at a time and the lock is gone afterwards', async (t) => {
  const dir = await tempDir();
  try {
    const lock = join(dir, 'locks', 'x.lock');
    const events: string[] = [];
    let waits = 0;
    const hold = (name: string) =>
      withDirLock(
        lock,
        () => waits++,
        async () => {
          events.push(`${name}+`);
          await new Promise((r) => setTimeout(r, 150));
          events.push(`${name}-`);
        },
      );
    await Promise.all([hold('a'), hold('b')]);
    t.deepEqual(events, ['a+', 'a-', 'b+', 'b-']);
    t.is(waits, 1);
    await t.throwsAsync(() => import('node:fs/promises').then((fs) => fs.stat(lock)), { code: 'ENOENT' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('dir-lock - a lock left by a dead process is taken over; the holder’s error is passed on and the lock released', async (t) => {
  const dir = await tempDir();
  try {
    const lock = join(dir, 'x.lock');
    await mkdir(lock);
    await writeFile(join(lock, 'pid'), '2147483646'); // no such process
    let waited = false;
    const got = await withDirLock(
      lock,
      () => (waited = true),
      () => Promise.resolve(42),
    );
    t.is(got, 42);
    t.false(waited);
    await t.throwsAsync(
      withDirLock(
        lock,
        () => undefined,
        () => Promise.reject(new Error('boom')),
      ),
      { message: 'boom' },
    );
    const again = await withDirLock(
      lock,
      () => undefined,
      () => Promise.resolve('free'),
    );
    t.is(again, 'free');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
