// `npm run images`: builds the project's images from images/*.Dockerfile with buildah (base image
// made locally, see test/harness/real-node/build-images.ts) plus a NATS image, writes them as
// docker-archive tarballs under <cache>/images, and loads them into the local cluster's containerd
// when `npm run cluster:up` is running (the local stand-in for `docker build` + `kind load`).
// `-- --gpu` also builds the GPU trainer image (images/trainer-gpu.Dockerfile: ~3.4 GB of CUDA wheels
// from PyPI, so only on request).

import { join } from 'node:path';
import { formatDuration } from '../test/harness/binaries.js';
import { buildProjectImages } from '../test/harness/real-node/build-images.js';
import { run } from '../test/harness/real-node/exec.js';
import { requireNodePackages } from '../test/harness/real-node/packages.js';
import { clusterDir, readLiveState } from './cluster-state.js';

const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

async function main(): Promise<void> {
  const started = Date.now();
  await requireNodePackages();
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--gpu');
  if (unknown.length > 0) throw new Error(`unknown argument ${unknown.join(' ')} (usage: npm run images [-- --gpu])`);
  const gpu = args.includes('--gpu');
  if (gpu) log('gmt: --gpu: building the GPU trainer image too (fetches ~3.4 GB of CUDA wheels from PyPI on its first build)');
  const archives = await buildProjectImages(log, { gpu });
  const state = await readLiveState();
  if (state !== undefined) {
    const node = join(clusterDir(), 'node');
    for (const a of archives) {
      await run(
        'nsenter',
        [`--mount=${join(node, 'mntns')}`, '--', 'ctr', '-a', join(node, 'containerd', 'containerd.sock'), '-n', 'k8s.io', 'images', 'import', a],
        { timeoutMs: 600_000 },
      );
    }
    log(`gmt: loaded ${archives.length} images into the local cluster`);
  } else {
    log('gmt: no local cluster is running (npm run cluster:up); images built but not loaded');
  }
  for (const a of archives) process.stdout.write(`${a}\n`);
  log(`gmt: images done in ${formatDuration(Date.now() - started)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`images failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
