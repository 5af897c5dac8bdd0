// Undoing a real test node's changes to the machine: used by RealCluster.close(), by a failed
// start, and for a node whose owner died without closing it (an ava worker killed on timeout):
// the record of what to restore is written into the work folder before anything is changed.

import { readdir, readFile, readlink, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { ComponentProcess } from '../processes.js';
import { tryRun } from './exec.js';
import { NODE_CGROUPS, readSysctl } from './machine-state.js';
import { removeGuard, removeLinks, removeNewEmptyTables, sweepChains } from './network.js';

/** The iptables chain prefixes the node's components create (kubelet/kube-proxy: KUBE-, CNI plugins: CNI-). */
const NODE_CHAIN_PREFIXES = ['KUBE-', 'CNI-'] as const;

/** What teardown restores, kept in <dir>/undo.json while the node exists. */
export const UndoRecordSchema = z.object({
  /** The process that owns the node; its death makes the node stale. */
  owner: z.number().int(),
  sysctls: z.record(z.string(), z.string()),
  tablesBefore: z.array(z.string()),
  createdPaths: z.array(z.string()),
});
export type UndoRecord = z.infer<typeof UndoRecordSchema>;

export const undoPath = (dir: string): string => join(dir, 'undo.json');

/** Writes the undo record (again, whenever it grows). */
export async function writeUndoRecord(dir: string, record: UndoRecord): Promise<void> {
  await writeFile(undoPath(dir), JSON.stringify(record, null, 2) + '\n');
}

export function mountNsFile(dir: string): string {
  return join(dir, 'mntns');
}

async function mountNsInode(dir: string): Promise<number | undefined> {
  try {
    return (await stat(mountNsFile(dir))).ino;
  } catch {
    return undefined;
  }
}

/** Pids whose mount namespace is the node's (containerd, kubelet, shims). */
async function pidsInMountNs(ino: number): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const link = await readlink(`/proc/${e}/ns/mnt`).catch(() => '');
    if (link === `mnt:[${ino}]`) out.push(Number(e));
  }
  return out;
}

/** Every cgroup folder (deepest first) under the node's cgroups in every hierarchy. */
async function nodeCgroupDirs(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) await walk(join(d, e.name));
    out.push(d);
  };
  for (const h of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
    for (const name of NODE_CGROUPS) {
      const root = join('/sys/fs/cgroup', h, name);
      if (
        await stat(root).then(
          () => true,
          () => false,
        )
      )
        await walk(root);
    }
  }
  return out;
}

async function killCgroupProcs(dirs: readonly string[]): Promise<number> {
  let n = 0;
  for (const d of dirs) {
    const procs = await readFile(join(d, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const pid of procs.split('\n').filter((l) => l !== '')) {
      try {
        process.kill(Number(pid), 'SIGKILL');
        n++;
      } catch {
        // already gone
      }
    }
  }
  return n;
}

/** Pids of processes started with an argument inside `dir` (kube-proxy runs outside the mount namespace). */
async function pidsUsing(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (cmd.split('\0').some((a) => a.includes(`${dir}/`))) out.push(Number(e));
  }
  return out;
}

/** Stops the node's processes and undoes its changes to the machine (not the control plane's processes). */
export async function teardown(s: {
  dir: string;
  procs: readonly ComponentProcess[];
  sysctls: ReadonlyMap<string, string>;
  tablesBefore: readonly string[];
  createdPaths: readonly string[];
  log: (line: string) => void;
}): Promise<void> {
  const problems: string[] = [];
  // 1. The kubelet first (it would restart containers), then kube-proxy.
  for (const p of [...s.procs].reverse()) if (p.name !== 'containerd') await p.stop(10_000);
  // A stale node has no ComponentProcess handles: its kube-proxy and device plugin are found by path.
  for (const pid of await pidsUsing(s.dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  // 2. Every container process: they live in the kubelet's cgroups.
  for (let i = 0; i < 50; i++) {
    if ((await killCgroupProcs(await nodeCgroupDirs())) === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // 3. containerd, then anything left in the mount namespace (shims), then the namespace itself.
  for (const p of s.procs) if (p.name === 'containerd') await p.stop(10_000);
  const ino = await mountNsInode(s.dir);
  if (ino !== undefined) {
    for (let i = 0; i < 50; i++) {
      const pids = await pidsInMountNs(ino);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await tryRun('umount', [mountNsFile(s.dir)]);
  }
  // 4. Cgroups (deepest first; a folder empties once its processes have been reaped).
  for (let i = 0; i < 50; i++) {
    const dirs = await nodeCgroupDirs();
    if (dirs.length === 0) break;
    await killCgroupProcs(dirs);
    for (const d of dirs) await rmdir(d).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
  }
  const left = await nodeCgroupDirs();
  if (left.length > 0) problems.push(`cgroups left: ${left.join(', ')}`);
  // 5. Netfilter: kube-proxy's and the kubelet's chains, then the guard (no pod process is left).
  await sweepChains(NODE_CHAIN_PREFIXES);
  await removeGuard();
  await removeNewEmptyTables(s.tablesBefore);
  // 6. Links, sysctls.
  await removeLinks();
  for (const [k, v] of s.sysctls) {
    if ((await readSysctl(k)) !== v) await writeFile(join('/proc/sys', k), v).catch((e: unknown) => problems.push(`sysctl ${k}: ${String(e)}`));
  }
  // 7. Mount points created on the host for the namespace's tmpfs (empty: the tmpfs died with it).
  for (const p of s.createdPaths) await rmdir(p).catch((e: unknown) => problems.push(`${p}: ${String(e)}`));
  // iptables commands above may have instantiated (empty) tables again.
  await removeNewEmptyTables(s.tablesBefore);
  if (problems.length > 0) s.log(`teardown: ${problems.join('; ')}`);
}

/**
 * Undoes a node in `dir` whose owner process is gone (killed before it could close the node), then
 * removes the folder. Returns whether there was such a node.
 */
export async function cleanupStaleNode(dir: string, log: (line: string) => void): Promise<boolean> {
  let record: UndoRecord;
  try {
    record = UndoRecordSchema.parse(JSON.parse(await readFile(undoPath(dir), 'utf8')));
  } catch {
    return false;
  }
  try {
    process.kill(record.owner, 0);
    return false; // its owner still runs it
  } catch {
    // owner gone: stale
  }
  log(`cleaning up a stale real node in ${dir} (owner pid ${record.owner} is gone)`);
  await teardown({
    dir,
    procs: [],
    sysctls: new Map(Object.entries(record.sysctls)),
    tablesBefore: record.tablesBefore,
    createdPaths: record.createdPaths,
    log,
  });
  // The control plane's processes (etcd, kube-apiserver…) were started with paths in the folder too.
  for (const pid of await pidsUsing(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await rm(dir, { recursive: true, force: true });
  return true;
}
