// Where `npm run cluster:up` keeps its cluster, and the state file the daemon writes when ready.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { cacheDir } from '../trainer/src/collective/nats/find-server.js';

/** State written by the daemon once the cluster is ready. */
export const ClusterStateSchema = z.object({
  pid: z.number().int(),
  kubeconfig: z.string(),
  server: z.string(),
  kubectl: z.string(),
  startMs: z.number(),
});
export type ClusterState = z.infer<typeof ClusterStateSchema>;

/** $GMT_CLUSTER_DIR, else <cache>/cluster. */
export function clusterDir(): string {
  const v = process.env['GMT_CLUSTER_DIR'];
  return v !== undefined && v !== '' ? v : join(cacheDir(), 'cluster');
}

export const statePath = (): string => join(clusterDir(), 'state.json');

/** The state of a cluster whose daemon is alive, else undefined. */
export async function readLiveState(): Promise<ClusterState | undefined> {
  let raw: string;
  try {
    raw = await readFile(statePath(), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = ClusterStateSchema.safeParse(JSON.parse(raw));
  if (!parsed.success) return undefined;
  return isAlive(parsed.data.pid) ? parsed.data : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
