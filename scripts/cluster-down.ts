// `npm run cluster:down`: stops the cluster started by `npm run cluster:up` (SIGTERM to its
// daemon, which stops the node and the control plane and undoes their changes; SIGKILL after 120 s).

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanupStaleNode } from '../test/harness/real-node/teardown.js';
import { ClusterStateSchema, clusterDir, isAlive, statePath } from './cluster-state.js';

const log = (line: string): void => void process.stderr.write(`gmt: ${line}\n`);

async function main(): Promise<number> {
  let pid: number;
  try {
    pid = ClusterStateSchema.parse(JSON.parse(await readFile(statePath(), 'utf8'))).pid;
  } catch {
    // A daemon killed before it could stop the node leaves it behind: undo it now.
    if (!(await cleanupStaleNode(join(clusterDir(), 'node'), log))) log('no local cluster is running');
    return 0;
  }
  if (isAlive(pid)) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 120_000;
    while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    // The daemon leads its own process group (detached); take its components with it.
    if (isAlive(pid)) process.kill(-pid, 'SIGKILL');
  }
  await cleanupStaleNode(join(clusterDir(), 'node'), log);
  await rm(statePath(), { force: true });
  process.stderr.write('gmt: local cluster stopped\n');
  process.stdout.write('unset KUBECONFIG\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cluster:down failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
