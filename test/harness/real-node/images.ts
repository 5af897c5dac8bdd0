// Container images for the real test node without a registry: a Debian root filesystem made with
// mmdebstrap from the mirror apt already uses, the pause container compiled from pause.c (shipped
// in the pinned k8s.io/kubernetes module), single-layer images assembled as docker-archive tarballs
// (the `docker save` layout that `ctr images import` and `buildah` read). Everything is cached in
// <cache>/images and rebuilt only when missing.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { exists } from './machine-state.js';
import { dirname, join } from 'node:path';
import { cacheDir } from '../../../trainer/src/collective/nats/find-server.js';
import { binaryVersion, ensureBinary, repoRoot } from '../binaries.js';
import { z } from 'zod';
import { run } from './exec.js';

/** Debian suite of every base image. */
export const DEBIAN_SUITE = 'bookworm';

/** Image references the node uses; all live only in the node's containerd (imagePullPolicy: Never). */
export const NODE_IMAGES = {
  pause: 'localhost/gmt-node/pause:local',
  debian: `localhost/gmt-node/debian:${DEBIAN_SUITE}`,
  coredns: 'localhost/gmt-node/coredns:local',
} as const;

export function imagesDir(): string {
  return join(cacheDir(), 'images');
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The first Debian mirror apt is configured with (deb822 .sources or a one-line sources.list). */
export async function aptMirror(): Promise<string> {
  const files = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  for (const f of files) {
    const text = await readFile(f, 'utf8').catch(() => '');
    const deb822 = /^URIs:\s*(\S+)/m.exec(text);
    if (deb822?.[1] !== undefined) return deb822[1];
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/m.exec(text);
    if (line?.[1] !== undefined) return line[1];
  }
  throw new Error(`no Debian mirror found in ${files.join(' or ')}`);
}

/** Image config (the OCI/Docker `config` object) fields we set. */
export interface ImageConfig {
  readonly Entrypoint?: readonly string[];
  readonly Cmd?: readonly string[];
  readonly Env?: readonly string[];
  readonly WorkingDir?: string;
  readonly User?: string;
}

/** Writes a one-layer docker-archive tarball `out` for `ref` from the layer tarball `layer`. */
export async function assembleImage(layer: string, ref: string, out: string, config: ImageConfig): Promise<void> {
  const work = await mkdtemp(`${out}.work-`);
  try {
    const diff = await sha256File(layer);
    await mkdir(join(work, diff));
    await copyFile(layer, join(work, diff, 'layer.tar'));
    const cfg = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config,
      rootfs: { type: 'layers', diff_ids: [`sha256:${diff}`] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'gmt-operator test harness (images.ts)' }],
    });
    const cfgId = createHash('sha256').update(cfg).digest('hex');
    await writeFile(join(work, `${cfgId}.json`), cfg);
    await writeFile(join(work, 'manifest.json'), JSON.stringify([{ Config: `${cfgId}.json`, RepoTags: [ref], Layers: [`${diff}/layer.tar`] }]));
    await run('tar', ['-C', work, '-cf', `${out}.tmp`, 'manifest.json', `${cfgId}.json`, diff]);
    await rename(`${out}.tmp`, out);
  } finally {
    await rm(work, { recursive: true, force: true });
    await rm(`${out}.tmp`, { force: true });
  }
}

/**
 * The Debian root filesystem tarball (mmdebstrap --variant=minbase), built once (about a minute;
 * it downloads ~40 MB of .debs from apt's mirror over plain HTTP).
 */
export async function ensureDebianRootfs(log: (line: string) => void): Promise<string> {
  const out = join(imagesDir(), `debian-${DEBIAN_SUITE}-minbase.tar`);
  if (await exists(out)) return out;
  await mkdir(imagesDir(), { recursive: true });
  const mirror = await aptMirror();
  log(`gmt: making a Debian ${DEBIAN_SUITE} root filesystem with mmdebstrap from ${mirror} (about a minute, once)`);
  const started = Date.now();
  // mmdebstrap picks the output format from the file name: keep the .tar suffix.
  const partial = out.replace(/\.tar$/, '.partial.tar');
  await rm(partial, { recursive: true, force: true });
  await run('mmdebstrap', ['--quiet', '--variant=minbase', '--include=ca-certificates', DEBIAN_SUITE, partial, mirror], { timeoutMs: 15 * 60_000 });
  await rename(partial, out);
  log(`gmt: rootfs ready in ${((Date.now() - started) / 1000).toFixed(1)}s: ${out}`);
  return out;
}

/** A docker-archive of the Debian base image. */
export async function ensureDebianImage(log: (line: string) => void): Promise<string> {
  const out = join(imagesDir(), `debian-${DEBIAN_SUITE}.image.tar`);
  if (await exists(out)) return out;
  const rootfs = await ensureDebianRootfs(log);
  await assembleImage(rootfs, NODE_IMAGES.debian, out, {
    Cmd: ['/bin/bash'],
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
  });
  return out;
}

/**
 * A docker-archive at `out` of an image holding only the binary `src`, at `path` (relative, e.g.
 * `coredns` or `bin/nats-server`; mode 0755, owned by root, mtime 0), as its entrypoint.
 */
export async function binaryImage(src: string, path: string, ref: string, out: string): Promise<void> {
  await mkdir(imagesDir(), { recursive: true });
  const root = await mkdtemp(`${out}.root-`);
  const layer = `${out}.layer.tar`;
  try {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await copyFile(src, join(root, path));
    await run('chmod', ['0755', join(root, path)]);
    const top = path.split('/')[0] ?? path;
    await run('tar', ['-C', root, '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-cf', layer, top]);
    await assembleImage(layer, ref, out, { Entrypoint: [`/${path}`] });
  } finally {
    await rm(root, { recursive: true, force: true });
    await rm(layer, { force: true });
  }
}

/** The pause image: pause.c from the pinned k8s.io/kubernetes module, compiled with gcc -static. */
export async function ensurePauseImage(): Promise<string> {
  const version = await binaryVersion('kubelet');
  const out = join(imagesDir(), `pause-${version}.image.tar`);
  if (await exists(out)) return out;
  await mkdir(imagesDir(), { recursive: true });
  // Downloads the module if the Go module cache lacks it; prints {"Dir": …} among other fields.
  const info = z
    .object({ Dir: z.string() })
    .parse(JSON.parse(await run('go', ['mod', 'download', '-json', 'k8s.io/kubernetes'], { cwd: join(repoRoot(), 'test', 'tools', 'k8s') })));
  const modDir = info.Dir;
  const bin = join(imagesDir(), `pause-${version}.bin`);
  await run('gcc', ['-Os', '-static', `-DVERSION=${version}-gmt`, '-o', bin, join(modDir, 'build', 'pause', 'linux', 'pause.c')]);
  try {
    await binaryImage(bin, 'pause', NODE_IMAGES.pause, out);
  } finally {
    await rm(bin, { force: true });
  }
  return out;
}

/** The CoreDNS image: the statically linked coredns binary from the binary cache, alone in a layer. */
export async function ensureCorednsImage(log: (line: string) => void): Promise<string> {
  const version = await binaryVersion('coredns');
  const out = join(imagesDir(), `coredns-${version}.image.tar`);
  if (await exists(out)) return out;
  await binaryImage(await ensureBinary('coredns', { log }), 'coredns', NODE_IMAGES.coredns, out);
  return out;
}
