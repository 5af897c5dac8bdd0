// `npm run setup:node`: the system-wide part of the real test node's set-up (Debian packages via
// apt-get, as root), then the node's Go binaries (kubelet, kube-proxy, coredns, gpu-device-plugin) into the binary cache.

import { ensureBinaries, formatDuration } from '../test/harness/binaries.js';
import { installNodePackages } from '../test/harness/real-node/packages.js';

const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

async function main(): Promise<void> {
  const started = Date.now();
  const installed = await installNodePackages(log);
  log(installed.length > 0 ? `gmt: installed ${installed.join(', ')}` : 'gmt: node packages already installed');
  const bins = await ensureBinaries(['kubelet', 'kube-proxy', 'coredns', 'gpu-device-plugin'], { log });
  for (const [name, path] of Object.entries(bins)) process.stdout.write(`${name} ${path}\n`);
  log(`gmt: node set-up done in ${formatDuration(Date.now() - started)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`setup:node failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
