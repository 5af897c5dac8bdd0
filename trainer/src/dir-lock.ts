// A cross-process lock for setup steps that fill a shared cache (the native backend, the test
// binaries): an exclusive-create directory holding the owner's pid. A lock whose owner is dead, or
// one left without a pid for over 30 s (its owner died between mkdir and writing the pid), is
// taken over.

import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Runs `fn` while holding the lock directory `lockDir`; `onWait` is told once if another process holds it. */
export async function withDirLock<T>(lockDir: string, onWait: (ownerPid: number | undefined) => void, fn: () => Promise<T>): Promise<T> {
  await mkdir(dirname(lockDir), { recursive: true });
  let announced = false;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if (!(err instanceof Error && 'code' in err && err.code === 'EEXIST')) throw err;
      const owner = await lockOwner(lockDir);
      const stale = owner === undefined ? await olderThan(lockDir, 30_000) : !isAlive(owner);
      if (stale) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!announced) {
        onWait(owner);
        announced = true;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

async function olderThan(path: string, ms: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > ms;
  } catch {
    return false;
  }
}

async function lockOwner(lockDir: string): Promise<number | undefined> {
  try {
    const entries = await readdir(lockDir);
    if (!entries.includes('pid')) return undefined;
    const pid = Number.parseInt(await readFile(join(lockDir, 'pid'), 'utf8'), 10);
    return Number.isFinite(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return err instanceof Error && 'code' in err && err.code === 'EPERM';
  }
}
