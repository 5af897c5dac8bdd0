// Background process behind `npm run cluster:up`: owns the control plane and the node agent until
// SIGTERM/SIGINT (sent by `npm run cluster:down`), then stops them cleanly.

import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureBinary } from '../test/harness/binaries.js';
import { ControlPlane } from '../test/harness/control-plane.js';
import { NodeAgent } from '../test/node-agent/agent.js';
import { clusterDir, statePath, type ClusterState } from './cluster-state.js';

const log = (line: string): void => {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
};

async function main(): Promise<void> {
  const dir = clusterDir();
  const cp = await ControlPlane.start({ dir: join(dir, 'control-plane'), log });
  const logDir = join(dir, 'pods');
  await mkdir(logDir, { recursive: true });
  const agent = new NodeAgent({ kubeconfig: cp.kubeconfig, logDir, log });
  try {
    await agent.start();
  } catch (err) {
    await cp.close();
    throw err;
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    void (async () => {
      await agent.close();
      await cp.close();
      await rm(statePath(), { force: true });
      log('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const state: ClusterState = {
    pid: process.pid,
    kubeconfig: cp.kubeconfigPath,
    server: cp.server,
    kubectl: await ensureBinary('kubectl'),
    startMs: cp.startMs,
  };
  await writeFile(statePath(), JSON.stringify(state, null, 2) + '\n');
  log(`ready: ${cp.server}`);
}

main().catch((err: unknown) => {
  log(`cluster daemon failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
