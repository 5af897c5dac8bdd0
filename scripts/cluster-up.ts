// `npm run cluster:up`: starts the real single-node cluster (test/harness/real-node/) in the background and prints
// `export KUBECONFIG=…` on stdout (everything else goes to stderr), so
//   eval "$(npm run -s cluster:up)" && kubectl get nodes
// works. `npm run cluster:down` stops it.

import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ensureBinaries, formatDuration } from '../test/harness/binaries.js';
import { ensureCorednsImage, ensureDebianImage, ensurePauseImage } from '../test/harness/real-node/images.js';
import { requireNodePackages } from '../test/harness/real-node/packages.js';
import { cleanupStaleNode } from '../test/harness/real-node/teardown.js';
import { clusterDir, isAlive, readLiveState, type ClusterState } from './cluster-state.js';

function announce(state: ClusterState, note: string): void {
  process.stderr.write(
    `gmt: local cluster ${note} at ${state.server}\n` +
      `gmt: a version-matched kubectl is at ${state.kubectl}\n` +
      `gmt: logs under ${clusterDir()}; stop it with: npm run cluster:down\n`,
  );
  process.stdout.write(`export KUBECONFIG=${state.kubeconfig}\n`);
}

async function main(): Promise<number> {
  const running = await readLiveState();
  if (running !== undefined) {
    announce(running, 'already running');
    return 0;
  }
  await requireNodePackages();
  await ensureBinaries(['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl', 'kubelet', 'kube-proxy', 'coredns']);
  const log = (line: string): void => {
    process.stderr.write(line + '\n');
  };
  // Cached after the first run; built here so that their progress shows on this terminal.
  await ensurePauseImage();
  await ensureCorednsImage(log);
  await ensureDebianImage(log);
  const dir = clusterDir();
  // A node whose daemon was killed (not stopped by cluster:down) is undone before the folder goes.
  await cleanupStaleNode(join(dir, 'node'), (line) => process.stderr.write(`gmt: ${line}\n`));
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const logPath = join(dir, 'daemon.log');
  const out = await open(logPath, 'a');
  const daemon = fileURLToPath(new URL('./cluster-daemon.js', import.meta.url));
  const started = Date.now();
  const child = spawn(process.execPath, [daemon], { detached: true, stdio: ['ignore', out.fd, out.fd], env: process.env });
  await out.close();
  child.unref();
  const pid = child.pid ?? -1;
  for (;;) {
    const state = await readLiveState();
    if (state !== undefined) {
      announce(state, `started in ${formatDuration(Date.now() - started)} (node Ready with DNS in ${formatDuration(state.startMs)})`);
      return 0;
    }
    if (!isAlive(pid) || Date.now() - started > 300_000) {
      if (isAlive(pid)) process.kill(pid, 'SIGTERM');
      const tail = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-40).join('\n');
      process.stderr.write(`gmt: cluster failed to start; ${logPath}:\n${tail}\n`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cluster:up failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
