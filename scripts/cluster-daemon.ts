// Background process behind `npm run cluster:up`: owns the real single-node cluster (control plane,
// containerd, kubelet, kube-proxy, CoreDNS) until SIGTERM/SIGINT (sent by `npm run cluster:down`),
// then stops it and undoes its changes to the machine.

import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureBinary } from '../test/harness/binaries.js';
import { RealCluster } from '../test/harness/real-node/node.js';
import { clusterDir, statePath, type ClusterState } from './cluster-state.js';

const log = (line: string): void => {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
};

async function main(): Promise<void> {
  const dir = clusterDir();
  const cluster = await RealCluster.start({ dir: join(dir, 'node'), log });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    void (async () => {
      await cluster.close();
      await rm(statePath(), { force: true });
      log('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const state: ClusterState = {
    pid: process.pid,
    kubeconfig: cluster.controlPlane.kubeconfigPath,
    server: cluster.controlPlane.server,
    kubectl: await ensureBinary('kubectl'),
    startMs: cluster.startMs,
  };
  await writeFile(statePath(), JSON.stringify(state, null, 2) + '\n');
  log(`ready: ${cluster.controlPlane.server}`);
}

main().catch((err: unknown) => {
  log(`cluster daemon failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
